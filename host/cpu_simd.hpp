// CPU-only helpers for the vectorised loops of the CPU backend: when a call
// is worth a thread team, run-time detection of AVX2/F16C, whole-row
// conversions between the storage types and float32, and an exp that the
// compiler can vectorise.  The results are
// those of the shared conversions in kernels/math/common.cuh (round to nearest
// even; NaN payloads aside).
#pragma once

#include "../kernels/math/common.cuh"

#include <stdint.h>

#include <type_traits>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace fm {

// Work below this many elements is not worth waking the OpenMP team for: a
// call stays on the calling thread.
constexpr int64_t kParallelGrain = 1 << 15;

// AVX2 and F16C usable: the CPU has them (CPUID leaves 1 and 7) and the OS
// saves the YMM registers (OSXSAVE, XCR0 bits 1 and 2).  Read from CPUID
// directly: GCC's and clang's __builtin_cpu_supports do not agree on "f16c".
inline bool has_avx2_f16c() {
#if defined(__x86_64__)
  static const bool yes = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool osxsave = (c & bit_OSXSAVE) != 0, avx = (c & bit_AVX) != 0,
               f16c = (c & bit_F16C) != 0;
    if (!(osxsave && avx && f16c)) return false;
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b & bit_AVX2) != 0;
  }();
  return yes;
#else
  return false;
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) inline void f16_to_f32_f16c(const uint16_t *in, float *out,
                                                                 int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(out + j,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(in + j))));
  for (; j < n; ++j) out[j] = f16::load(in[j]);
}

__attribute__((target("avx2,f16c"))) inline void f32_to_f16_f16c(const float *in, uint16_t *out,
                                                                 int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + j), _MM_FROUND_TO_NEAREST_INT));
  for (; j < n; ++j) out[j] = f16::store(in[j]);
}
#endif

// A row of storage elements to float32 and back.
template <class T>
void decode_row(const typename T::raw *in, float *out, int64_t n) {
#if defined(__x86_64__)
  if constexpr (std::is_same<T, f16>::value)
    if (has_avx2_f16c()) return f16_to_f32_f16c(in, out, n);
#endif
  for (int64_t j = 0; j < n; ++j) out[j] = T::load(in[j]);
}

template <class T>
void encode_row(const float *in, typename T::raw *out, int64_t n) {
#if defined(__x86_64__)
  if constexpr (std::is_same<T, f16>::value)
    if (has_avx2_f16c()) return f32_to_f16_f16c(in, out, n);
#endif
  for (int64_t j = 0; j < n; ++j) out[j] = T::store(in[j]);
}

// exp(x) without branches or calls, so that loops over it vectorise: the
// shared reduction and polynomial of kernels/math/common.cuh (k rounded with
// the 1.5 * 2^23 trick) and the power of two built in the exponent bits.  About 2 ulp;
// 0 below -87.3 (where exp is under FLT_MIN), NaN for NaN.
inline float exp_vec(float x) {
  const float xc = x > 88.0f ? 88.0f : x;
  const float shifted = xc * 1.44269504f + 12582912.0f;  // k in the low mantissa bits
  const float kf = shifted - 12582912.0f;
  const float p = exp_poly(ln2_reduce(xc, kf));
  // k from the bits, not by a float-to-int conversion (undefined for NaN).
  const uint32_t k = f32_bits(shifted) - 0x4b400000u;
  const float scale = f32_from_bits((k + 127u) << 23);
  return x < -87.3f ? 0.0f : p * scale;
}

}  // namespace fm
