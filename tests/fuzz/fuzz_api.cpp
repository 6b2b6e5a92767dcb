// libFuzzer harness for the whole C ABI of fastmix on the CPU backend.
// Built by tests/fuzz/run.sh with clang, -fsanitize=fuzzer,
// address,undefined against the library's host sources (CUDA stubbed out).
//
// Each input drives one entry point with arbitrary sizes, strides, enum values,
// pointers (NULL, misaligned, overlapping), NaN/inf/huge/subnormal data and
// labels/partners in and out of range.  Every buffer is allocated with exactly
// the size the call may touch, so ASan sees any access past it.  The harness
// knows which arguments are valid (the documented ranges) and asserts the
// contract:
//   - the status is in the enum and never FASTMIX_ERROR_INTERNAL;
//   - a call with an invalid argument fails; a call with only valid ones (on
//     FASTMIX_DEVICE_CPU) succeeds;
//   - a failed call leaves every output bitwise untouched (poisoned before)
//     and fastmix_last_error() is non-empty;
//   - inputs are never written, nor are elements between samples;
//   - on success: lambdas in [0, 1] ([1/2, 1] folded), partners a permutation
//     of the asked kind; blends, losses, gradients and targets finite when
//     the inputs are finite (and the true result is representable);
//     fastmix_mixup is bitwise fastmix_sample + fastmix_blend, and the
//     device-seed variants are bitwise the plain ones.
// A violation prints what went wrong and aborts: libFuzzer saves the input.
#include <fastmix/fastmix.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace {

#define FUZZ_ASSERT(cond, ...)                                                      \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "fuzz_api: contract violated: %s\n  ", #cond);           \
      std::fprintf(stderr, __VA_ARGS__);                                            \
      std::fprintf(stderr, "\n  fastmix_last_error(): %s\n", fastmix_last_error()); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

constexpr int64_t kMaxBatch = 64, kMaxElems = 4096, kMaxClasses = 4096;
constexpr size_t kMaxBytes = (size_t)1 << 21;  // larger valid calls are skipped
constexpr unsigned char kPoison = 0xa5;

// ---- buffers ----------------------------------------------------------------
// Exactly `bytes` usable bytes (so ASan flags any access past them), starting
// `misalign` bytes into the allocation, poisoned.
struct Buf {
  std::unique_ptr<unsigned char[]> store;  // new[] of 0 bytes is still a unique pointer
  unsigned char *p = nullptr;
  size_t n = 0;
  Buf(size_t bytes, size_t misalign) : store(new unsigned char[bytes + misalign]), n(bytes) {
    std::memset(store.get(), kPoison, bytes + misalign);
    p = store.get() + misalign;
  }
  Buf(const Buf &) = delete;
  Buf &operator=(const Buf &) = delete;
  std::vector<unsigned char> snap() const { return std::vector<unsigned char>(p, p + n); }
  bool same(const std::vector<unsigned char> &s) const {
    return n == 0 || std::memcmp(p, s.data(), n) == 0;
  }
};

size_t esize(fastmix_dtype d) { return d == FASTMIX_FLOAT32 ? 4 : 2; }
bool valid_dtype(int d) { return d >= 0 && d <= 2; }

