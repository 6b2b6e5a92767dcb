// CutMix (mixup or CutMix per sample) on every device:
//  - the draw against a reference written here from the header's
//    definition (its own Philox4x32-10, timm's box formulas in integers and
//    double), for every mode, pairing and kind of config;
//  - the apply against the float32 blend reference and exact copies, for
//    every dtype and layout, odd sizes, boxes at the edges, empty and full
//    boxes, strides, misaligned pointers, in and out of place, outputs
//    poisoned and the bytes around the batch checked untouched;
//  - fused == draw + apply bitwise, device seed == value seed, and the loss
//    chained on the draw against a float64 two-term cross-entropy.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

// ---- an independent Philox4x32-10 (Salmon et al. 2011) ----------------------
struct Words {
  uint32_t v[4];
};

Words philox_ref(uint64_t seed, uint32_t block, uint32_t index, uint64_t offset) {
  uint32_t c[4] = {block, index, (uint32_t)offset, (uint32_t)(offset >> 32)};
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
    const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0, c[1] = (uint32_t)p1, c[2] = n2, c[3] = (uint32_t)p0;
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
  return Words{{c[0], c[1], c[2], c[3]}};
}

double u01(uint32_t w) { return ((double)(w >> 9) + 0.5) / 8388608.0; }
int64_t uint_in(uint32_t w, int64_t lo, int64_t hi) {
  return hi <= lo ? lo : lo + (int64_t)(((uint64_t)w * (uint64_t)(hi - lo)) >> 32);
}

fastmix_mix_config make_config(float mixup_alpha, float cutmix_alpha, double mn, double mx,
                               float prob, float switch_prob, fastmix_mix_mode mode,
                               fastmix_pairing pairing, int correct, int fold) {
  fastmix_mix_config c;
  c.mixup_alpha = mixup_alpha;
  c.cutmix_alpha = cutmix_alpha;
  c.cutmix_min = mn;
  c.cutmix_max = mx;
  c.prob = prob;
  c.switch_prob = switch_prob;
  c.mode = mode;
  c.pairing = pairing;
  c.correct_lam = correct;
  c.fold = fold;
  return c;
}

std::string describe(const fastmix_mix_config &c) {
  std::ostringstream s;
  s << "mixup_alpha " << c.mixup_alpha << " cutmix_alpha " << c.cutmix_alpha << " minmax "
    << c.cutmix_min << "," << c.cutmix_max << " prob " << c.prob << " switch " << c.switch_prob
    << " mode " << (int)c.mode << " pairing " << pairing_name(c.pairing) << " correct "
    << c.correct_lam << " fold " << c.fold;
  return s.str();
}

struct CutDraw {
  std::vector<float> lam;
  std::vector<int64_t> par;
  std::vector<int32_t> box;
};

CutDraw cut_draw(fastmix_device dev, const fastmix_mix_config &c, uint64_t seed, uint64_t offset,
                 int64_t n, int64_t h, int64_t w) {
  const size_t m = (size_t)std::clamp<int64_t>(n, 1, int64_t(1) << 24);  // poisoned outputs
  Buffer lb(dev, m * 4), pb(dev, m * 8), bb(dev, m * 16);
  const fastmix_status st = fastmix_cutmix_sample(dev, &c, seed, offset, n, h, w, lb.as<float>(),
                                                  pb.as<int64_t>(), bb.as<int32_t>(), nullptr);
  INFO(fastmix_last_error());
  REQUIRE(st == FASTMIX_SUCCESS);
  finish(dev);
  CutDraw d{lb.copy_as<float>(), pb.copy_as<int64_t>(), bb.copy_as<int32_t>()};
  d.lam.resize((size_t)n), d.par.resize((size_t)n), d.box.resize((size_t)n * 4);
  return d;
}

