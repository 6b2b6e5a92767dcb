// Helpers for the tests: independent float64 views of the storage types,
// random inputs and poisoning (the buffers, on any device, are in
// tests/device.hpp).  Nothing here uses fastmix's own conversion code: the
// tests must not share the library's bugs.
#pragma once

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fmt_test {

inline size_t dtype_size(fastmix_dtype d) { return d == FASTMIX_FLOAT32 ? 4 : 2; }
inline const char *dtype_name(fastmix_dtype d) {
  return d == FASTMIX_FLOAT32 ? "float32" : d == FASTMIX_FLOAT16 ? "float16" : "bfloat16";
}

// Decodes one stored element to double (exact for all three types).
inline double decode(fastmix_dtype d, const void *base, int64_t index) {
  if (d == FASTMIX_FLOAT32) {
    float f;
    std::memcpy(&f, static_cast<const char *>(base) + 4 * index, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const char *>(base) + 2 * index, 2);
  if (d == FASTMIX_BFLOAT16) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0x1f)
    v = man ? NAN : INFINITY;
  else if (exp == 0)
    v = std::ldexp((double)man, -24);
  else
    v = std::ldexp(1.0 + man / 1024.0, exp - 15);
  return sign ? -v : v;
}

// Encodes a double into the storage type, rounding to nearest even (values
// are chosen by the tests to be in range).
inline void encode(fastmix_dtype d, void *base, int64_t index, double v) {
  if (d == FASTMIX_FLOAT32) {
    const float f = (float)v;
    std::memcpy(static_cast<char *>(base) + 4 * index, &f, 4);
    return;
  }
  // Search the nearest representable value by its bits: slow, independent.
  const float f = (float)v;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t h;
  if (d == FASTMIX_BFLOAT16) {
    h = (uint16_t)(u >> 16);  // truncate, then pick the nearer neighbour
    uint16_t best = h;
    double bestd = INFINITY;
    for (int k = -1; k <= 1; ++k) {
      const uint16_t c = (uint16_t)(h + k);
      uint16_t tmp = c;
      double cv = decode(d, &tmp, 0);
      double dist = std::fabs(cv - v);
      if (dist < bestd || (dist == bestd && (c & 1) == 0)) {
        best = c;
        bestd = dist;
      }
    }
    h = best;
  } else {
    const double a = std::fabs(v);
    int e;
    std::frexp(a, &e);                          // a = m * 2^e, m in [0.5, 1)
    const int q = e - 11 < -24 ? -24 : e - 11;  // quantum of float16 at a
    const double scaled = a / std::ldexp(1.0, q);
    double r = std::nearbyint(scaled);  // ties to even under the default mode
    const double hv = r * std::ldexp(1.0, q);
    // Rebuild bits from the value.
    uint16_t bits = 0;
    if (hv >= 65520.0)
      bits = 0x7c00;
    else if (hv < std::ldexp(1.0, -14))
      bits = (uint16_t)std::lrint(hv / std::ldexp(1.0, -24));
    else {
      int he;
      const double m = std::frexp(hv, &he);  // hv = m * 2^he
      bits = (uint16_t)(((he - 1 + 15) << 10) | (uint16_t)std::lrint((m * 2.0 - 1.0) * 1024.0));
    }
    h = (uint16_t)(bits | (std::signbit(v) ? 0x8000 : 0));  // keeps -0.0
  }
  std::memcpy(static_cast<char *>(base) + 2 * index, &h, 2);
}

// The storage type's rounding of v, as a double.
inline double round_to(fastmix_dtype d, double v) {
  unsigned char buf[4];
  encode(d, buf, 0, v);
  return decode(d, buf, 0);
}

// A fresh generator per test case, seeded from the clock unless
// FASTMIX_TEST_SEED is set; the seed is printed on failure through CAPTURE.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char *s = std::getenv("FASTMIX_TEST_SEED"))
      return (uint64_t)std::strtoull(s, nullptr, 10);
    return (uint64_t)std::random_device{}() << 32 ^ (uint64_t)std::random_device{}();
  }();
  return seed;
}

// Bytes of poison: 0xff in every byte is NaN in all three types.
constexpr unsigned char kPoison = 0xff;