// Whether element i of a buffer of `d` is finite, and its value (for the
// magnitude checks), decoded here independently of the library.
double decode(int d, const unsigned char *p, int64_t i) {
  if (d == FASTMIX_FLOAT32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  if (d == FASTMIX_BFLOAT16) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0x1f ? (m ? NAN : INFINITY)
                   : e == 0  ? std::ldexp(m, -24)
                             : std::ldexp(1024 + m, e - 25);
  return h & 0x8000 ? -v : v;
}

// ---- values from the fuzzer -------------------------------------------------
template <class E>
E as_enum(int v) {
  E e;
  std::memcpy(&e, &v, sizeof e);
  return e;
}

// Mostly one of the `n` valid values, sometimes any int.
int pick_enum(FuzzedDataProvider &f, int n) {
  if (f.ConsumeIntegralInRange(0, 15) == 0) return f.ConsumeIntegral<int32_t>();
  return f.ConsumeIntegralInRange(0, n - 1);
}

// A size: mostly in [0, max], sometimes negative or anything.
int64_t pick_size(FuzzedDataProvider &f, int64_t max) {
  switch (f.ConsumeIntegralInRange(0, 19)) {
    case 0:
      return f.ConsumeIntegral<int64_t>();
    case 1:
      return -f.ConsumeIntegralInRange<int64_t>(1, 3);
    case 2:
      return f.ConsumeBool() ? FASTMIX_MAX_BATCH : FASTMIX_MAX_BATCH + 1;
    case 3:
      return std::numeric_limits<int64_t>::max() - f.ConsumeIntegralInRange<int64_t>(0, 2);
    default:
      return f.ConsumeIntegralInRange<int64_t>(0, max);
  }
}

float pick_float(FuzzedDataProvider &f, float lo, float hi) {
  switch (f.ConsumeIntegralInRange(0, 15)) {
    case 0:
      return std::numeric_limits<float>::quiet_NaN();
    case 1:
      return f.ConsumeBool() ? INFINITY : -INFINITY;
    case 2:
      return f.ConsumeBool() ? 0.0f : -0.0f;
    case 3:
      return std::numeric_limits<float>::denorm_min() * (float)f.ConsumeIntegralInRange(1, 100);
    case 4:
      return f.ConsumeBool() ? std::numeric_limits<float>::max() : 1e-30f;
    case 5: {
      const uint32_t u = f.ConsumeIntegral<uint32_t>();
      float v;
      std::memcpy(&v, &u, 4);
      return v;
    }
    case 6:
      return -f.ConsumeFloatingPointInRange<float>(lo, hi);
    default:
      return f.ConsumeFloatingPointInRange<float>(lo, hi);
  }
}

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
uint64_t next_rand() {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return g_rng;
}

// Fills `count` elements of `d`: raw bits (NaN, inf, anything), finite values
// of every magnitude (subnormals and the largest included), or moderate ones.
// Returns whether every element is finite.
bool fill_data(FuzzedDataProvider &f, int d, unsigned char *p, int64_t count) {
  const int mode = f.ConsumeIntegralInRange(0, 3);
  g_rng = f.ConsumeIntegral<uint64_t>() | 1;
  const size_t es = esize(as_enum<fastmix_dtype>(d));
  for (int64_t i = 0; i < count; ++i) {
    uint64_t r = next_rand();
    if (es == 4) {
      uint32_t u = (uint32_t)r;
      if (mode == 1 && ((u >> 23) & 0xff) == 0xff) u &= ~(1u << 23);  // finite, any magnitude
      if (mode >= 2)
        u = (u & 0x80000000u) | ((u % 0x1000000u) + (114u << 23));  // |v| in ~[2^-13, 2^12)
      std::memcpy(p + 4 * i, &u, 4);
    } else {
      uint16_t h = (uint16_t)r;
      const uint16_t expmask = d == FASTMIX_FLOAT16 ? 0x7c00 : 0x7f80;
      if (mode == 1 && (h & expmask) == expmask)
        h = (uint16_t)(h & ~(expmask & (expmask >> 1) & ~(expmask >> 2)));
      if (mode >= 2)
        h = (uint16_t)((h & 0x83ff) | (d == FASTMIX_FLOAT16 ? 0x3800 : 0x3f00));  // ~[0.5, 2)
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
  bool finite = true;
  for (int64_t i = 0; i < count; ++i) finite = finite && std::isfinite(decode(d, p, i));
  return finite;
}

// Lambdas: in [0, 1] (with its ends), or anything.  Returns whether all are in [0, 1].
bool fill_lambdas(FuzzedDataProvider &f, float *lam, int64_t n) {
  const bool wild = f.ConsumeIntegralInRange(0, 7) == 0;
  bool unit = true;
  for (int64_t i = 0; i < n; ++i) {
    float v;
    if (wild)
      v = pick_float(f, 0.0f, 2.0f);
    else
      switch (f.ConsumeIntegralInRange(0, 4)) {
        case 0:
          v = 1.0f;
          break;
        case 1:
          v = 0.0f;
          break;
        default:
          v = f.ConsumeProbability<float>();
      }
    lam[i] = v;
    unit = unit && v >= 0.0f && v <= 1.0f;
  }
  return unit;
}

// Partners or labels: in [0, n) mostly, sometimes anything (and `also_ok`, an
// ignore_index, when has_also).  Returns whether all are valid.
bool fill_indices(FuzzedDataProvider &f, int64_t *idx, int64_t count, int64_t n, bool has_also,
                  int64_t also_ok) {
  const bool wild = f.ConsumeIntegralInRange(0, 5) == 0;
  bool ok = true;
  for (int64_t i = 0; i < count; ++i) {
    int64_t v = n > 0 ? (int64_t)(next_rand() % (uint64_t)n) : 0;
    if (wild && f.ConsumeIntegralInRange(0, 3) == 0) {
      switch (f.ConsumeIntegralInRange(0, 4)) {
        case 0:
          v = -1;
          break;
        case 1:
          v = n;
          break;
        case 2:
          v = std::numeric_limits<int64_t>::min();
          break;
        case 3:
          v = has_also ? also_ok : -2;
          break;
        default:
          v = f.ConsumeIntegral<int64_t>();
      }
    }
    idx[i] = v;
    ok = ok && ((v >= 0 && v < n) || (has_also && v == also_ok));
  }
  return ok;
}

// a + b with two's-complement wrap-around (the harness itself must stay free of UB)
int64_t wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

bool is_permutation(const int64_t *p, int64_t n) {
  std::vector<char> seen((size_t)n, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= n || seen[(size_t)p[i]]) return false;
    seen[(size_t)p[i]] = 1;
  }
  return true;
}

// A row stride for rows of `row` elements: mostly `row`, or too small by 1
// to 3, any value, or `row` plus a gap of up to max_gap.
int64_t pick_stride(FuzzedDataProvider &f, int64_t row, int64_t max_gap) {
  switch (f.ConsumeIntegralInRange(0, 7)) {
    case 0:
      return wrap_add(row, -f.ConsumeIntegralInRange<int64_t>(1, 3));  // too small
    case 1:
      return f.ConsumeIntegral<int64_t>();
    case 2:
    case 3:
      return wrap_add(row, f.ConsumeIntegralInRange<int64_t>(0, max_gap));
    default:
      return row;
  }
}

void check_status(fastmix_status s, const char *func) {
  FUZZ_ASSERT((int)s >= 0 && (int)s <= 6, "%s returned %d", func, (int)s);
  FUZZ_ASSERT(s != FASTMIX_ERROR_INTERNAL, "%s reported an internal error", func);
  if (s != FASTMIX_SUCCESS)
    FUZZ_ASSERT(fastmix_last_error()[0] != '\0', "%s failed without a message", func);
  FUZZ_ASSERT(fastmix_status_string(s) != nullptr, "status string");
}

// The device: CPU mostly; CUDA (must fail: no device in the fuzz build, and
// host memory where the replay runs against a library with a GPU); or junk.
int pick_device(FuzzedDataProvider &f) {
  const int k = f.ConsumeIntegralInRange(0, 15);
  return k < 13 ? FASTMIX_DEVICE_CPU : k < 15 ? FASTMIX_DEVICE_CUDA : f.ConsumeIntegral<int32_t>();
}

// With a GPU (only in the CTest replay), a CUDA call with host pointers and
// batch 0 may succeed as a no-op: such inputs are skipped there.
bool skip_cuda(int dev) {
  static const bool gpu = fastmix_cuda_device_count() > 0;
  return gpu && dev == FASTMIX_DEVICE_CUDA;
}

// Pointer choices for an array argument.
enum class Ptr { ok, null, misaligned };
Ptr pick_ptr(FuzzedDataProvider &f) {
  const int k = f.ConsumeIntegralInRange(0, 31);
  return k == 0 ? Ptr::null : k == 1 ? Ptr::misaligned : Ptr::ok;
}

// Bytes spanned by batch samples of `elems` at `stride`, or -1 on int64 overflow.
int64_t span_bytes(int64_t batch, int64_t elems, int64_t stride, size_t es) {
  if (batch <= 0 || elems <= 0) return 0;
  const __int128 s = ((__int128)(batch - 1) * stride + elems) * (__int128)es;
  return s > (__int128)std::numeric_limits<int64_t>::max() ? -1 : (int64_t)s;
}

// ---- the entry points ---------------------------------------------------------
// Sampling (plain or device seed): lambdas and partners.
void fuzz_sample(FuzzedDataProvider &f, bool device_seed) {
  const char *func = device_seed ? "fastmix_sample_device_seed" : "fastmix_sample";
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  const float alpha = pick_float(f, 1e-4f, 1e4f);
  const int fold = f.ConsumeIntegral<int>();
  const int pairing = pick_enum(f, 4);
  const uint64_t seed = f.ConsumeIntegral<uint64_t>(), offset = f.ConsumeIntegral<uint64_t>();
  const uint64_t inc = f.ConsumeIntegral<uint64_t>();
  const int64_t batch = pick_size(f, kMaxBatch);
  const Ptr pl = pick_ptr(f), pp = pick_ptr(f), ps = device_seed ? pick_ptr(f) : Ptr::ok;
  bool valid = dev == FASTMIX_DEVICE_CPU && std::isfinite(alpha) && alpha > 0 && pairing >= 0 &&
               pairing <= 3 && batch >= 0 && batch <= FASTMIX_MAX_BATCH && pl != Ptr::null &&
               pp != Ptr::null && ps != Ptr::null;
  if (valid && batch > kMaxBatch) return;  // valid, but too large to allocate here
  const int64_t n = batch < 0 ? 0 : batch > kMaxBatch ? kMaxBatch : batch;
  // misaligned float/int64 arrays are not refused (no alignment is asked of
  // them); a misaligned seed_offset is
  Buf lam((size_t)n * 4, 0), par((size_t)n * 8, 0), so(16, ps == Ptr::misaligned ? 4 : 0);
  if (ps == Ptr::misaligned) valid = false;
  const uint64_t so_init[2] = {seed, offset};
  std::memcpy(so.p, so_init, 16);
  const auto lam0 = lam.snap(), par0 = par.snap(), so0 = so.snap();
  float *l = pl == Ptr::null ? nullptr : reinterpret_cast<float *>(lam.p);
  int64_t *p = pp == Ptr::null ? nullptr : reinterpret_cast<int64_t *>(par.p);
  uint64_t *s = ps == Ptr::null ? nullptr : reinterpret_cast<uint64_t *>(so.p);
  const fastmix_status st =
      device_seed
          ? fastmix_sample_device_seed(as_enum<fastmix_device>(dev), alpha, fold,
                                       as_enum<fastmix_pairing>(pairing), s, inc, batch, l, p,
                                       nullptr)
          : fastmix_sample(as_enum<fastmix_device>(dev), alpha, fold,
                           as_enum<fastmix_pairing>(pairing), seed, offset, batch, l, p, nullptr);
  check_status(st, func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid, "%s failed on valid arguments (batch %lld, alpha %g)", func,
                (long long)batch, (double)alpha);
    FUZZ_ASSERT(lam.same(lam0) && par.same(par0) && so.same(so0), "%s failed but wrote an output",
                func);
    return;
  }
  FUZZ_ASSERT(valid,
              "%s accepted an invalid argument (device %d, alpha %g, pairing %d, batch %lld)", func,
              dev, (double)alpha, pairing, (long long)batch);
  const float *lv = reinterpret_cast<const float *>(lam.p);
  const int64_t *pv = reinterpret_cast<const int64_t *>(par.p);
  for (int64_t i = 0; i < n; ++i) {
    const float lo = fold ? 0.5f : 0.0f;
    FUZZ_ASSERT(lv[i] >= lo && lv[i] <= 1.0f, "%s: lambdas[%lld] = %g (alpha %g, fold %d)", func,
                (long long)i, (double)lv[i], (double)alpha, fold);
  }
  FUZZ_ASSERT(is_permutation(pv, n), "%s: partners are no permutation (batch %lld)", func,
              (long long)n);
  if (pairing == FASTMIX_PAIRING_FLIP)
    for (int64_t i = 0; i < n; ++i) FUZZ_ASSERT(pv[i] == n - 1 - i, "FLIP partner");
  if (pairing == FASTMIX_PAIRING_ROLL)
    for (int64_t i = 0; i < n; ++i) FUZZ_ASSERT(pv[i] == (i + n - 1) % n, "ROLL partner");
  if (pairing == FASTMIX_PAIRING_CYCLE && n > 1)
    for (int64_t i = 0; i < n; ++i)
      FUZZ_ASSERT(pv[i] != i, "CYCLE partner of %lld is itself", (long long)i);
  if (device_seed) {
    uint64_t after[2];
    std::memcpy(after, so.p, 16);
    FUZZ_ASSERT(after[0] == seed && after[1] == offset + inc, "%s: seed_offset not advanced right",
                func);
    // bitwise the plain call
    Buf lam2((size_t)n * 4, 0), par2((size_t)n * 8, 0);
    FUZZ_ASSERT(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, as_enum<fastmix_pairing>(pairing),
                               seed, offset, batch, reinterpret_cast<float *>(lam2.p),
                               reinterpret_cast<int64_t *>(par2.p), nullptr) == FASTMIX_SUCCESS,
                "plain fastmix_sample failed");
    FUZZ_ASSERT(lam2.same(lam.snap()) && par2.same(par.snap()), "%s differs from fastmix_sample",
                func);
  }
}