// Checks a draw against the header's definition; "" when right.  The mixup
// lambdas and the random pairings come from fastmix_sample (the contract says
// bitwise those); the CutMix Beta lambdas from the same config without
// correct_lam (`raw`, which must give the same boxes).
std::string check_draw(const fastmix_mix_config &c, uint64_t seed, uint64_t offset, int64_t n,
                       int64_t h, int64_t w, const CutDraw &d, const CutDraw *raw) {
  std::vector<float> sl((size_t)n);
  std::vector<int64_t> sp((size_t)n);
  const float mix_alpha = c.mixup_alpha > 0 ? c.mixup_alpha : 1.0f;
  REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, mix_alpha, c.fold, c.pairing, seed, offset, n,
                         sl.data(), sp.data(), nullptr) == FASTMIX_SUCCESS);
  const bool minmax = !(c.cutmix_min == 0 && c.cutmix_max == 0);
  const bool use_mix = c.mixup_alpha > 0, use_cut = c.cutmix_alpha > 0 || minmax;
  std::ostringstream err;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t u = c.mode == FASTMIX_MIX_BATCH  ? 0
                      : c.mode == FASTMIX_MIX_PAIR ? std::min(i, n - 1 - i)
                                                   : i;
    const Words wd = philox_ref(seed, 0x40000000u, (uint32_t)u, offset);
    const float lam = d.lam[(size_t)i];
    const int64_t p = d.par[(size_t)i];
    const int32_t *b = &d.box[(size_t)i * 4];
    err << "sample " << i << " (unit " << u << "): lambda " << lam << " partner " << p << " box ("
        << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << "): ";
    if (!(u01(wd.v[0]) < (double)c.prob)) {
      if (lam != 1.0f || p != i || b[0] != 0 || b[1] != 0 || b[2] != 0 || b[3] != 0)
        return err.str() + "an unmixed sample must be (1, itself, (0, 0, 0, 0))";
      err.str("");
      continue;
    }
    if (p != sp[(size_t)i]) return err.str() + "partner is not the pairing's";
    const bool cut = use_cut && (!use_mix || u01(wd.v[1]) < (double)c.switch_prob);
    if (!cut) {
      if (b[0] != -1 || b[1] != -1 || b[2] != -1 || b[3] != -1)
        return err.str() + "a mixup sample's box must be (-1, -1, -1, -1)";
      if (!same_bits({lam}, {sl[(size_t)u]}))
        return err.str() + "mixup lambda is not fastmix_sample's of its unit";
      err.str("");
      continue;
    }
    int64_t y0, x0, y1, x1;
    if (minmax) {
      const Words s = philox_ref(seed, 0x40000001u, (uint32_t)u, offset);
      const int64_t ch =
          uint_in(s.v[0], (int64_t)((double)h * c.cutmix_min), (int64_t)((double)h * c.cutmix_max));
      const int64_t cw =
          uint_in(s.v[1], (int64_t)((double)w * c.cutmix_min), (int64_t)((double)w * c.cutmix_max));
      y0 = uint_in(wd.v[2], 0, h - ch), x0 = uint_in(wd.v[3], 0, w - cw);
      y1 = y0 + ch, x1 = x0 + cw;
    } else {
      const float raw_lam = raw ? raw->lam[(size_t)i] : lam;
      if (!(raw_lam >= 0.0f && raw_lam <= 1.0f)) return err.str() + "Beta lambda outside [0, 1]";
      if (c.fold && raw_lam < 0.5f) return err.str() + "folded Beta lambda below 1/2";
      const double ratio = std::sqrt(1.0 - (double)raw_lam);
      const int64_t ch = (int64_t)((double)h * ratio), cw = (int64_t)((double)w * ratio);
      const int64_t cy = uint_in(wd.v[2], 0, h), cx = uint_in(wd.v[3], 0, w);
      y0 = std::clamp<int64_t>(cy - ch / 2, 0, h), y1 = std::clamp<int64_t>(cy + ch / 2, 0, h);
      x0 = std::clamp<int64_t>(cx - cw / 2, 0, w), x1 = std::clamp<int64_t>(cx + cw / 2, 0, w);
    }
    if (b[0] != y0 || b[1] != x0 || b[2] != y1 || b[3] != x1) {
      err << "expected box (" << y0 << ", " << x0 << ", " << y1 << ", " << x1 << ")";
      return err.str();
    }
    if (c.correct_lam || minmax) {
      const float want = (float)(1.0 - (double)((y1 - y0) * (x1 - x0)) / ((double)h * (double)w));
      if (!same_bits({lam}, {want})) {
        err << "corrected lambda should be " << want;
        return err.str();
      }
    }
    err.str("");
  }
  return "";
}

}  // namespace

