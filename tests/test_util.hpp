// Helpers for the tests: independent float64 views of the storage types,
// random inputs, poisoning, and (in CUDA tests) device buffers.  Nothing here
// uses fastmix's own conversion code: the tests must not share the library's
// bugs.
#pragma once

#include <fastmix/fastmix.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
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
  if (exp == 0x1f) v = man ? NAN : INFINITY;
  else if (exp == 0) v = std::ldexp((double)man, -24);
  else v = std::ldexp(1.0 + man / 1024.0, exp - 15);
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
      if (dist < bestd || (dist == bestd && (c & 1) == 0)) { best = c; bestd = dist; }
    }
    h = best;
  } else {
    const double a = std::fabs(v);
    int e;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const int q = e - 11 < -24 ? -24 : e - 11;  // quantum of float16 at a
    const double scaled = a / std::ldexp(1.0, q);
    double r = std::nearbyint(scaled);  // ties to even under the default mode
    const double hv = r * std::ldexp(1.0, q);
    // Rebuild bits from the value.
    uint16_t bits = 0;
    if (hv >= 65520.0) bits = 0x7c00;
    else if (hv < std::ldexp(1.0, -14)) bits = (uint16_t)std::lrint(hv / std::ldexp(1.0, -24));
    else {
      int he;
      const double m = std::frexp(hv, &he);  // hv = m * 2^he
      bits = (uint16_t)(((he - 1 + 15) << 10) | (uint16_t)std::lrint((m * 2.0 - 1.0) * 1024.0));
    }
    h = (uint16_t)(bits | (v < 0 ? 0x8000 : 0));
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
    if (const char *s = std::getenv("FASTMIX_TEST_SEED")) return (uint64_t)std::strtoull(s, nullptr, 10);
    return (uint64_t)std::random_device{}() << 32 ^ (uint64_t)std::random_device{}();
  }();
  return seed;
}

// Bytes of poison: 0xff in every byte is NaN in all three types.
constexpr unsigned char kPoison = 0xff;

}  // namespace fmt_test