// Blending, mixup and mixup_device_seed: x, out (in place, apart, or
// overlapping), lambdas and partners.
void fuzz_images(FuzzedDataProvider &f, int which /* 0 blend, 1 mixup, 2 mixup_device_seed */) {
  static const char *names[] = {"fastmix_blend", "fastmix_mixup", "fastmix_mixup_device_seed"};
  const char *func = names[which];
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  const int dtype = pick_enum(f, 3);
  const int64_t batch = pick_size(f, kMaxBatch);
  const int64_t elems = pick_size(f, kMaxElems);
  int64_t stride = pick_stride(f, elems, 70);
  const float alpha = which ? pick_float(f, 1e-4f, 1e4f) : 1.0f;
  const int fold = which ? f.ConsumeIntegralInRange(0, 1) : 0;
  const int pairing = which ? pick_enum(f, 4) : 0;
  const uint64_t seed = f.ConsumeIntegral<uint64_t>(), offset = f.ConsumeIntegral<uint64_t>();
  const uint64_t inc = f.ConsumeIntegral<uint64_t>();
  const int layout = f.ConsumeIntegralInRange(
      0, 15);  // 0-6 apart, 7-12 in place, 13 overlap, 14 x misaligned, 15 NULL
  const Ptr pl = pick_ptr(f), pp = pick_ptr(f), ps = which == 2 ? pick_ptr(f) : Ptr::ok;

  const bool dtype_ok = valid_dtype(dtype);
  const size_t es = dtype_ok ? esize(as_enum<fastmix_dtype>(dtype)) : 4;
  const bool shape_ok = batch >= 0 && batch <= FASTMIX_MAX_BATCH && elems >= 0 && stride >= elems;
  const int64_t span = shape_ok ? span_bytes(batch, elems, stride, es) : 0;
  bool valid = dev == FASTMIX_DEVICE_CPU && dtype_ok && shape_ok && span >= 0 && pl != Ptr::null &&
               pp != Ptr::null && ps != Ptr::null && layout != 15 && layout != 14 &&
               ps != Ptr::misaligned;
  if (which) valid = valid && std::isfinite(alpha) && alpha > 0 && pairing >= 0 && pairing <= 3;
  if (valid && (batch > kMaxBatch || span > (int64_t)kMaxBytes)) return;  // too large to allocate
  const int64_t n = batch < 0 ? 0 : batch > kMaxBatch ? kMaxBatch : batch;
  const size_t bytes = span > 0 && span <= (int64_t)kMaxBytes ? (size_t)span : 0;
  const bool overlap = layout == 13 && bytes > es;  // out = x + shift, inside x
  if (overlap) valid = false;
  const bool in_place = (layout >= 7 && layout <= 12) || (layout == 13 && !overlap);
  const size_t shift =
      overlap ? es * (size_t)f.ConsumeIntegralInRange<int64_t>(1, (int64_t)(bytes / es) - 1) : 0;

  // x and out: one allocation when they overlap (out = x + shift), else two.
  Buf xbuf(bytes + shift, layout == 14 ? 1 : 0), obuf(in_place || overlap ? 0 : bytes, 0);
  const bool x_finite = fill_data(f, dtype_ok ? dtype : 0, xbuf.p, (int64_t)((bytes + shift) / es));
  unsigned char *x = layout == 15 ? nullptr : xbuf.p;
  unsigned char *out = in_place ? xbuf.p : overlap ? xbuf.p + shift : obuf.p;
  if (layout == 15 && f.ConsumeBool()) out = nullptr;
  Buf lam((size_t)n * 4, 0), par((size_t)n * 8, 0), so(16, ps == Ptr::misaligned ? 4 : 0);
  bool lam_unit = true, par_ok = true;
  if (which == 0) {
    lam_unit = fill_lambdas(f, reinterpret_cast<float *>(lam.p), n);
    par_ok = fill_indices(f, reinterpret_cast<int64_t *>(par.p), n, n, false, 0);
    if (!par_ok) valid = false;  // the CPU checks every partner
  }
  const uint64_t so_init[2] = {seed, offset};
  std::memcpy(so.p, so_init, 16);
  const auto x0 = xbuf.snap(), o0 = obuf.snap(), lam0 = lam.snap(), par0 = par.snap(),
             so0 = so.snap();
  float *l = pl == Ptr::null ? nullptr : reinterpret_cast<float *>(lam.p);
  int64_t *p = pp == Ptr::null ? nullptr : reinterpret_cast<int64_t *>(par.p);
  uint64_t *s = ps == Ptr::null ? nullptr : reinterpret_cast<uint64_t *>(so.p);
  const fastmix_device d = as_enum<fastmix_device>(dev);
  const fastmix_dtype t = as_enum<fastmix_dtype>(dtype);
  const fastmix_pairing pr = as_enum<fastmix_pairing>(pairing);
  fastmix_status st;
  if (which == 0)
    st = fastmix_blend(d, t, x, out, batch, elems, stride, l, p, nullptr);
  else if (which == 1)
    st = fastmix_mixup(d, t, alpha, fold, pr, seed, offset, x, out, batch, elems, stride, l, p,
                       nullptr);
  else
    st = fastmix_mixup_device_seed(d, t, alpha, fold, pr, s, inc, x, out, batch, elems, stride, l,
                                   p, nullptr);
  check_status(st, func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid,
                "%s failed on valid arguments (batch %lld, elems %lld, stride %lld, dtype %d)",
                func, (long long)batch, (long long)elems, (long long)stride, dtype);
    FUZZ_ASSERT(xbuf.same(x0) && obuf.same(o0) && lam.same(lam0) && par.same(par0) && so.same(so0),
                "%s failed but wrote an output", func);
    return;
  }
  FUZZ_ASSERT(
      valid,
      "%s accepted invalid arguments (device %d, dtype %d, batch %lld, elems %lld, stride %lld, "
      "layout %d, alpha %g, pairing %d, partners ok %d)",
      func, dev, dtype, (long long)batch, (long long)elems, (long long)stride, layout,
      (double)alpha, pairing, (int)par_ok);
  if (which == 0) FUZZ_ASSERT(lam.same(lam0) && par.same(par0), "%s wrote its inputs", func);
  if (!in_place) FUZZ_ASSERT(xbuf.same(x0), "%s wrote x", func);
  const float *lv = reinterpret_cast<const float *>(lam.p);
  const int64_t *pv = reinterpret_cast<const int64_t *>(par.p);
  if (which) {
    FUZZ_ASSERT(is_permutation(pv, n), "%s: partners are no permutation", func);
    for (int64_t i = 0; i < n; ++i)
      FUZZ_ASSERT(lv[i] >= 0.0f && lv[i] <= 1.0f, "%s: lambda %g", func, (double)lv[i]);
  }
  // Elements between samples untouched; samples finite when x is finite and lambdas in [0, 1].
  const unsigned char *o = in_place ? xbuf.p : obuf.p;
  const std::vector<unsigned char> &before = in_place ? x0 : o0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < elems; ++j) {
      const int64_t k = i * stride + j;
      const double v = decode(dtype, o, k);
      FUZZ_ASSERT(
          !(x_finite && lam_unit) || std::isfinite(v),
          "%s: out[%lld][%lld] = %g from finite inputs (lambda %.9g, partner %lld, a %g, b %g)",
          func, (long long)i, (long long)j, v, (double)lv[i], (long long)pv[i],
          decode(dtype, x0.data(), k), decode(dtype, x0.data(), pv[i] * stride + j));
    }
    if (i + 1 < n && elems > 0 && stride > elems)  // (elems 0: nothing spanned, nothing allocated)
      FUZZ_ASSERT(std::memcmp(o + (size_t)(i * stride + elems) * es,
                              before.data() + (size_t)(i * stride + elems) * es,
                              (size_t)(stride - elems) * es) == 0,
                  "%s wrote between samples %lld and %lld", func, (long long)i, (long long)i + 1);
  }
  if (which >= 1) {
    // mixup == sample + blend (bitwise), and the device-seed variant == mixup
    Buf lam2((size_t)n * 4, 0), par2((size_t)n * 8, 0), out2(bytes, 0);
    if (bytes) std::memcpy(out2.p, x0.data(), bytes);  // blend in place on a copy of x
    FUZZ_ASSERT(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, pr, seed, offset, batch,
                               reinterpret_cast<float *>(lam2.p),
                               reinterpret_cast<int64_t *>(par2.p), nullptr) == FASTMIX_SUCCESS,
                "sample");
    FUZZ_ASSERT(lam2.same(lam.snap()) && par2.same(par.snap()),
                "%s: lambdas/partners differ from fastmix_sample", func);
    FUZZ_ASSERT(fastmix_blend(FASTMIX_DEVICE_CPU, t, out2.p, out2.p, batch, elems, stride,
                              reinterpret_cast<float *>(lam2.p),
                              reinterpret_cast<int64_t *>(par2.p), nullptr) == FASTMIX_SUCCESS,
                "blend");
    // bitwise, except that NaN payloads may differ (the vector and scalar
    // conversions quiet NaNs differently; documented)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < elems; ++j) {
        const int64_t k = i * stride + j;
        const bool same = std::memcmp(out2.p + (size_t)k * es, o + (size_t)k * es, es) == 0 ||
                          (std::isnan(decode(dtype, out2.p, k)) && std::isnan(decode(dtype, o, k)));
        FUZZ_ASSERT(
            same,
            "%s: sample %lld element %lld differs from fastmix_sample + fastmix_blend (%g vs %g)",
            func, (long long)i, (long long)j, decode(dtype, o, k), decode(dtype, out2.p, k));
      }
    if (which == 2) {
      uint64_t after[2];
      std::memcpy(after, so.p, 16);
      FUZZ_ASSERT(after[0] == seed && after[1] == offset + inc,
                  "%s: seed_offset not advanced right", func);
    }
  }
}