TEST_CASE("cutmix draw follows its definition: modes, pairings, mixup/CutMix/min-max, prob",
          "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a1);
  const bool sim = on_simulator();
  struct Hw {
    int64_t h, w;
  };
  const Hw sizes[] = {{1, 1}, {1, 7}, {5, 3}, {224, 224}, {31, 2}};
  std::vector<int64_t> batches = {1, 2, 3, 8, 33};
  if (!sim) batches.push_back(301);
  std::vector<fastmix_mix_config> configs;
  for (fastmix_mix_mode mode : {FASTMIX_MIX_ELEM, FASTMIX_MIX_PAIR, FASTMIX_MIX_BATCH})
    for (fastmix_pairing pr : kAllPairings) {
      if (mode == FASTMIX_MIX_PAIR && pr != FASTMIX_PAIRING_FLIP) continue;
      configs.push_back(make_config(0.8f, 1.0f, 0, 0, 1.0f, 0.5f, mode, pr, 1, 0));
      configs.push_back(make_config(0.0f, 0.3f, 0, 0, 0.7f, 0.5f, mode, pr, 0, 1));
      configs.push_back(make_config(0.4f, 0.0f, 0.2f, 0.9f, 1.0f, 0.3f, mode, pr, 0, 0));
      configs.push_back(make_config(0.0f, 0.0f, 0.0f, 1.0f, 0.5f, 0.5f, mode, pr, 1, 1));
      configs.push_back(make_config(0.2f, 2.0f, 0, 0, 0.0f, 0.5f, mode, pr, 1, 0));
      configs.push_back(make_config(1e-3f, 1e-3f, 0, 0, 1.0f, 1.0f, mode, pr, 0, 0));
      configs.push_back(make_config(0.4f, 0.0f, 0, 0, 1.0f, 0.0f, mode, pr, 0, 1));
    }
  for (fastmix_device dev : test_devices())
    for (const fastmix_mix_config &c : configs)
      for (int64_t n : batches) {
        const Hw hw = sizes[rng() % 5];
        const uint64_t s = rng(), off = rng();
        INFO(device_name(dev) << " " << describe(c) << " batch " << n << " " << hw.h << "x" << hw.w
                              << " seed " << s << " offset " << off);
        const CutDraw d = cut_draw(dev, c, s, off, n, hw.h, hw.w);
        CutDraw raw_d;
        const CutDraw *raw = nullptr;
        if (c.correct_lam) {
          fastmix_mix_config r = c;
          r.correct_lam = 0;
          raw_d = cut_draw(dev, r, s, off, n, hw.h, hw.w);
          raw = &raw_d;
          if (raw_d.box != d.box) FAIL("correct_lam changed the boxes");
        }
        const std::string problem = check_draw(c, s, off, n, hw.h, hw.w, d, raw);
        if (!problem.empty()) FAIL(problem);
        if (dev != FASTMIX_DEVICE_CPU) {
          const CutDraw cpu = cut_draw(FASTMIX_DEVICE_CPU, c, s, off, n, hw.h, hw.w);
          CHECK(same_bits(cpu.lam, d.lam));
          CHECK(cpu.par == d.par);
          CHECK(cpu.box == d.box);
        }
      }
}

TEST_CASE("cutmix draw: all-mixup with prob 1 is fastmix_sample's draw, bitwise",
          "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a2);
  for (fastmix_device dev : test_devices())
    for (fastmix_pairing pr : kAllPairings)
      for (int fold : {0, 1}) {
        const uint64_t s = rng(), off = rng();
        const int64_t n = 1 + (int64_t)(rng() % 100);
        const fastmix_mix_config c =
            make_config(0.4f, 0.0f, 0, 0, 1.0f, 0.5f, FASTMIX_MIX_ELEM, pr, 1, fold);
        const CutDraw d = cut_draw(dev, c, s, off, n, 3, 4);
        std::vector<float> lam((size_t)n);
        std::vector<int64_t> par((size_t)n);
        REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, fold, pr, s, off, n, lam.data(),
                               par.data(), nullptr) == FASTMIX_SUCCESS);
        CHECK(same_bits(lam, d.lam));
        CHECK(par == d.par);
        CHECK(d.box == std::vector<int32_t>((size_t)n * 4, -1));
      }
}

