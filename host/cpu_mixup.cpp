// The CPU backend of sampling, blending and the fused mixup: the same shared
// math as the CUDA kernels (kernels/math/sampler.cuh, kernels/math/common.cuh),
// spread over an OpenMP team.  Arguments arrive validated by host/api.cpp.
#include "../kernels/math/dtype.cuh"
#include "../kernels/math/sampler.cuh"
#include "cpu_simd.hpp"
#include "validate.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace fm {
namespace {

// Work below this many elements is not worth waking the OpenMP team for.
constexpr int64_t kParallelGrain = 1 << 15;

template <class T>
void blend_span_portable(const typename T::raw *a, const typename T::raw *b, typename T::raw *o,
                         int64_t count, float lam, float mu) {
  for (int64_t j = 0; j < count; ++j) o[j] = T::store(blend(lam, mu, T::load(a[j]), T::load(b[j])));
}

#if defined(__x86_64__)
// The 16-bit types with AVX2 (and F16C for float16), chosen at run time: the
// portable conversions above do not vectorise well.  Same arithmetic (two
// products and a sum, no FMA), same round-to-nearest-even conversions, so the
// results are bitwise those of the portable path (NaN payloads aside).
__attribute__((target("avx2,f16c"))) void blend_span_f16_avx2(const uint16_t *a, const uint16_t *b,
                                                              uint16_t *o, int64_t count, float lam,
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
__attribute__((target("avx2"))) void blend_span_bf16_avx2(const uint16_t *a, const uint16_t *b,
                                                          uint16_t *o, int64_t count, float lam,
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
void blend_span(const typename T::raw *a, const typename T::raw *b, typename T::raw *o,
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

// out != x and no overlap: every output element depends only on the input.
template <class T>
void blend_out_of_place(const typename T::raw *x, typename T::raw *out, int64_t batch,
                        int64_t elems, int64_t stride, const float *lambdas,
                        const int64_t *partners) {
  // Work items are (column block, sample) with the sample varying fastest, so
  // a thread walks one column block of every sample in turn: the partner's
  // block it reads is then read again, as its own, while still in cache, and
  // each input byte comes from memory about once.  Blocks are sized so that
  // one column block of the whole batch fits in about 1 MiB.
  const int64_t target = (int64_t(1) << 20) / (batch * (int64_t)sizeof(typename T::raw));
  const int64_t block =
      std::min<int64_t>(elems, std::max<int64_t>(256, std::min<int64_t>(target, 16384)));
  const int64_t blocks_per_row = (elems + block - 1) / block;
  const int64_t items = batch * blocks_per_row;
#pragma omp parallel for schedule(static) if (batch * elems > kParallelGrain)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t i = item % batch, j0 = (item / batch) * block;
    const int64_t count = std::min(block, elems - j0);
    const float lam = lambdas[i], mu = 1.0f - lam;
    blend_span<T>(x + i * stride + j0, x + partners[i] * stride + j0, out + i * stride + j0, count,
                  lam, mu);
  }
}

// out == x: a strip of columns of every sample is copied aside first, so that
// every partner is read before any sample is overwritten.  The partners may
// be any map into [0, batch), not only a permutation.
template <class T>
void blend_in_place(typename T::raw *x, int64_t batch, int64_t elems, int64_t stride,
                    const float *lambdas, const int64_t *partners) {
  using raw = typename T::raw;
  const int64_t width =
      std::max<int64_t>(1, std::min<int64_t>(elems, (256 << 10) / (batch * (int64_t)sizeof(raw))));
  const int64_t strips = (elems + width - 1) / width;
#pragma omp parallel if (batch * elems > kParallelGrain)
  {
    std::vector<raw> copy((size_t)(batch * width));
#pragma omp for schedule(static)
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t j0 = s * width, w = std::min(width, elems - j0);
      for (int64_t i = 0; i < batch; ++i)
        std::copy(x + i * stride + j0, x + i * stride + j0 + w, copy.data() + i * width);
      for (int64_t i = 0; i < batch; ++i) {
        const float lam = lambdas[i], mu = 1.0f - lam;
        blend_span<T>(copy.data() + i * width, copy.data() + partners[i] * width,
                      x + i * stride + j0, w, lam, mu);
      }
    }
  }
}

template <class T>
void blend_typed(const Images &im, const float *lambdas, const int64_t *partners) {
  using raw = typename T::raw;
  if (im.x == im.out)
    blend_in_place<T>(static_cast<raw *>(im.out), im.batch, im.elems, im.stride, lambdas, partners);
  else
    blend_out_of_place<T>(static_cast<const raw *>(im.x), static_cast<raw *>(im.out), im.batch,
                          im.elems, im.stride, lambdas, partners);
}

void blend_images(const Images &im, const float *lambdas, const int64_t *partners) {
  if (im.batch == 0 || im.elems == 0) return;
  dispatch_dtype(im.dtype, [&](auto t) { blend_typed<decltype(t)>(im, lambdas, partners); });
}

// Draws lambdas and partners with seed and offset; a seed in memory is host
// memory here, read once before the draw and advanced after it.
void draw(const Draw &d, int64_t batch, float *lambdas, int64_t *partners) {
  const bool in_memory = d.seed.kind == Seed::kMemory;
  const uint64_t seed = in_memory ? d.seed.ptr[0] : d.seed.seed;
  const uint64_t offset = in_memory ? d.seed.ptr[1] : d.seed.offset;
  const BetaParams bp = make_beta_params(d.alpha, d.fold);
  const Pairing pr = make_pairing(d.pairing, seed, offset, (uint64_t)batch);
#pragma omp parallel for schedule(static) if (batch > 256)
  for (int64_t i = 0; i < batch; ++i) {
    lambdas[i] = beta_lambda(bp, seed, offset, (uint64_t)i);
    partners[i] = partner(pr, (uint64_t)i);
  }
  if (in_memory) d.seed.ptr[1] = offset + d.seed.increment;  // unsigned: wraps mod 2^64
}

}  // namespace

fastmix_status cpu_sample(const SampleArgs &a, void *) {
  draw(a.draw, a.batch, a.lambdas, a.partners);
  return FASTMIX_SUCCESS;
}

fastmix_status cpu_blend(const BlendArgs &a, void *) {
  FM_TRY(check_partners_host(a.func, a.partners, a.images.batch));
  blend_images(a.images, a.lambdas, a.partners);
  return FASTMIX_SUCCESS;
}

fastmix_status cpu_mixup(const MixupArgs &a, void *) {
  draw(a.draw, a.images.batch, a.lambdas, a.partners);
  blend_images(a.images, a.lambdas, a.partners);
  return FASTMIX_SUCCESS;
}

}  // namespace fm