// Cross-entropy (which 0) and soft targets (which 1).
void fuzz_loss(FuzzedDataProvider &f, int which) {
  const char *func = which ? "fastmix_soft_targets" : "fastmix_cross_entropy";
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  const int dtype = pick_enum(f, 3);
  const int64_t batch = pick_size(f, kMaxBatch);
  const int64_t classes =
      f.ConsumeIntegralInRange(0, 15) == 0 ? pick_size(f, 1) : pick_size(f, kMaxClasses);
  int64_t stride = pick_stride(f, classes, 40);
  const int mix =
      f.ConsumeIntegralInRange(0, 7);  // 0: lambdas only, 1: partners only, 2-4: plain, else mixup
  const int red = pick_enum(f, 3);
  const float eps = f.ConsumeBool() ? 0.0f : pick_float(f, 0.0f, 1.0f);
  const int64_t ignore = f.ConsumeBool() ? -100 : f.ConsumeIntegralInRange<int64_t>(-2, 5);
  const int gmode =
      which ? 0 : f.ConsumeIntegralInRange(0, 3);  // 0 none, 1 in place, 2 apart, 3 overlapping
  const float scale = f.ConsumeBool() ? 1.0f : pick_float(f, 0.0f, 100.0f);
  const Ptr pz = pick_ptr(f), py = pick_ptr(f), pl = pick_ptr(f);

  const bool dtype_ok = valid_dtype(dtype);
  const size_t es = dtype_ok ? esize(as_enum<fastmix_dtype>(dtype)) : 4;
  const bool shape_ok =
      batch >= 0 && batch <= FASTMIX_MAX_BATCH && classes >= 1 && stride >= classes;
  const int64_t span = shape_ok ? span_bytes(batch, classes, stride, es) : 0;
  bool valid = dev == FASTMIX_DEVICE_CPU && dtype_ok && shape_ok && span >= 0 && pz == Ptr::ok &&
               py != Ptr::null && (which || pl != Ptr::null) && mix >= 2 && eps >= 0.0f &&
               eps <= 1.0f;
  if (!which) valid = valid && red >= 0 && red <= 2;
  if (valid && (batch > kMaxBatch || span > (int64_t)kMaxBytes)) return;
  const int64_t n = batch < 0 ? 0 : batch > kMaxBatch ? kMaxBatch : batch;
  const size_t bytes = span > 0 && span <= (int64_t)kMaxBytes ? (size_t)span : 0;
  const bool overlap = gmode == 3 && bytes > es;  // grad = logits + shift: refused
  if (overlap) valid = false;
  const size_t shift =
      overlap ? es * (size_t)f.ConsumeIntegralInRange<int64_t>(1, (int64_t)(bytes / es) - 1) : 0;

  Buf zbuf(which ? 0 : bytes + shift, pz == Ptr::misaligned ? 1 : 0),
      gbuf(gmode == 2 ? bytes : 0, 0);
  Buf tbuf(which ? bytes : 0, pz == Ptr::misaligned ? 1 : 0);
  const bool z_finite =
      which ? true : fill_data(f, dtype_ok ? dtype : 0, zbuf.p, (int64_t)((bytes + shift) / es));
  Buf labels((size_t)n * 8, 0), lam((size_t)n * 4, 0), par((size_t)n * 8, 0);
  Buf loss((size_t)(red == FASTMIX_REDUCTION_NONE ? n : 1) * 4, 0);
  g_rng = f.ConsumeIntegral<uint64_t>() | 1;
  const bool labels_ok = fill_indices(f, reinterpret_cast<int64_t *>(labels.p), n,
                                      classes > 0 ? classes : 1, !which, ignore);
  const bool par_ok = fill_indices(f, reinterpret_cast<int64_t *>(par.p), n, n, false, 0);
  const bool lam_unit = fill_lambdas(f, reinterpret_cast<float *>(lam.p), n);
  const bool mixed = mix >= 5 || mix <= 1;
  if (!labels_ok && n > 0 && classes >= 1) valid = false;
  if (mixed && !par_ok) valid = false;

  const auto z0 = zbuf.snap(), g0 = gbuf.snap(), t0 = tbuf.snap(), y0 = labels.snap(),
             l0 = lam.snap(), p0 = par.snap(), loss0 = loss.snap();
  const int64_t *y = py == Ptr::null ? nullptr : reinterpret_cast<const int64_t *>(labels.p);
  const float *lv =
      mix == 1 || (mix >= 2 && mix <= 4) ? nullptr : reinterpret_cast<const float *>(lam.p);
  const int64_t *pv =
      mix == 0 || (mix >= 2 && mix <= 4) ? nullptr : reinterpret_cast<const int64_t *>(par.p);
  float *lo = pl == Ptr::null ? nullptr : reinterpret_cast<float *>(loss.p);
  const fastmix_device d = as_enum<fastmix_device>(dev);
  const fastmix_dtype t = as_enum<fastmix_dtype>(dtype);
  fastmix_status st;
  void *g = gmode == 0 ? nullptr : gmode == 2 ? gbuf.p : zbuf.p + shift;  // shift 0: in place
  if (which)
    st = fastmix_soft_targets(d, t, y, lv, pv, batch, classes, eps,
                              pz == Ptr::null ? nullptr : tbuf.p, stride, nullptr);
  else if (((uint64_t)batch ^ (uint64_t)stride) & 1 && batch >= 0 && batch <= (1 << 16)) {
    // The workspace variant, with a workspace the checks accept (host memory:
    // the CPU ignores it, and CUDA calls stop at "no device" here); only for
    // batches whose workspace is small, the harness's own memory bound.
    size_t ws_bytes = 0;
    if (fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, batch,
                                             as_enum<fastmix_reduction>(red),
                                             &ws_bytes) != FASTMIX_SUCCESS)
      ws_bytes = 0;
    std::vector<uint64_t> ws(ws_bytes / 8 + 1);
    st = fastmix_cross_entropy_ws(d, t, pz == Ptr::null ? nullptr : zbuf.p, batch, classes, stride,
                                  y, lv, pv, as_enum<fastmix_reduction>(red), eps, ignore, lo, g,
                                  scale, ws.data(), ws.size() * 8, nullptr);
  } else {
    st = fastmix_cross_entropy(d, t, pz == Ptr::null ? nullptr : zbuf.p, batch, classes, stride, y,
                               lv, pv, as_enum<fastmix_reduction>(red), eps, ignore, lo, g, scale,
                               nullptr);
  }
  check_status(st, func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid, "%s failed on valid arguments (batch %lld, classes %lld, stride %lld)",
                func, (long long)batch, (long long)classes, (long long)stride);
    FUZZ_ASSERT(zbuf.same(z0) && gbuf.same(g0) && tbuf.same(t0) && loss.same(loss0),
                "%s failed but wrote", func);
    FUZZ_ASSERT(labels.same(y0) && lam.same(l0) && par.same(p0), "%s wrote its inputs", func);
    return;
  }
  FUZZ_ASSERT(
      valid,
      "%s accepted invalid arguments (device %d, dtype %d, batch %lld, classes %lld, stride %lld, "
      "mix %d, reduction %d, eps %g, labels ok %d, partners ok %d, grad mode %d)",
      func, dev, dtype, (long long)batch, (long long)classes, (long long)stride, mix, red,
      (double)eps, (int)labels_ok, (int)par_ok, gmode);
  FUZZ_ASSERT(labels.same(y0) && lam.same(l0) && par.same(p0), "%s wrote its inputs", func);
  const bool g_in_place = g == zbuf.p;
  if (!g_in_place) FUZZ_ASSERT(zbuf.same(z0), "%s wrote the logits", func);
  const int64_t *yv = reinterpret_cast<const int64_t *>(labels.p);
  const int64_t *pvv = reinterpret_cast<const int64_t *>(par.p);
  const float *lvv = reinterpret_cast<const float *>(lam.p);
  if (which) {
    // targets in [0, 1] (a little above through rounding), never NaN
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < classes; ++c) {
        const double v = decode(dtype, tbuf.p, i * stride + c);
        FUZZ_ASSERT(!lam_unit || (v >= 0.0 && v <= 1.0 + 1e-2), "%s: targets[%lld][%lld] = %g",
                    func, (long long)i, (long long)c, v);
      }
    for (int64_t i = 0; i + 1 < n; ++i)
      FUZZ_ASSERT(std::memcmp(tbuf.p + (size_t)(i * stride + classes) * es,
                              t0.data() + (size_t)(i * stride + classes) * es,
                              (size_t)(stride - classes) * es) == 0,
                  "%s wrote between rows", func);
    return;
  }
  // The loss is finite when the logits are finite and moderate (|z| <= 1e30,
  // so that lse(z) - z[y] is representable), the lambdas in [0, 1], and for
  // MEAN the weights do not sum to 0 (documented NaN).
  double zmax = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < classes; ++c)
      zmax = std::max(zmax, std::fabs(decode(dtype, z0.data(), i * stride + c)));
  double wsum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double l1 = lv ? (double)lvv[i] : 1.0;
    if (yv[i] != ignore) wsum += l1;
    if (lv && yv[pvv[i]] != ignore) wsum += 1.0 - l1;
  }
  const bool moderate = z_finite && zmax <= 1e30 && lam_unit;
  const int64_t nloss = red == FASTMIX_REDUCTION_NONE ? n : 1;
  const bool mean = red == FASTMIX_REDUCTION_MEAN;
  // a gradient entry is at most 2 |scale| (/ wsum for MEAN): representable?
  const double gbound = 2.0 * std::fabs((double)scale) / (mean ? wsum : 1.0);
  const double dmax = dtype == FASTMIX_FLOAT16 ? 65504.0 : 3.3e38;
  if (moderate && !(mean && wsum < 1e-6))
    for (int64_t i = 0; i < nloss; ++i) {
      float v;
      std::memcpy(&v, loss.p + 4 * i, 4);
      FUZZ_ASSERT(std::isfinite(v), "%s: loss[%lld] = %g from finite logits (max |z| %g)", func,
                  (long long)i, (double)v, zmax);
    }
  if (g && moderate && std::isfinite(scale) && !(mean && wsum < 1e-6) && gbound < dmax) {
    const unsigned char *gp = g_in_place ? zbuf.p : gbuf.p;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < classes; ++c)
        FUZZ_ASSERT(std::isfinite(decode(dtype, gp, i * stride + c)),
                    "%s: grad[%lld][%lld] not finite", func, (long long)i, (long long)c);
  }
  if (gmode == 2)
    for (int64_t i = 0; i + 1 < n; ++i)
      FUZZ_ASSERT(std::memcmp(gbuf.p + (size_t)(i * stride + classes) * es,
                              g0.data() + (size_t)(i * stride + classes) * es,
                              (size_t)(stride - classes) * es) == 0,
                  "%s wrote between gradient rows", func);
}