namespace {

struct ApplyCase {
  fastmix_dtype dtype;
  fastmix_layout layout;
  int64_t n, c, h, w, stride;
  int64_t x_mis, out_mis;  // elements past a 256-byte boundary
  bool in_place;
};

std::string describe(fastmix_device dev, const ApplyCase &a) {
  std::ostringstream s;
  s << device_name(dev) << " " << dtype_name(a.dtype)
    << (a.layout == FASTMIX_LAYOUT_NHWC ? " NHWC " : " NCHW ") << a.n << "x" << a.c << "x" << a.h
    << "x" << a.w << " stride " << a.stride << " x+" << a.x_mis << " out+" << a.out_mis
    << (a.in_place ? " in place" : " out of place");
  return s.str();
}

// Random draws for an apply: blends, cuts at the edges, empty and full boxes.
void random_draw(const ApplyCase &a, std::mt19937_64 &rng, std::vector<float> &lam,
                 std::vector<int64_t> &par, std::vector<int32_t> &box) {
  lam = random_lambdas(a.n, rng);
  par = make_partners(rng() % 2 ? PartnerKind::permutation : PartnerKind::random_map, a.n, rng);
  box.assign((size_t)a.n * 4, -1);
  for (int64_t i = 0; i < a.n; ++i) {
    int32_t *b = &box[(size_t)i * 4];
    const int kind = (int)(rng() % 6);
    if (kind == 0) continue;  // blend
    auto span = [&](int64_t len, int32_t &lo, int32_t &hi) {
      const int k = (int)(rng() % 5);
      if (k == 0)
        lo = 0, hi = (int32_t)len;  // full
      else if (k == 1)
        lo = hi = (int32_t)(rng() % (uint64_t)(len + 1));  // empty
      else if (k == 2)
        lo = 0, hi = (int32_t)(rng() % (uint64_t)(len + 1));
      else if (k == 3)
        lo = (int32_t)(rng() % (uint64_t)(len + 1)), hi = (int32_t)len;
      else {
        lo = (int32_t)(rng() % (uint64_t)(len + 1));
        hi = lo + (int32_t)(rng() % (uint64_t)(len - lo + 1));
      }
    };
    span(a.h, b[0], b[2]);
    span(a.w, b[1], b[3]);
  }
}

constexpr int64_t kGuard = 3;

std::string run_apply(fastmix_device dev, const ApplyCase &a, std::mt19937_64 &rng) {
  const size_t es = dtype_size(a.dtype);
  const int64_t elems = a.c * a.h * a.w;
  const int64_t total = (a.n - 1) * a.stride + elems + 2 * kGuard;
  const size_t bytes = (size_t)total * es;
  std::vector<unsigned char> x_before(bytes);
  fill_random(a.dtype, x_before.data(), total, rng);
  std::vector<float> lam;
  std::vector<int64_t> par;
  std::vector<int32_t> box;
  random_draw(a, rng, lam, par, box);
  Buffer xb(dev, bytes, (size_t)a.x_mis * es);
  xb.upload(x_before.data());
  Buffer ob(dev, a.in_place ? 0 : bytes, (size_t)a.out_mis * es);
  Buffer lb = to_device(dev, lam), pb = to_device(dev, par), bb = to_device(dev, box);
  unsigned char *x = xb.data() + kGuard * es;
  unsigned char *out = a.in_place ? x : ob.data() + kGuard * es;
  const fastmix_status st =
      fastmix_cutmix_apply(dev, a.dtype, a.layout, x, out, a.n, a.c, a.h, a.w, a.stride,
                           lb.as<float>(), pb.as<int64_t>(), bb.as<int32_t>(), nullptr);
  if (st != FASTMIX_SUCCESS)
    return std::string("status ") + fastmix_status_string(st) + ": " + fastmix_last_error();
  finish(dev);
  const std::vector<unsigned char> x_now = xb.copy();
  if (!a.in_place && first_difference(x_now.data(), x_before.data(), bytes) >= 0)
    return "x was modified by an out-of-place apply";
  const std::vector<unsigned char> now = a.in_place ? x_now : ob.copy();
  // The expected buffer: poison (or x) everywhere, each sample's elements
  // the blend reference or exact copies.
  std::vector<unsigned char> want =
      a.in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
  for (int64_t i = 0; i < a.n; ++i) {
    const int64_t p = par[(size_t)i];
    const int32_t *b = &box[(size_t)i * 4];
    const bool blends = b[0] == -1;
    for (int64_t ch = 0; ch < a.c; ++ch)
      for (int64_t y = 0; y < a.h; ++y)
        for (int64_t xx = 0; xx < a.w; ++xx) {
          const int64_t j = a.layout == FASTMIX_LAYOUT_NCHW ? (ch * a.h + y) * a.w + xx
                                                            : (y * a.w + xx) * a.c + ch;
          const int64_t at = kGuard + i * a.stride + j, from = kGuard + p * a.stride + j;
          if (blends) {
            const float r =
                ref_blend_f32(lam[(size_t)i], (float)decode(a.dtype, x_before.data(), at),
                              (float)decode(a.dtype, x_before.data(), from));
            encode(a.dtype, want.data(), at, (double)r);
          } else {
            const bool in = y >= b[0] && y < b[2] && xx >= b[1] && xx < b[3];
            std::memcpy(want.data() + at * es, x_before.data() + (in ? from : at) * es, es);
          }
        }
  }
  // Inputs are finite, so the reference is exact to the bit: blends are the
  // float32 reference rounded once, cuts are copies, the rest is untouched.
  const int64_t byte = first_difference(want.data(), now.data(), bytes);
  if (byte < 0) return "";
  const int64_t e = byte / (int64_t)es;
  std::ostringstream err;
  const int64_t rel = e - kGuard;
  err << "element " << e;
  if (rel >= 0 && rel < (a.n - 1) * a.stride + elems && rel % a.stride < elems)
    err << " (sample " << rel / a.stride << ", element " << rel % a.stride << ", partner "
        << par[(size_t)(rel / a.stride)] << ", box " << box[(size_t)(rel / a.stride) * 4] << ","
        << box[(size_t)(rel / a.stride) * 4 + 1] << "," << box[(size_t)(rel / a.stride) * 4 + 2]
        << "," << box[(size_t)(rel / a.stride) * 4 + 3] << ")";
  else
    err << " (outside every sample: must be left alone)";
  err << ": got " << decode(a.dtype, now.data(), e) << ", expected "
      << decode(a.dtype, want.data(), e);
  return err.str();
}

// run_apply; a problem fails the case.
void check_apply(fastmix_device dev, const ApplyCase &a, std::mt19937_64 &rng) {
  INFO(describe(dev, a));
  const std::string problem = run_apply(dev, a, rng);
  if (!problem.empty()) FAIL(problem);
}

}  // namespace