// ---------------------------------------------------------------------------
// Random inputs.  Every test case draws from its own generator, seeded from
// test_seed() (CAPTURE it) and a per-case salt.
// ---------------------------------------------------------------------------
inline std::mt19937_64 make_rng(uint64_t salt) {
  const uint64_t s = test_seed();
  std::seed_seq seq{(uint32_t)s, (uint32_t)(s >> 32), (uint32_t)salt, (uint32_t)(salt >> 32)};
  return std::mt19937_64(seq);
}

// A value for an element of `d`: mostly in [-4, 4], with signed zeros, values
// in the subnormal range of the type and large values mixed in.
inline double random_value(fastmix_dtype d, std::mt19937_64 &rng) {
  std::uniform_real_distribution<double> u(-4.0, 4.0);
  const uint64_t k = rng() % 100;
  if (k < 3) return 0.0;
  if (k < 6) return -0.0;
  if (k < 10) return u(rng) * (d == FASTMIX_FLOAT16 ? 1.0 / (1 << 20) : 1e-39);
  if (k < 14) return u(rng) * (d == FASTMIX_FLOAT16 ? 1e4 : 1e30);
  return u(rng);
}

// Fills `count` elements of `d` at `base` with random_value()s.
inline void fill_random(fastmix_dtype d, void *base, int64_t count, std::mt19937_64 &rng) {
  for (int64_t i = 0; i < count; ++i) encode(d, base, i, random_value(d, rng));
}

// The start of a test case that draws random inputs: `seed`, CAPTUREd so
// that a failure prints it (FASTMIX_TEST_SEED=seed repeats the inputs), and
// `rng`, the case's own generator, from make_rng(salt).
#define FMT_SEEDED_RNG(salt)                     \
  const uint64_t seed = ::fmt_test::test_seed(); \
  CAPTURE(seed);                                 \
  std::mt19937_64 rng = ::fmt_test::make_rng(salt)