// fastmix_loss: both kinds, labels (with mixup) or dense targets of any
// dtype, class and positive weights, threshold, every config field in and
// out of range, NULL config, and the workspace rules.
void fuzz_loss_general(FuzzedDataProvider &f) {
  const char *func = "fastmix_loss";
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  const int dtype = pick_enum(f, 3), kind = pick_enum(f, 2), red = pick_enum(f, 3);
  const int64_t batch = pick_size(f, kMaxBatch);
  const int64_t classes =
      f.ConsumeIntegralInRange(0, 15) == 0 ? pick_size(f, 1) : pick_size(f, kMaxClasses / 4);
  int64_t stride = classes, tstride = classes;
  if (f.ConsumeIntegralInRange(0, 7) == 0)
    stride = wrap_add(classes, -f.ConsumeIntegralInRange<int64_t>(1, 3));
  else if (f.ConsumeBool())
    stride = wrap_add(classes, f.ConsumeIntegralInRange<int64_t>(0, 9));
  const bool dense_drawn = f.ConsumeBool();
  const int tdtype = pick_enum(f, 3);
  if (f.ConsumeIntegralInRange(0, 7) == 0)
    tstride = f.ConsumeBool() ? wrap_add(classes, -1) : f.ConsumeIntegral<int64_t>();
  else if (f.ConsumeBool())
    tstride = wrap_add(classes, f.ConsumeIntegralInRange<int64_t>(0, 9));
  // 0: labels NULL, 1: lambdas only, 2: partners only, 3-5: plain, else mixup
  const int mix = f.ConsumeIntegralInRange(0, 7);
  const bool labels_given = dense_drawn ? mix == 0 : mix != 0;  // dense: labels given is an error
  const bool lam_given = mix == 1 || mix >= 6, par_given = mix == 2 || mix >= 6;
  const float eps = f.ConsumeBool() ? 0.0f : pick_float(f, 0.0f, 1.0f);
  const float scale = f.ConsumeBool() ? 1.0f : pick_float(f, 0.0f, 100.0f);
  const float thr = f.ConsumeBool() ? -1.0f : pick_float(f, 0.0f, 1.0f);
  const int64_t ignore = f.ConsumeBool() ? -100 : f.ConsumeIntegralInRange<int64_t>(-2, 5);
  const int cwmode = f.ConsumeIntegralInRange(0, 3), pwmode = f.ConsumeIntegralInRange(0, 3);
  const int gmode = f.ConsumeIntegralInRange(0, 2);  // 0 none, 1 in place, 2 apart
  const bool cfg_null = f.ConsumeIntegralInRange(0, 31) == 0;
  const int wsmode = f.ConsumeIntegralInRange(0, 3);  // 0 NULL, 1 enough, 2 too small, 3 misaligned
  const Ptr pz = pick_ptr(f), pt = pick_ptr(f), pl = pick_ptr(f);
  // config->targets NULL is a labelled call whatever was drawn: the library
  // then ignores targets_dtype and targets_stride and wants labels.
  const bool dense = dense_drawn && pt != Ptr::null;

  const bool dtype_ok = valid_dtype(dtype), tdtype_ok = valid_dtype(tdtype);
  const size_t es = dtype_ok ? esize(as_enum<fastmix_dtype>(dtype)) : 4;
  const size_t tes = tdtype_ok ? esize(as_enum<fastmix_dtype>(tdtype)) : 4;
  const bool shape_ok =
      batch >= 0 && batch <= FASTMIX_MAX_BATCH && classes >= 1 && stride >= classes;
  const int64_t span = shape_ok ? span_bytes(batch, classes, stride, es) : 0;
  const int64_t tspan =
      shape_ok && dense && tstride >= classes ? span_bytes(batch, classes, tstride, tes) : 0;
  const bool binary = kind == FASTMIX_LOSS_BINARY_CROSS_ENTROPY;
  bool valid = dev == FASTMIX_DEVICE_CPU && dtype_ok && !cfg_null && kind >= 0 && kind <= 1 &&
               red >= 0 && red <= 2 && eps >= 0.0f && eps <= 1.0f && std::isfinite(scale) &&
               thr < 1.0f && (binary || (thr < 0.0f && pwmode == 0)) && shape_ok && span >= 0 &&
               pz == Ptr::ok && pl != Ptr::null && cwmode != 3 && pwmode != 3;
  if (dense)
    valid = valid && tdtype_ok && tstride >= classes && tspan >= 0 && pt != Ptr::misaligned &&
            !labels_given && !lam_given && !par_given;
  else
    valid = valid && labels_given && lam_given == par_given;
  if (valid && (batch > kMaxBatch || span > (int64_t)kMaxBytes || tspan > (int64_t)kMaxBytes))
    return;
  const int64_t n = batch < 0 ? 0 : batch > kMaxBatch ? kMaxBatch : batch;
  const int64_t nc = classes < 1 ? 1 : classes > kMaxClasses ? kMaxClasses : classes;
  const size_t bytes = span > 0 && span <= (int64_t)kMaxBytes ? (size_t)span : 0;
  const size_t tbytes = tspan > 0 && tspan <= (int64_t)kMaxBytes ? (size_t)tspan : 0;

  Buf zbuf(bytes, pz == Ptr::misaligned ? 1 : 0), gbuf(gmode == 2 ? bytes : 0, 0);
  Buf tbuf(tbytes, pt == Ptr::misaligned ? 1 : 0);
  const bool z_finite = fill_data(f, dtype_ok ? dtype : 0, zbuf.p, (int64_t)(bytes / es));
  const bool t_finite = fill_data(f, tdtype_ok ? tdtype : 0, tbuf.p, (int64_t)(tbytes / tes));
  Buf labels((size_t)n * 8, 0), lam((size_t)n * 4, 0), par((size_t)n * 8, 0);
  Buf cw((size_t)nc * 4, cwmode == 3 ? 1 : 0), pw((size_t)nc * 4, pwmode == 3 ? 1 : 0);
  Buf loss((size_t)(red == FASTMIX_REDUCTION_NONE ? n : 1) * 4, 0);
  const bool cw_finite = fill_data(f, FASTMIX_FLOAT32, cw.p, nc);
  const bool pw_finite = fill_data(f, FASTMIX_FLOAT32, pw.p, nc);
  g_rng = f.ConsumeIntegral<uint64_t>() | 1;
  const bool labels_ok = fill_indices(f, reinterpret_cast<int64_t *>(labels.p), n,
                                      classes > 0 ? classes : 1, !binary, ignore);
  const bool par_ok = fill_indices(f, reinterpret_cast<int64_t *>(par.p), n, n, false, 0);
  const bool lam_unit = fill_lambdas(f, reinterpret_cast<float *>(lam.p), n);
  if (!dense && !labels_ok && n > 0 && classes >= 1) valid = false;
  if (!dense && par_given && !par_ok) valid = false;

  fastmix_loss_config cfg;
  fastmix_loss_config_init(&cfg);
  int kv = kind, rv = red, tv = tdtype;
  std::memcpy(&cfg.kind, &kv, sizeof kv);
  std::memcpy(&cfg.reduction, &rv, sizeof rv);
  std::memcpy(&cfg.targets_dtype, &tv, sizeof tv);
  cfg.label_smoothing = eps;
  cfg.grad_scale = scale;
  cfg.ignore_index = ignore;
  cfg.target_threshold = thr;
  cfg.class_weight = cwmode == 0 ? nullptr : reinterpret_cast<const float *>(cw.p);
  cfg.pos_weight = pwmode == 0 ? nullptr : reinterpret_cast<const float *>(pw.p);
  cfg.targets = dense ? tbuf.p : nullptr;
  cfg.targets_stride = tstride;
  // A workspace: the CPU ignores it; on CUDA (no device here) the checks
  // decide, and they come before the device is looked for.
  size_t need = 0;
  if (batch >= 0 && batch <= (1 << 16) && red >= 0 && red <= 2)
    need = red == FASTMIX_REDUCTION_NONE ? 0 : (8 + 4 * (size_t)batch + 7) / 8 * 8;
  std::vector<uint64_t> ws(need / 8 + 2);
  void *wsp = wsmode == 0   ? nullptr
              : wsmode == 3 ? reinterpret_cast<unsigned char *>(ws.data()) + 4
                            : static_cast<void *>(ws.data());
  const size_t ws_bytes = wsmode == 2 ? need / 2 : need;

  const auto z0 = zbuf.snap(), g0 = gbuf.snap(), t0 = tbuf.snap(), y0 = labels.snap(),
             l0 = lam.snap(), p0 = par.snap(), loss0 = loss.snap(), cw0 = cw.snap(),
             pw0 = pw.snap();
  void *g = gmode == 0 ? nullptr : gmode == 2 ? gbuf.p : zbuf.p;
  const fastmix_status st = fastmix_loss(
      as_enum<fastmix_device>(dev), as_enum<fastmix_dtype>(dtype),
      pz == Ptr::null ? nullptr : zbuf.p, batch, classes, stride,
      labels_given ? reinterpret_cast<const int64_t *>(labels.p) : nullptr,
      lam_given ? reinterpret_cast<const float *>(lam.p) : nullptr,
      par_given ? reinterpret_cast<const int64_t *>(par.p) : nullptr, cfg_null ? nullptr : &cfg,
      pl == Ptr::null ? nullptr : reinterpret_cast<float *>(loss.p), g, wsp, ws_bytes, nullptr);
  check_status(st, func);
  FUZZ_ASSERT(labels.same(y0) && lam.same(l0) && par.same(p0) && tbuf.same(t0) && cw.same(cw0) &&
                  pw.same(pw0),
              "%s wrote its inputs", func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid,
                "%s failed on valid arguments (kind %d, dense %d, batch %lld, classes %lld)", func,
                kind, (int)dense, (long long)batch, (long long)classes);
    FUZZ_ASSERT(zbuf.same(z0) && gbuf.same(g0) && loss.same(loss0), "%s failed but wrote", func);
    return;
  }
  FUZZ_ASSERT(valid,
              "%s accepted invalid arguments (device %d, dtype %d, kind %d, reduction %d, dense "
              "%d, batch %lld, classes %lld, stride %lld, tstride %lld, mix %d, eps %g, scale %g, "
              "threshold %g, cw %d, pw %d)",
              func, dev, dtype, kind, red, (int)dense, (long long)batch, (long long)classes,
              (long long)stride, (long long)tstride, mix, (double)eps, (double)scale, (double)thr,
              cwmode, pwmode);
  if (g != zbuf.p) FUZZ_ASSERT(zbuf.same(z0), "%s wrote the logits", func);
  if (gmode == 2)
    for (int64_t i = 0; i + 1 < n; ++i)
      FUZZ_ASSERT(std::memcmp(gbuf.p + (size_t)(i * stride + classes) * es,
                              g0.data() + (size_t)(i * stride + classes) * es,
                              (size_t)(stride - classes) * es) == 0,
                  "%s wrote between gradient rows", func);
  // Finite results from tame inputs: finite, moderate logits; weights and
  // targets in [0, 4) (fill_data's moderate modes give |v| < 4096, so check
  // the range here); lambdas in [0, 1]; a MEAN denominator away from 0.
  auto in_range = [](const unsigned char *p, int d, int64_t count, double lo, double hi) {
    for (int64_t i = 0; i < count; ++i) {
      const double v = decode(d, p, i);
      if (!(v >= lo && v < hi)) return false;
    }
    return true;
  };
  double zmax = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < classes; ++c)
      zmax = std::max(zmax, std::fabs(decode(dtype, z0.data(), i * stride + c)));
  const bool weights_tame = (cwmode == 0 || (cw_finite && in_range(cw.p, 0, nc, 0.25, 4.0))) &&
                            (pwmode == 0 || (pw_finite && in_range(pw.p, 0, nc, 0.0, 4.0)));
  bool targets_tame = !dense || t_finite;
  if (dense)
    for (int64_t i = 0; i < n && targets_tame; ++i)
      targets_tame = in_range(tbuf.p + (size_t)(i * tstride) * tes, tdtype, classes, 0.0, 4.0);
  const bool tame = z_finite && zmax <= 1e30 && lam_unit && weights_tame && targets_tame;
  // The MEAN denominator: batch * classes, batch, or for labelled
  // cross-entropy the summed weights of the terms that are not ignored.
  double denom = binary ? (double)n * (double)classes : (double)n;
  if (!binary && !dense) {
    const int64_t *yv = reinterpret_cast<const int64_t *>(labels.p);
    const int64_t *pv = reinterpret_cast<const int64_t *>(par.p);
    const float *lv = reinterpret_cast<const float *>(lam.p);
    const float *wv = reinterpret_cast<const float *>(cw.p);
    denom = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double s1 = lam_given ? (double)lv[i] : 1.0;
      const int64_t y1 = yv[i], y2 = lam_given ? yv[pv[i]] : ignore;
      if (y1 != ignore) denom += s1 * (cwmode ? (double)wv[y1] : 1.0);
      if (lam_given && y2 != ignore) denom += (1.0 - s1) * (cwmode ? (double)wv[y2] : 1.0);
    }
  }
  if (tame && (red != FASTMIX_REDUCTION_MEAN || denom >= 1e-6)) {
    const int64_t nloss = red == FASTMIX_REDUCTION_NONE ? n : 1;
    for (int64_t i = 0; i < nloss; ++i) {
      float v;
      std::memcpy(&v, loss.p + 4 * i, 4);
      FUZZ_ASSERT(std::isfinite(v), "%s: loss[%lld] = %g from tame inputs (max |z| %g)", func,
                  (long long)i, (double)v, zmax);
    }
  }
}

