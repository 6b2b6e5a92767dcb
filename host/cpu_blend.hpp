// The CPU backend's blend of one span, o[j] = lam * a[j] + mu * b[j] rounded
// once to the storage type: portable, or with AVX2/F16C where the CPU has
// them (bitwise the same results).  Shared by mixup and CutMix.
#pragma once

#include "../kernels/math/common.cuh"
#include "cpu_simd.hpp"

#include <stdint.h>

#include <type_traits>

namespace fm {

template <class T>
inline void blend_span_portable(const typename T::raw *a, const typename T::raw *b,
                                typename T::raw *o, int64_t count, float lam, float mu) {
  for (int64_t j = 0; j < count; ++j) o[j] = T::store(blend(lam, mu, T::load(a[j]), T::load(b[j])));
}

#if defined(__x86_64__)
// The 16-bit types with AVX2 (and F16C for float16), chosen at run time: the
// portable conversions above do not vectorise well.  Same arithmetic (two
// products and a sum, no FMA), same round-to-nearest-even conversions, so the
// results are bitwise those of the portable path (NaN payloads aside).
__attribute__((target("avx2,f16c"))) inline void blend_span_f16_avx2(const uint16_t *a,
                                                                     const uint16_t *b, uint16_t *o,
                                                                     int64_t count, float lam,
                                                                     float mu) {
  const __m256 l = _mm256_set1_ps(lam), m = _mm256_set1_ps(mu);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    const __m256 va = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a + j)));
    const __m256 vb = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + j)));
    const __m256 r = _mm256_add_ps(_mm256_mul_ps(l, va), _mm256_mul_ps(m, vb));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(o + j),
                     _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  blend_span_portable<f16>(a + j, b + j, o + j, count - j, lam, mu);
}

// Eight blended float32 lanes to bfloat16, round to nearest even; a NaN
// keeps its top bits and is made quiet (as the portable bf16::store does).
__attribute__((target("avx2"))) inline __m256i bf16x8_round(__m256 r) {
  const __m256i u = _mm256_castps_si256(r);
  const __m256i hi = _mm256_srli_epi32(u, 16);
  const __m256i odd = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);
  const __m256i nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, nan, _mm256_castps_si256(_mm256_cmp_ps(r, r, _CMP_UNORD_Q)));
}

// 16 elements per step: unpacking against zero within each 128-bit lane puts
// each bfloat16 in the top half of a float32 (elements 0-3, 8-11 and 4-7,
// 12-15), and packus of the two halves restores the order.
__attribute__((target("avx2"))) inline void blend_span_bf16_avx2(const uint16_t *a,
                                                                 const uint16_t *b, uint16_t *o,
                                                                 int64_t count, float lam,
                                                                 float mu) {
  const __m256 l = _mm256_set1_ps(lam), m = _mm256_set1_ps(mu);
  const __m256i zero = _mm256_setzero_si256();
  int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + j));
    const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + j));
    const __m256 alo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, va));
    const __m256 ahi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, va));
    const __m256 blo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, vb));
    const __m256 bhi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, vb));
    const __m256i rlo = bf16x8_round(_mm256_add_ps(_mm256_mul_ps(l, alo), _mm256_mul_ps(m, blo)));
    const __m256i rhi = bf16x8_round(_mm256_add_ps(_mm256_mul_ps(l, ahi), _mm256_mul_ps(m, bhi)));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(o + j), _mm256_packus_epi32(rlo, rhi));
  }
  blend_span_portable<bf16>(a + j, b + j, o + j, count - j, lam, mu);
}
#endif

template <class T>
inline void blend_span(const typename T::raw *a, const typename T::raw *b, typename T::raw *o,
                       int64_t count, float lam, float mu) {
#if defined(__x86_64__)
  if (has_avx2_f16c()) {
    if constexpr (std::is_same<T, f16>::value) return blend_span_f16_avx2(a, b, o, count, lam, mu);
    if constexpr (std::is_same<T, bf16>::value)
      return blend_span_bf16_avx2(a, b, o, count, lam, mu);
  }
#endif
  blend_span_portable<T>(a, b, o, count, lam, mu);
}

}  // namespace fm