TEST_CASE(
    "cutmix apply equals the reference: dtypes, layouts, odd sizes, boxes, strides, "
    "alignment, in/out of place",
    "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a3);
  const bool sim = on_simulator();
  struct Geo {
    int64_t n, c, h, w, gap;
  };
  // {5, 3, 23, 29, 0}: odd rows and an odd stride over several warp chunks
  // per sample, so vectors run across row ends and partners are realigned
  // by every shift (by an odd number of elements for the 16-bit types).
  // {24, 3, 32, 40, 0 or 1}: in place, a batch whose staged strips are
  // narrower than a third of a sample (every dtype with the simulator's
  // 64 KiB of shared memory, float32 on an H200), so that there are interior
  // strips, aligned and shifted.
  std::vector<Geo> geos = {{1, 1, 1, 1, 0},    {2, 3, 1, 7, 0},   {3, 1, 5, 1, 2},
                           {5, 3, 7, 8, 0},    {4, 2, 16, 16, 8}, {7, 3, 9, 13, 1},
                           {6, 4, 4, 4, 4},    {9, 1, 12, 40, 0}, {5, 3, 23, 29, 0},
                           {24, 3, 32, 40, 0}, {24, 3, 32, 40, 1}};
  if (!sim) geos.push_back({64, 3, 32, 32, 0}), geos.push_back({33, 3, 24, 20, 16});
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_layout layout : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
        for (const Geo &g : geos)
          for (bool in_place : {false, true})
            for (int mis = 0; mis < 3; ++mis) {
              // mis 0: x and out (past the guard) 16-byte aligned, the vector paths
              // where the shape allows; 1: x and out not, and out differently
              // (elements); 2: both one element past alignment (out of place:
              // vectors after an unaligned head).
              const int64_t v = 16 / (int64_t)dtype_size(d), at16 = (v - kGuard % v) % v;
              if (in_place && mis == 2) continue;  // in place, the same as 1
              const int64_t xm = at16 + (mis == 0 ? 0 : 1), om = at16 + (mis == 0   ? 0
                                                                         : mis == 1 ? 3
                                                                                    : 1);
              const ApplyCase a{d,  layout, g.n,     g.c, g.h, g.w, g.c * g.h * g.w + g.gap,
                                xm, om,     in_place};
              check_apply(dev, a, rng);
            }
}

TEST_CASE("cutmix apply of batches that take the walk along the partner chains",
          "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a5);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_layout layout : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
        for (bool aligned : {true, false}) {
          // walk_shape's batch of samples at least its size: 3-channel
          // images with rows of 16-byte vectors and aligned samples (the
          // aligned cells), or rows of 37 pixels, samples one element apart
          // and x and out one element past alignment (vectors after a head,
          // partners realigned).
          const Shape s = walk_shape(d);
          const int64_t c = 3, w = aligned ? 40 : 37, h = (s.elems + c * w - 1) / (c * w);
          const int64_t v = 16 / (int64_t)dtype_size(d), at16 = (v - kGuard % v) % v;
          const int64_t mis = at16 + (aligned ? 0 : 1);
          const ApplyCase a{d, layout, s.batch, c, h, w, c * h * w + (aligned ? 0 : 1), mis, mis,
                            false};
          check_apply(dev, a, rng);
        }
}