void fuzz_misc(FuzzedDataProvider &f) {
  const int s = f.ConsumeIntegral<int32_t>();
  const char *str = fastmix_status_string(as_enum<fastmix_status>(s));
  FUZZ_ASSERT(str != nullptr && str[0] != '\0', "status string of %d", s);
  FUZZ_ASSERT(fastmix_last_error() != nullptr, "last error");
  FUZZ_ASSERT(fastmix_version() == FASTMIX_VERSION, "version");
  FUZZ_ASSERT(fastmix_cuda_device_count() >= 0, "device count");
  // The loss's workspace size: INVALID_VALUE exactly for bad arguments, else
  // 8 + 4 * batch rounded up to 8 for a CUDA MEAN/SUM and 0 otherwise.
  const int dev = f.ConsumeIntegralInRange(-1, 2), red = f.ConsumeIntegralInRange(-1, 3);
  const int64_t batch = f.ConsumeIntegralInRange<int64_t>(-2, FASTMIX_MAX_BATCH + 2);
  size_t bytes = 12345;
  const fastmix_status st = fastmix_cross_entropy_workspace_size(
      as_enum<fastmix_device>(dev), batch, as_enum<fastmix_reduction>(red),
      f.ConsumeBool() ? &bytes : nullptr);
  const bool ok_args =
      dev >= 0 && dev <= 1 && red >= 0 && red <= 2 && batch >= 0 && batch <= FASTMIX_MAX_BATCH;
  if (st == FASTMIX_SUCCESS) {
    FUZZ_ASSERT(ok_args, "workspace_size accepted device %d, reduction %d, batch %lld", dev, red,
                (long long)batch);
    const size_t want = dev == 1 && red != 0 ? (8 + 4 * (size_t)batch + 7) / 8 * 8 : 0;
    FUZZ_ASSERT(bytes == want, "workspace_size gave %zu, want %zu", bytes, want);
  } else {
    FUZZ_ASSERT(st == FASTMIX_ERROR_INVALID_VALUE, "workspace_size status %d", (int)st);
    FUZZ_ASSERT(bytes == 12345, "workspace_size failed but wrote");
  }
}

}  // namespace