// Mixing weights: uniform floats in [0, 1) with the edge cases 0, 1, 1/2,
// tiny and almost-1 values at fixed places.
inline std::vector<float> random_lambdas(int64_t n, std::mt19937_64 &rng) {
  static const float special[] = {1.0f, 0.0f, 0.5f, 1e-30f, 0.99999994f, 5.9604645e-08f, 0.25f};
  std::vector<float> lam((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = rng();
    lam[(size_t)i] =
        i < 7 && k % 2 == 0 ? special[i] : (float)(k >> 40) * 5.9604645e-08f;  // k>>40: 24 bits
  }
  return lam;
}

enum class PartnerKind { permutation, zeros, random_map, identity, flip };
inline const char *partner_kind_name(PartnerKind k) {
  switch (k) {
    case PartnerKind::permutation:
      return "permutation";
    case PartnerKind::zeros:
      return "zeros";
    case PartnerKind::random_map:
      return "random map";
    case PartnerKind::identity:
      return "identity";
    case PartnerKind::flip:
      return "flip";
  }
  return "?";
}
constexpr PartnerKind kAllPartnerKinds[] = {PartnerKind::permutation, PartnerKind::zeros,
                                            PartnerKind::random_map, PartnerKind::identity,
                                            PartnerKind::flip};

inline std::vector<int64_t> make_partners(PartnerKind kind, int64_t n, std::mt19937_64 &rng) {
  std::vector<int64_t> p((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    switch (kind) {
      case PartnerKind::permutation:
      case PartnerKind::identity:
        p[(size_t)i] = i;
        break;
      case PartnerKind::zeros:
        p[(size_t)i] = 0;
        break;
      case PartnerKind::random_map:
        p[(size_t)i] = (int64_t)(rng() % (uint64_t)n);
        break;
      case PartnerKind::flip:
        p[(size_t)i] = n - 1 - i;
        break;
    }
  }
  if (kind == PartnerKind::permutation) std::shuffle(p.begin(), p.end(), rng);
  return p;
}

// ---------------------------------------------------------------------------
// Poison
// ---------------------------------------------------------------------------
// Whether every byte of `v` is `value`.
inline bool all_bytes(const std::vector<unsigned char> &v, unsigned char value) {
  return std::all_of(v.begin(), v.end(), [&](unsigned char c) { return c == value; });
}
inline bool all_poison(const void *p, size_t bytes) {
  const unsigned char *c = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < bytes; ++i)
    if (c[i] != kPoison) return false;
  return true;
}
template <class T>
bool all_poison(const std::vector<T> &v) {
  return all_poison(v.data(), v.size() * sizeof(T));
}
template <class T>
void poison(std::vector<T> &v) {
  std::memset(static_cast<void *>(v.data()), kPoison, v.size() * sizeof(T));
}

// An enum holding a value outside its enumerators, as a C caller can pass
// (a cast from a constant would be diagnosed: the value is outside the
// enum's range).
template <class E>
E bad_enum(int v) {
  static_assert(sizeof(E) == sizeof(int), "enum size");
  E e;
  std::memcpy(&e, &v, sizeof e);
  return e;
}

// Whether `word` occurs in `text` as a whole identifier (not inside a longer one).
inline bool has_word(const std::string &text, const std::string &word) {
  auto ident = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool left = at == 0 || !ident(text[at - 1]);
    const bool right = at + word.size() == text.size() || !ident(text[at + word.size()]);
    if (left && right) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The blend reference.
//
// The contract: out = lam * a + (1 - lam) * b "in float32, rounded once to
// the dtype", and the CPU and the GPU must agree bitwise.  So the reference is
// the exact float32 evaluation of that formula, written here independently:
// mu = fl(1 - lam), p = fl(lam * a), q = fl(mu * b), r = fl(p + q), and the
// library's output must be bitwise the dtype rounding of r (rounded by our
// own encode()).  Each float operation is done in double and rounded to float:
// a product of two floats is exact in double, and for + and - the double
// rounding is innocuous because 53 >= 2 * 24 + 2 (Figueroa, 1995), so r is
// the correctly rounded float32 result whatever the compiler's contraction.
// As a check of the reference itself, every output must also lie within one
// unit of the dtype plus 4 float32 units of the terms of the exact (double)
// value; this also catches NaN, which never compares equal.
// ---------------------------------------------------------------------------
inline float ref_blend_f32(float lam, float a, float b) {
  const float mu = (float)(1.0 - (double)lam);
  const float p = (float)((double)lam * (double)a);
  const float q = (float)((double)mu * (double)b);
  return (float)((double)p + (double)q);
}

// The spacing of `d` at |x| (its smallest subnormal step near 0).
inline double dtype_ulp(fastmix_dtype d, double x) {
  const int digits = d == FASTMIX_FLOAT32 ? 24 : d == FASTMIX_FLOAT16 ? 11 : 8;
  const int min_exp = d == FASTMIX_FLOAT32 ? -149 : d == FASTMIX_FLOAT16 ? -24 : -133;
  int e = 0;
  std::frexp(std::fabs(x), &e);  // |x| = m 2^e, m in [0.5, 1)
  return std::ldexp(1.0, std::max(e - digits, min_exp));
}

struct Shape {
  int64_t batch, elems, stride;
};
inline int64_t span(const Shape &s) {
  return s.batch == 0 ? 0 : (s.batch - 1) * s.stride + s.elems;
}

// Checks one blend.  x_before: the bytes of the x buffer before the call,
// sample 0 at element x_first.  out_before / out_now: the whole out buffer
// before and after the call (out_bytes each), sample 0 at element out_first;
// in place they are the x buffer.  Every element of out outside the samples
// must be unchanged; every element inside must be the reference.
// Returns "" or a description of the first problem.
inline std::string check_blend(fastmix_dtype d, const Shape &s, const unsigned char *x_before,
                               int64_t x_first, const unsigned char *out_before,
                               const unsigned char *out_now, size_t out_bytes, int64_t out_first,
                               const float *lambdas, const int64_t *partners) {
  const size_t es = dtype_size(d);
  std::vector<unsigned char> expected(out_before, out_before + out_bytes);
  std::vector<char> in_sample(out_bytes / es, 0);
  std::ostringstream err;
  err.precision(17);
  for (int64_t i = 0; i < s.batch; ++i) {
    const float lam = lambdas[i];
    const int64_t p = partners[i];
    for (int64_t j = 0; j < s.elems; ++j) {
      const double a = decode(d, x_before, x_first + i * s.stride + j);
      const double b = decode(d, x_before, x_first + p * s.stride + j);
      const float r = ref_blend_f32(lam, (float)a, (float)b);
      const int64_t at = out_first + i * s.stride + j;
      encode(d, expected.data(), at, (double)r);
      in_sample[(size_t)at] = 1;
      const double got = decode(d, out_now, at);
      const double exact = (double)lam * a + (1.0 - (double)lam) * b;
      const double tol = dtype_ulp(d, exact) +
                         4.0 * std::ldexp(1.0, -24) *
                             (std::fabs((double)lam * a) + std::fabs((1.0 - (double)lam) * b));
      if (!(std::fabs(got - exact) <= tol)) {
        err << dtype_name(d) << " sample " << i << " element " << j << ": got " << got << ", exact "
            << exact << " (lam " << lam << ", a " << a << ", partner " << p << ", b " << b
            << ") is off by more than " << tol;
        return err.str();
      }
    }
  }
  for (size_t e = 0; e < out_bytes / es; ++e) {
    if (std::memcmp(expected.data() + e * es, out_now + e * es, es) == 0) continue;
    const int64_t rel = (int64_t)e - out_first;
    err << dtype_name(d) << " element " << e << " of out";
    if (in_sample[e])
      err << " (sample " << rel / s.stride << ", element " << rel % s.stride << ")";
    else
      err << " (outside every sample: must be left alone)";
    err << ": got " << decode(d, out_now, (int64_t)e) << ", expected "
        << decode(d, expected.data(), (int64_t)e) << " (bits differ)";
    return err.str();
  }
  return "";
}

// Index of the first differing byte of two buffers, or -1.
inline int64_t first_difference(const void *a, const void *b, size_t bytes) {
  const unsigned char *x = static_cast<const unsigned char *>(a);
  const unsigned char *y = static_cast<const unsigned char *>(b);
  for (size_t i = 0; i < bytes; ++i)
    if (x[i] != y[i]) return (int64_t)i;
  return -1;
}

// Elements of `d` that are bitwise equal or both NaN (NaN payloads may differ
// between backends); returns the index of the first other element, or -1.
inline int64_t first_difference_nan_equal(fastmix_dtype d, const void *a, const void *b,
                                          int64_t count) {
  const size_t es = dtype_size(d);
  for (int64_t i = 0; i < count; ++i) {
    if (std::memcmp(static_cast<const char *>(a) + (size_t)i * es,
                    static_cast<const char *>(b) + (size_t)i * es, es) == 0)
      continue;
    if (std::isnan(decode(d, a, i)) && std::isnan(decode(d, b, i))) continue;
    return i;
  }
  return -1;
}

constexpr fastmix_dtype kAllDtypes[] = {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16};
constexpr fastmix_pairing kAllPairings[] = {FASTMIX_PAIRING_PERMUTATION, FASTMIX_PAIRING_CYCLE,
                                            FASTMIX_PAIRING_FLIP, FASTMIX_PAIRING_ROLL};
inline const char *pairing_name(fastmix_pairing p) {
  return p == FASTMIX_PAIRING_PERMUTATION ? "PERMUTATION"
         : p == FASTMIX_PAIRING_CYCLE     ? "CYCLE"
         : p == FASTMIX_PAIRING_FLIP      ? "FLIP"
                                          : "ROLL";
}

// Whether partners[0..n) is a permutation of [0, n).
inline bool is_permutation(const int64_t *partners, int64_t n) {
  std::vector<char> seen((size_t)n, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = partners[i];
    if (p < 0 || p >= n || seen[(size_t)p]) return false;
    seen[(size_t)p] = 1;
  }
  return true;
}

// Whether partners[0..n) is one cycle through all n samples.
inline bool is_single_cycle(const int64_t *partners, int64_t n) {
  if (!is_permutation(partners, n)) return false;
  if (n == 0) return true;
  int64_t len = 0, i = 0;
  do {
    i = partners[i];
    ++len;
  } while (i != 0 && len <= n);
  return len == n;
}

}  // namespace fmt_test