TEST_CASE("cutmix fused is draw + apply bitwise; device seed is value seed, and advances",
          "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a4);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_layout layout : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
        for (bool in_place : {false, true}) {
          const int64_t n = 6, c = 3, h = 8, w = 12, elems = c * h * w;
          const fastmix_mix_config cfg = make_config(0.5f, 1.0f, 0, 0, 0.9f, 0.5f, FASTMIX_MIX_ELEM,
                                                     FASTMIX_PAIRING_PERMUTATION, 1, 0);
          const uint64_t s = rng(), off = rng();
          INFO(device_name(dev) << " " << dtype_name(d) << " layout " << (int)layout
                                << (in_place ? " in place" : ""));
          const size_t bytes = (size_t)(n * elems) * dtype_size(d);
          std::vector<unsigned char> xs(bytes);
          fill_random(d, xs.data(), n * elems, rng);
          // two-step reference
          const CutDraw dr = cut_draw(dev, cfg, s, off, n, h, w);
          Buffer x1(dev, bytes), o1(dev, bytes);
          x1.upload(xs.data());
          Buffer l1 = to_device(dev, dr.lam), p1 = to_device(dev, dr.par),
                 b1 = to_device(dev, dr.box);
          REQUIRE(fastmix_cutmix_apply(dev, d, layout, x1.data(), o1.data(), n, c, h, w, elems,
                                       l1.as<float>(), p1.as<int64_t>(), b1.as<int32_t>(),
                                       nullptr) == FASTMIX_SUCCESS);
          finish(dev);
          const std::vector<unsigned char> want = o1.copy();
          for (int form = 0; form < 2; ++form) {
            Buffer x2(dev, bytes), o2(dev, in_place ? 0 : bytes);
            x2.upload(xs.data());
            Buffer l2(dev, (size_t)n * 4), p2(dev, (size_t)n * 8), b2(dev, (size_t)n * 16);
            void *out = in_place ? (void *)x2.data() : (void *)o2.data();
            uint64_t so_host[2] = {s, off};
            Buffer so = to_device(dev, std::vector<uint64_t>{s, off});
            const fastmix_status st =
                form == 0
                    ? fastmix_cutmix(dev, d, &cfg, s, off, layout, x2.data(), out, n, c, h, w,
                                     elems, l2.as<float>(), p2.as<int64_t>(), b2.as<int32_t>(),
                                     nullptr)
                    : fastmix_cutmix_device_seed(dev, d, &cfg, so.as<uint64_t>(), 5, layout,
                                                 x2.data(), out, n, c, h, w, elems, l2.as<float>(),
                                                 p2.as<int64_t>(), b2.as<int32_t>(), nullptr);
            INFO("form " << form << ": " << fastmix_last_error());
            REQUIRE(st == FASTMIX_SUCCESS);
            finish(dev);
            std::vector<float> lam = l2.copy_as<float>();
            CHECK(same_bits(lam, dr.lam));
            CHECK(p2.copy_as<int64_t>() == dr.par);
            CHECK(b2.copy_as<int32_t>() == dr.box);
            const std::vector<unsigned char> got = in_place ? x2.copy() : o2.copy();
            CHECK(first_difference(got.data(), want.data(), bytes) == -1);
            if (form == 1) {
              const std::vector<uint64_t> after = so.copy_as<uint64_t>();
              CHECK(after[0] == so_host[0]);
              CHECK(after[1] == so_host[1] + 5);
              // the draw-only device-seed form too
              Buffer l3(dev, (size_t)n * 4), p3(dev, (size_t)n * 8), b3(dev, (size_t)n * 16);
              Buffer so3 = to_device(dev, std::vector<uint64_t>{s, off});
              REQUIRE(fastmix_cutmix_sample_device_seed(
                          dev, &cfg, so3.as<uint64_t>(), 0, n, h, w, l3.as<float>(),
                          p3.as<int64_t>(), b3.as<int32_t>(), nullptr) == FASTMIX_SUCCESS);
              finish(dev);
              CHECK(same_bits(l3.copy_as<float>(), dr.lam));
              CHECK(b3.copy_as<int32_t>() == dr.box);
              CHECK(so3.copy_as<uint64_t>() == std::vector<uint64_t>{s, off});
            }
          }
        }
}

TEST_CASE(
    "cutmix apply: a bad partner or box fails on the CPU with nothing written, and is "
    "NaN on CUDA",
    "[cutmix][devices]") {
  for (fastmix_device dev : test_devices())
    for (int which = 0; which < 4; ++which) {
      INFO(device_name(dev) << " case " << which);
      const int64_t n = 3, c = 2, h = 4, w = 5, elems = c * h * w;
      std::vector<float> xs((size_t)(n * elems));
      for (size_t k = 0; k < xs.size(); ++k) xs[k] = (float)k;
      std::vector<int64_t> par = {2, 0, 1};
      std::vector<int32_t> box = {-1, -1, -1, -1, 0, 0, 4, 5, 1, 1, 2, 2};
      if (which == 0) par[1] = 3;
      if (which == 1) box[4 + 2] = 5;  // y1 > height
      if (which == 2) box[8 + 1] = 3;  // x0 > x1
      if (which == 3) box[0] = -2;     // neither -1s nor a box
      const int bad = which == 0 || which == 1 ? 1 : which == 2 ? 2 : 0;
      Buffer xb = to_device(dev, xs), ob(dev, xs.size() * 4);
      Buffer lb = to_device(dev, std::vector<float>{0.25f, 0.5f, 0.75f}), pb = to_device(dev, par),
             bb = to_device(dev, box);
      const fastmix_status st = fastmix_cutmix_apply(
          dev, FASTMIX_FLOAT32, FASTMIX_LAYOUT_NCHW, xb.data(), ob.data(), n, c, h, w, elems,
          lb.as<float>(), pb.as<int64_t>(), bb.as<int32_t>(), nullptr);
      if (dev == FASTMIX_DEVICE_CPU) {
        CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
        CHECK(has_word(fastmix_last_error(), which == 0 ? "partners[1]" : "boxes"));
        CHECK(all_poison(ob.data(), ob.size()));
      } else {
        REQUIRE(st == FASTMIX_SUCCESS);
        finish(dev);
        const std::vector<float> o = ob.copy_as<float>();
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < elems; ++j)
            CHECK(std::isnan(o[(size_t)(i * elems + j)]) == (i == bad));
      }
    }
}