// CutMix: the draw, the apply, the fused call and its device-seed form.
// Small images, any config; on success the draw must be consistent (boxes
// inside the image or (-1, -1, -1, -1), lambdas in [0, 1]), the fused call
// bitwise the draw followed by the apply, the device-seed form bitwise the
// plain one, and elements between images untouched.
void fuzz_cutmix(FuzzedDataProvider &f, int which /* 0 draw, 1 apply, 2 fused, 3 seed */) {
  static const char *names[] = {"fastmix_cutmix_sample", "fastmix_cutmix_apply", "fastmix_cutmix",
                                "fastmix_cutmix_device_seed"};
  const char *func = names[which];
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  fastmix_mix_config c{};
  c.mixup_alpha = f.ConsumeBool() ? 0.0f : pick_float(f, 1e-3f, 10.0f);
  c.cutmix_alpha = f.ConsumeBool() ? 0.0f : pick_float(f, 1e-3f, 10.0f);
  if (f.ConsumeIntegralInRange(0, 3) == 0)
    c.cutmix_min = pick_float(f, 0.0f, 1.0f), c.cutmix_max = pick_float(f, 0.0f, 1.0f);
  c.prob = f.ConsumeBool() ? 1.0f : pick_float(f, 0.0f, 1.0f);
  c.switch_prob = pick_float(f, 0.0f, 1.0f);
  const int mode = pick_enum(f, 3), pairing = pick_enum(f, 4);
  c.mode = as_enum<fastmix_mix_mode>(mode);
  c.pairing = as_enum<fastmix_pairing>(pairing);
  c.correct_lam = f.ConsumeIntegral<int>();
  c.fold = f.ConsumeIntegral<int>();
  const int dtype = pick_enum(f, 3), layout = pick_enum(f, 2);
  const int64_t batch = pick_size(f, 16), ch = pick_size(f, 4), h = pick_size(f, 20),
                w = pick_size(f, 20);
  const int64_t elems_raw =
      ch > 0 && h > 0 && w > 0 && ch <= 4 && h <= 20 && w <= 20 ? ch * h * w : 0;
  const int64_t stride =
      elems_raw + (f.ConsumeBool() ? 0 : f.ConsumeIntegralInRange<int64_t>(-2, 9));
  const int where = f.ConsumeIntegralInRange(0, 7);  // 0-4 apart, 5-6 in place, 7 overlapping
  const Ptr pl = pick_ptr(f), pp = pick_ptr(f), pb = pick_ptr(f), ps = pick_ptr(f);
  const uint64_t seed = f.ConsumeIntegral<uint64_t>(), offset = f.ConsumeIntegral<uint64_t>();
  const uint64_t inc = f.ConsumeIntegral<uint64_t>();

  auto unit = [](double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0; };
  const bool minmax = !(c.cutmix_min == 0.0f && c.cutmix_max == 0.0f);
  const bool config_ok =
      std::isfinite(c.mixup_alpha) && c.mixup_alpha >= 0 && std::isfinite(c.cutmix_alpha) &&
      c.cutmix_alpha >= 0 &&
      (!minmax || (unit(c.cutmix_min) && unit(c.cutmix_max) && c.cutmix_min < c.cutmix_max)) &&
      (c.mixup_alpha > 0 || c.cutmix_alpha > 0 || minmax) && unit(c.prob) && unit(c.switch_prob) &&
      mode >= 0 && mode <= 2 && pairing >= 0 && pairing <= 3 && (mode != 1 || pairing == 2);
  // Valid but too large to allocate here: skipped.
  if ((batch > kMaxBatch && batch <= FASTMIX_MAX_BATCH) || (ch > 4 && ch <= 1000) ||
      (h > 20 && h <= INT32_MAX) || (w > 20 && w <= INT32_MAX))
    return;
  const bool batch_ok = batch >= 0 && batch <= kMaxBatch;
  const bool hw_ok = h >= 1 && h <= 20 && w >= 1 && w <= 20;
  const bool shape_ok = valid_dtype(dtype) && layout >= 0 && layout <= 1 && ch >= 1 && ch <= 4 &&
                        hw_ok && stride >= elems_raw;
  const int64_t n = batch_ok ? batch : 0;
  const size_t es = valid_dtype(dtype) ? esize(as_enum<fastmix_dtype>(dtype)) : 4;
  const size_t bytes = shape_ok ? (size_t)span_bytes(n, elems_raw, stride, es) : 0;
  const bool overlap = where == 7 && bytes > es;  // out = x + one element
  const bool in_place = where == 5 || where == 6 || (where == 7 && !overlap);
  const bool images_ok = shape_ok && !overlap;
  bool valid = dev == FASTMIX_DEVICE_CPU && batch_ok && hw_ok && pl == Ptr::ok && pp == Ptr::ok &&
               pb == Ptr::ok;
  if (which != 1) valid = valid && config_ok;
  if (which != 0) valid = valid && images_ok;
  if (which == 3) valid = valid && ps == Ptr::ok;
  const size_t shift = overlap ? es : 0;
  Buf xbuf(bytes + shift, 0), obuf(in_place || overlap ? 0 : bytes, 0);
  const bool x_finite =
      fill_data(f, valid_dtype(dtype) ? dtype : 0, xbuf.p, (int64_t)((bytes + shift) / es));
  unsigned char *x = xbuf.p, *out = in_place ? xbuf.p : overlap ? xbuf.p + shift : obuf.p;
  Buf lam((size_t)n * 4, pl == Ptr::misaligned ? 1 : 0),
      par((size_t)n * 8, pp == Ptr::misaligned ? 4 : 0),
      box((size_t)n * 16, pb == Ptr::misaligned ? 2 : 0), so(16, ps == Ptr::misaligned ? 4 : 0);
  if (which == 1 && valid) {  // given draws (aligned): lambdas, partners, boxes, some bad
    (void)fill_lambdas(f, reinterpret_cast<float *>(lam.p), n);
    if (!fill_indices(f, reinterpret_cast<int64_t *>(par.p), n, n, false, 0)) valid = false;
    int32_t *bv = reinterpret_cast<int32_t *>(box.p);
    for (int64_t i = 0; i < n; ++i) {
      if (f.ConsumeBool()) {
        for (int k = 0; k < 4; ++k) bv[4 * i + k] = -1;
        continue;
      }
      for (int k = 0; k < 4; ++k) bv[4 * i + k] = f.ConsumeIntegralInRange<int32_t>(-1, 21);
      const int32_t *b = bv + 4 * i;
      const bool blend = b[0] == -1 && b[1] == -1 && b[2] == -1 && b[3] == -1;
      if (!blend &&
          !(b[0] >= 0 && b[0] <= b[2] && b[2] <= h && b[1] >= 0 && b[1] <= b[3] && b[3] <= w))
        valid = false;
    }
  }
  const uint64_t so_init[2] = {seed, offset};
  std::memcpy(so.p, so_init, 16);
  const auto x0 = xbuf.snap(), o0 = obuf.snap(), lam0 = lam.snap(), par0 = par.snap(),
             box0 = box.snap(), so0 = so.snap();
  float *l = pl == Ptr::null ? nullptr : reinterpret_cast<float *>(lam.p);
  int64_t *p = pp == Ptr::null ? nullptr : reinterpret_cast<int64_t *>(par.p);
  int32_t *b = pb == Ptr::null ? nullptr : reinterpret_cast<int32_t *>(box.p);
  uint64_t *s = ps == Ptr::null ? nullptr : reinterpret_cast<uint64_t *>(so.p);
  const fastmix_device d = as_enum<fastmix_device>(dev);
  const fastmix_dtype t = as_enum<fastmix_dtype>(dtype);
  const fastmix_layout lay = as_enum<fastmix_layout>(layout);
  fastmix_status st;
  if (which == 0)
    st = fastmix_cutmix_sample(d, &c, seed, offset, batch, h, w, l, p, b, nullptr);
  else if (which == 1)
    st = fastmix_cutmix_apply(d, t, lay, x, out, batch, ch, h, w, stride, l, p, b, nullptr);
  else if (which == 2)
    st = fastmix_cutmix(d, t, &c, seed, offset, lay, x, out, batch, ch, h, w, stride, l, p, b,
                        nullptr);
  else
    st = fastmix_cutmix_device_seed(d, t, &c, s, inc, lay, x, out, batch, ch, h, w, stride, l, p, b,
                                    nullptr);
  check_status(st, func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid, "%s failed on valid arguments (batch %lld, %lldx%lldx%lld, stride %lld)",
                func, (long long)batch, (long long)ch, (long long)h, (long long)w,
                (long long)stride);
    FUZZ_ASSERT(xbuf.same(x0) && obuf.same(o0) && lam.same(lam0) && par.same(par0) &&
                    box.same(box0) && so.same(so0),
                "%s failed but wrote an output", func);
    return;
  }
  FUZZ_ASSERT(valid, "%s accepted invalid arguments (config ok %d, images ok %d, where %d)", func,
              (int)config_ok, (int)images_ok, where);
  if (!in_place && which != 0) FUZZ_ASSERT(xbuf.same(x0), "%s wrote x", func);
  const float *lv = reinterpret_cast<const float *>(lam.p);
  const int64_t *pv = reinterpret_cast<const int64_t *>(par.p);
  const int32_t *bv = reinterpret_cast<const int32_t *>(box.p);
  if (which != 1) {
    for (int64_t i = 0; i < n; ++i) {
      const int32_t *q = bv + 4 * i;
      const bool blend = q[0] == -1 && q[1] == -1 && q[2] == -1 && q[3] == -1;
      FUZZ_ASSERT(lv[i] >= 0.0f && lv[i] <= 1.0f, "%s: lambda %g", func, (double)lv[i]);
      FUZZ_ASSERT(pv[i] >= 0 && pv[i] < n, "%s: partner %lld", func, (long long)pv[i]);
      FUZZ_ASSERT(blend || (q[0] >= 0 && q[0] <= q[2] && q[2] <= h && q[1] >= 0 && q[1] <= q[3] &&
                            q[3] <= w),
                  "%s: box (%d, %d, %d, %d) of a %lldx%lld image", func, q[0], q[1], q[2], q[3],
                  (long long)h, (long long)w);
    }
  }
  if (which == 0) return;
  const unsigned char *o = in_place ? xbuf.p : obuf.p;
  const std::vector<unsigned char> &before = in_place ? x0 : o0;
  for (int64_t i = 0; i + 1 < n; ++i)
    if (stride > elems_raw)
      FUZZ_ASSERT(std::memcmp(o + (size_t)(i * stride + elems_raw) * es,
                              before.data() + (size_t)(i * stride + elems_raw) * es,
                              (size_t)(stride - elems_raw) * es) == 0,
                  "%s wrote between images %lld and %lld", func, (long long)i, (long long)i + 1);
  if (x_finite && which >= 2)
    for (int64_t k = 0; k < (int64_t)(bytes / es); ++k)
      if (k % stride < elems_raw)
        FUZZ_ASSERT(std::isfinite(decode(dtype, o, k)), "%s: non-finite output %lld from finite x",
                    func, (long long)k);
  if (which >= 2) {
    // fused == draw + apply (bitwise); the device-seed form == the plain one
    Buf lam2((size_t)n * 4, 0), par2((size_t)n * 8, 0), box2((size_t)n * 16, 0), out2(bytes, 0);
    const unsigned char *src = x0.empty() ? xbuf.p : x0.data();  // never NULL
    FUZZ_ASSERT(fastmix_cutmix_sample(
                    FASTMIX_DEVICE_CPU, &c, seed, offset, batch, h, w,
                    reinterpret_cast<float *>(lam2.p), reinterpret_cast<int64_t *>(par2.p),
                    reinterpret_cast<int32_t *>(box2.p), nullptr) == FASTMIX_SUCCESS,
                "plain fastmix_cutmix_sample failed");
    FUZZ_ASSERT(lam2.same(lam.snap()) && par2.same(par.snap()) && box2.same(box.snap()),
                "%s: draw differs from fastmix_cutmix_sample", func);
    FUZZ_ASSERT(
        fastmix_cutmix_apply(FASTMIX_DEVICE_CPU, t, lay, src, out2.p, batch, ch, h, w, stride,
                             reinterpret_cast<float *>(lam2.p), reinterpret_cast<int64_t *>(par2.p),
                             reinterpret_cast<int32_t *>(box2.p), nullptr) == FASTMIX_SUCCESS,
        "fastmix_cutmix_apply of the draw failed");
    for (int64_t k = 0; k < (int64_t)(bytes / es); ++k)
      if (k % stride < elems_raw)
        FUZZ_ASSERT(std::memcmp(o + k * es, out2.p + k * es, es) == 0 ||
                        (std::isnan(decode(dtype, o, k)) && std::isnan(decode(dtype, out2.p, k))),
                    "%s: element %lld differs from draw + apply (%g, %g)", func, (long long)k,
                    decode(dtype, o, k), decode(dtype, out2.p, k));
    if (which == 3) {
      uint64_t after[2];
      std::memcpy(after, so.p, 16);
      FUZZ_ASSERT(after[0] == seed && after[1] == offset + inc, "%s: seed_offset not advanced",
                  func);
    }
  }
}