TEST_CASE("cutmix then the fused loss: the two-term cross-entropy of the effective lambdas",
          "[cutmix][devices]") {
  FMT_SEEDED_RNG(0xc07a5);
  for (fastmix_device dev : test_devices()) {
    const int64_t n = 9, classes = 7;
    const fastmix_mix_config cfg =
        make_config(0.8f, 1.0f, 0, 0, 0.8f, 0.5f, FASTMIX_MIX_ELEM, FASTMIX_PAIRING_FLIP, 1, 0);
    const CutDraw dr = cut_draw(dev, cfg, rng(), rng(), n, 10, 10);
    std::vector<int64_t> labels((size_t)n);
    for (auto &y : labels) y = (int64_t)(rng() % classes);
    std::vector<float> z((size_t)(n * classes));
    std::normal_distribution<double> nd(0.0, 2.0);
    for (auto &v : z) v = (float)nd(rng);
    Buffer zb = to_device(dev, z), yb = to_device(dev, labels), lb = to_device(dev, dr.lam),
           pb = to_device(dev, dr.par), loss(dev, (size_t)n * 4);
    REQUIRE(fastmix_cross_entropy(dev, FASTMIX_FLOAT32, zb.data(), n, classes, classes,
                                  yb.as<int64_t>(), lb.as<float>(), pb.as<int64_t>(),
                                  FASTMIX_REDUCTION_NONE, 0.0f, -100, loss.as<float>(), nullptr,
                                  1.0f, nullptr) == FASTMIX_SUCCESS);
    finish(dev);
    const std::vector<float> got = loss.copy_as<float>();
    for (int64_t i = 0; i < n; ++i) {
      double m = -INFINITY, s = 0;
      for (int64_t k = 0; k < classes; ++k) m = std::max(m, (double)z[(size_t)(i * classes + k)]);
      for (int64_t k = 0; k < classes; ++k) s += std::exp((double)z[(size_t)(i * classes + k)] - m);
      const double lse = m + std::log(s), lam = dr.lam[(size_t)i];
      const int64_t y1 = labels[(size_t)i], y2 = labels[(size_t)dr.par[(size_t)i]];
      const double want = lam * (lse - z[(size_t)(i * classes + y1)]) +
                          (1.0 - lam) * (lse - z[(size_t)(i * classes + y2)]);
      INFO("row " << i << " lambda " << lam);
      CHECK(std::fabs((double)got[(size_t)i] - want) <= 1e-5 * (1.0 + std::fabs(want)));
    }
  }
}

namespace {

// A valid fastmix_cutmix call on the CPU that a case then breaks.
struct CutArgs {
  fastmix_device device = FASTMIX_DEVICE_CPU;
  fastmix_dtype dtype = FASTMIX_FLOAT32;
  fastmix_mix_config config =
      make_config(0.8f, 1.0f, 0, 0, 1.0f, 0.5f, FASTMIX_MIX_ELEM, FASTMIX_PAIRING_FLIP, 1, 0);
  bool null_config = false;
  fastmix_layout layout = FASTMIX_LAYOUT_NCHW;
  int64_t batch = 4, channels = 3, height = 5, width = 6, stride = 90;
  int misalign_boxes = 0;
  bool null_boxes = false, overlap = false;
};

struct CutCase {
  const char *what, *param;
  void (*set)(CutArgs &);
};

const CutCase kCutCases[] = {
    {"config NULL", "config", [](CutArgs &a) { a.null_config = true; }},
    {"mixup_alpha -1", "mixup_alpha", [](CutArgs &a) { a.config.mixup_alpha = -1; }},
    {"mixup_alpha NaN", "mixup_alpha", [](CutArgs &a) { a.config.mixup_alpha = NAN; }},
    {"cutmix_alpha inf", "cutmix_alpha", [](CutArgs &a) { a.config.cutmix_alpha = INFINITY; }},
    {"nothing enabled", "config",
     [](CutArgs &a) { a.config.mixup_alpha = a.config.cutmix_alpha = 0; }},
    {"min > max", "cutmix_min",
     [](CutArgs &a) { a.config.cutmix_min = 0.5f, a.config.cutmix_max = 0.4f; }},
    {"max > 1", "cutmix_max",
     [](CutArgs &a) { a.config.cutmix_min = 0.1f, a.config.cutmix_max = 1.5f; }},
    {"min < 0", "cutmix_min",
     [](CutArgs &a) { a.config.cutmix_min = -0.1f, a.config.cutmix_max = 0.5f; }},
    {"prob 1.5", "prob", [](CutArgs &a) { a.config.prob = 1.5f; }},
    {"prob NaN", "prob", [](CutArgs &a) { a.config.prob = NAN; }},
    {"switch_prob -0.1", "switch_prob", [](CutArgs &a) { a.config.switch_prob = -0.1f; }},
    {"mode 3", "mode", [](CutArgs &a) { a.config.mode = bad_enum<fastmix_mix_mode>(3); }},
    {"pairing 4", "pairing", [](CutArgs &a) { a.config.pairing = bad_enum<fastmix_pairing>(4); }},
    {"pair mode, permutation", "pairing",
     [](CutArgs &a) {
       a.config.mode = FASTMIX_MIX_PAIR, a.config.pairing = FASTMIX_PAIRING_PERMUTATION;
     }},
    {"device 2", "device", [](CutArgs &a) { a.device = bad_enum<fastmix_device>(2); }},
    {"dtype 3", "dtype", [](CutArgs &a) { a.dtype = bad_enum<fastmix_dtype>(3); }},
    {"layout 2", "layout", [](CutArgs &a) { a.layout = bad_enum<fastmix_layout>(2); }},
    {"batch -1", "batch", [](CutArgs &a) { a.batch = -1; }},
    {"channels 0", "channels", [](CutArgs &a) { a.channels = 0; }},
    {"height 0", "height", [](CutArgs &a) { a.height = 0; }},
    {"width 2^31", "width", [](CutArgs &a) { a.width = int64_t(1) << 31; }},
    {"stride < elems", "sample_stride", [](CutArgs &a) { a.stride = 89; }},
    {"boxes NULL", "boxes", [](CutArgs &a) { a.null_boxes = true; }},
    {"boxes misaligned", "boxes", [](CutArgs &a) { a.misalign_boxes = 2; }},
    {"out overlaps x", "out", [](CutArgs &a) { a.overlap = true; }},
};

}  // namespace