// The uint8 input path: fastmix_cutmix_apply_u8 (given draws) and
// fastmix_cutmix_u8 (drawn), any layouts, dtype, mean and std.  On success:
// outputs finite (uint8 in, finite scale and shift), x untouched, elements
// between images untouched, the fused form bitwise its draw + apply.
void fuzz_u8(FuzzedDataProvider &f, bool fused) {
  const char *func = fused ? "fastmix_cutmix_u8" : "fastmix_cutmix_apply_u8";
  const int dev = pick_device(f);
  if (skip_cuda(dev)) return;
  fastmix_mix_config cfg{};
  cfg.mixup_alpha = 0.8f, cfg.cutmix_alpha = 1.0f, cfg.prob = 0.9f, cfg.switch_prob = 0.5f;
  cfg.mode = FASTMIX_MIX_ELEM, cfg.pairing = FASTMIX_PAIRING_PERMUTATION, cfg.correct_lam = 1;
  const int in_l = pick_enum(f, 2), out_l = pick_enum(f, 2), dtype = pick_enum(f, 3);
  const int64_t batch = pick_size(f, 8), ch = pick_size(f, 5), h = pick_size(f, 9),
                w = pick_size(f, 9);
  if ((batch > 8 && batch <= FASTMIX_MAX_BATCH) || (ch > 5 && ch <= 64) ||
      (h > 9 && h <= INT32_MAX) || (w > 9 && w <= INT32_MAX))
    return;  // valid, but too large to allocate here
  const bool shape_ok =
      batch >= 0 && batch <= 8 && ch >= 1 && ch <= 5 && h >= 1 && h <= 9 && w >= 1 && w <= 9;
  const int64_t elems = shape_ok ? ch * h * w : 0;
  const int64_t xs = elems + (f.ConsumeBool() ? 0 : f.ConsumeIntegralInRange<int64_t>(-1, 5));
  const int64_t os = elems + (f.ConsumeBool() ? 0 : f.ConsumeIntegralInRange<int64_t>(-1, 5));
  float mean[5], stdv[5];
  for (int k = 0; k < 5; ++k)
    mean[k] = pick_float(f, -2.0f, 2.0f), stdv[k] = pick_float(f, 1e-3f, 2.0f);
  bool norm_ok = true, tame = true;  // tame: every output representable in float16
  for (int64_t k = 0; k < (shape_ok ? ch : 0); ++k) {
    norm_ok = norm_ok && std::isfinite(mean[k]) && std::isfinite(stdv[k]) && stdv[k] > 0.0f;
    tame = tame && std::fabs(mean[k]) <= 2.0f && stdv[k] >= 1e-3f;
  }
  const bool dtype_ok = valid_dtype(dtype);
  const size_t es = dtype_ok ? esize(as_enum<fastmix_dtype>(dtype)) : 4;
  bool valid = dev == FASTMIX_DEVICE_CPU && in_l >= 0 && in_l <= 1 && out_l >= 0 && out_l <= 1 &&
               dtype_ok && shape_ok && xs >= elems && os >= elems && norm_ok;
  const int64_t n = shape_ok ? batch : 0;
  const size_t xbytes = valid && n > 0 ? (size_t)((n - 1) * xs + elems) : 0;
  const size_t obytes = valid && n > 0 ? (size_t)((n - 1) * os + elems) * es : 0;
  Buf xbuf(xbytes, 0), obuf(obytes, 0), lam((size_t)n * 4, 0), par((size_t)n * 8, 0),
      box((size_t)n * 16, 0);
  for (size_t k = 0; k < xbytes; ++k) xbuf.p[k] = f.ConsumeIntegral<uint8_t>();
  if (!fused && valid) {  // given draws, some bad
    (void)fill_lambdas(f, reinterpret_cast<float *>(lam.p), n);
    if (!fill_indices(f, reinterpret_cast<int64_t *>(par.p), n, n, false, 0)) valid = false;
    int32_t *bv = reinterpret_cast<int32_t *>(box.p);
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0; k < 4; ++k) bv[4 * i + k] = f.ConsumeIntegralInRange<int32_t>(-1, 10);
      const int32_t *b = bv + 4 * i;
      const bool blend = b[0] == -1 && b[1] == -1 && b[2] == -1 && b[3] == -1;
      if (!blend &&
          !(b[0] >= 0 && b[0] <= b[2] && b[2] <= h && b[1] >= 0 && b[1] <= b[3] && b[3] <= w))
        valid = false;
    }
  }
  const auto x0 = xbuf.snap(), o0 = obuf.snap(), lam0 = lam.snap(), par0 = par.snap(),
             box0 = box.snap();
  const fastmix_device d = as_enum<fastmix_device>(dev);
  const fastmix_layout il = as_enum<fastmix_layout>(in_l), ol = as_enum<fastmix_layout>(out_l);
  const fastmix_dtype t = as_enum<fastmix_dtype>(dtype);
  float *l = reinterpret_cast<float *>(lam.p);
  int64_t *p = reinterpret_cast<int64_t *>(par.p);
  int32_t *b = reinterpret_cast<int32_t *>(box.p);
  const uint64_t seed = f.ConsumeIntegral<uint64_t>();
  const fastmix_status st =
      fused ? fastmix_cutmix_u8(d, &cfg, seed, 1, il, xbuf.p, batch, ch, h, w, xs, mean, stdv, t,
                                ol, obuf.p, os, l, p, b, nullptr)
            : fastmix_cutmix_apply_u8(d, il, xbuf.p, batch, ch, h, w, xs, mean, stdv, t, ol, obuf.p,
                                      os, l, p, b, nullptr);
  check_status(st, func);
  if (st != FASTMIX_SUCCESS) {
    FUZZ_ASSERT(!valid, "%s failed on valid arguments", func);
    FUZZ_ASSERT(
        xbuf.same(x0) && obuf.same(o0) && lam.same(lam0) && par.same(par0) && box.same(box0),
        "%s failed but wrote an output", func);
    return;
  }
  FUZZ_ASSERT(valid, "%s accepted invalid arguments (layouts %d %d, dtype %d, %lldx%lldx%lldx%lld)",
              func, in_l, out_l, dtype, (long long)batch, (long long)ch, (long long)h,
              (long long)w);
  FUZZ_ASSERT(xbuf.same(x0), "%s wrote x", func);
  for (int64_t k = 0; k < (int64_t)(obytes / es); ++k) {
    if (k % os < elems)  // given lambdas may be anything; drawn ones lie in [0, 1]
      FUZZ_ASSERT(!fused || !tame || std::isfinite(decode(dtype, obuf.p, k)),
                  "%s: non-finite output %lld", func, (long long)k);
    else
      FUZZ_ASSERT(std::memcmp(obuf.p + k * es, o0.data() + k * es, es) == 0,
                  "%s wrote between images", func);
  }
  if (fused) {
    Buf out2(obytes, 0);
    FUZZ_ASSERT(
        fastmix_cutmix_apply_u8(FASTMIX_DEVICE_CPU, il, xbuf.p, batch, ch, h, w, xs, mean, stdv, t,
                                ol, out2.p, os, l, p, b, nullptr) == FASTMIX_SUCCESS,
        "apply of the fused draw failed");
    for (int64_t k = 0; k < (int64_t)(obytes / es); ++k)
      if (k % os < elems)
        FUZZ_ASSERT(std::memcmp(obuf.p + k * es, out2.p + k * es, es) == 0,
                    "%s: element %lld differs from draw + apply", func, (long long)k);
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider f(data, size);
  // 16 values: the seeds of tests/fuzz/corpus keep the entry point their last
  // byte chose when there were 15 (each seed's byte gives the same one).
  const int k = f.ConsumeIntegralInRange(0, 15);
  if (k < 2)
    fuzz_sample(f, k == 1);
  else if (k < 5)
    fuzz_images(f, k - 2);
  else if (k < 7)
    fuzz_loss(f, k - 5);
  else if (k < 11)
    fuzz_cutmix(f, f.ConsumeIntegralInRange(0, 3));
  else if (k < 13)
    fuzz_u8(f, f.ConsumeBool());
  else if (k == 15)
    fuzz_loss_general(f);
  else
    fuzz_misc(f);
  return 0;
}