TEST_CASE("cutmix: bad arguments are refused, naming the parameter, with nothing written",
          "[cutmix][errors]") {
  for (const CutCase &k : kCutCases)
    for (int form = 0; form < 3; ++form) {  // fused, draw only, apply only
      CutArgs a;
      k.set(a);
      const bool draw_param = std::string(k.param) != "dtype" && std::string(k.param) != "layout" &&
                              std::string(k.param) != "channels" &&
                              std::string(k.param) != "sample_stride" &&
                              std::string(k.param) != "out";
      const bool config_param = std::string(k.what).find("config") != std::string::npos ||
                                std::string(k.param).find("alpha") != std::string::npos ||
                                std::string(k.param).find("cutmix") != std::string::npos ||
                                std::string(k.param).find("prob") != std::string::npos ||
                                std::string(k.param) == "mode" ||
                                std::string(k.param) == "pairing" ||
                                std::string(k.param) == "config";
      if (form == 1 && !draw_param) continue;
      if (form == 2 && config_param) continue;
      INFO(k.what << " form " << form);
      std::vector<float> x((size_t)(a.batch > 0 ? 4 * 90 : 1), 1.0f), out(x.size());
      std::vector<unsigned char> lam(64, kPoison), par(64, kPoison), box(128, kPoison);
      for (auto &v : out) v = NAN;
      const std::vector<float> out_before = out;
      std::vector<int32_t> given_boxes(16, -1);
      std::vector<float> given_lam(4, 0.5f);
      std::vector<int64_t> given_par = {0, 1, 2, 3};
      void *o = a.overlap ? (void *)(x.data() + 1) : (void *)out.data();
      int32_t *b =
          a.null_boxes ? nullptr : reinterpret_cast<int32_t *>(box.data() + 16 + a.misalign_boxes);
      const fastmix_mix_config *cfg = a.null_config ? nullptr : &a.config;
      fastmix_status st;
      if (form == 0)
        st =
            fastmix_cutmix(a.device, a.dtype, cfg, 1, 2, a.layout, x.data(), o, a.batch, a.channels,
                           a.height, a.width, a.stride, reinterpret_cast<float *>(lam.data()),
                           reinterpret_cast<int64_t *>(par.data()), b, nullptr);
      else if (form == 1)
        st = fastmix_cutmix_sample(a.device, cfg, 1, 2, a.batch, a.height, a.width,
                                   reinterpret_cast<float *>(lam.data()),
                                   reinterpret_cast<int64_t *>(par.data()), b, nullptr);
      else {
        const int32_t *gb = a.null_boxes ? nullptr : a.misalign_boxes ? b : given_boxes.data();
        st = fastmix_cutmix_apply(a.device, a.dtype, a.layout, x.data(), o, a.batch, a.channels,
                                  a.height, a.width, a.stride, given_lam.data(), given_par.data(),
                                  gb, nullptr);
      }
      CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
      const std::string msg = fastmix_last_error();
      INFO("fastmix_last_error(): " << msg);
      CHECK(has_word(msg, k.param));
      CHECK(all_poison(lam.data(), lam.size()));
      CHECK(all_poison(par.data(), par.size()));
      CHECK(all_poison(box.data(), box.size()));
      CHECK(first_difference(out.data(), out_before.data(), out.size() * 4) == -1);
    }
}
