// The CPU backend of sampling and blending: the same shared math as the CUDA
// kernels (kernels/sampler.cuh, kernels/common.cuh), spread over an OpenMP
// team.  Arguments arrive validated by host/api.cpp.
#include "internal.hpp"

#include "../kernels/sampler.cuh"

#include <algorithm>
#include <vector>

namespace fm {
namespace {

// Work below this many elements is not worth waking the OpenMP team for.
constexpr int64_t kParallelGrain = 1 << 15;

template <class T>
void blend_span(const typename T::raw *a, const typename T::raw *b, typename T::raw *o,
                int64_t count, float lam, float mu) {
  for (int64_t j = 0; j < count; ++j) o[j] = T::store(blend(lam, mu, T::load(a[j]), T::load(b[j])));
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
  const int64_t block = std::min<int64_t>(elems, std::max<int64_t>(256, std::min<int64_t>(target, 16384)));
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
  const int64_t width = std::max<int64_t>(1, std::min<int64_t>(elems, (256 << 10) / (batch * (int64_t)sizeof(raw))));
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
void blend_typed(const void *x, void *out, int64_t batch, int64_t elems, int64_t stride,
                 const float *lambdas, const int64_t *partners) {
  using raw = typename T::raw;
  if (x == out)
    blend_in_place<T>(static_cast<raw *>(out), batch, elems, stride, lambdas, partners);
  else
    blend_out_of_place<T>(static_cast<const raw *>(x), static_cast<raw *>(out), batch, elems,
                          stride, lambdas, partners);
}

}  // namespace

void cpu_sample(float alpha, int fold, fastmix_pairing pairing, uint64_t seed, uint64_t offset,
                int64_t batch, float *lambdas, int64_t *partners) {
  const BetaParams bp = make_beta_params(alpha, fold);
  const Pairing pr = make_pairing(pairing, seed, offset, (uint64_t)batch);
#pragma omp parallel for schedule(static) if (batch > 256)
  for (int64_t i = 0; i < batch; ++i) {
    lambdas[i] = beta_lambda(bp, seed, offset, (uint64_t)i);
    partners[i] = partner(pr, (uint64_t)i);
  }
}

void cpu_blend(fastmix_dtype dtype, const void *x, void *out, int64_t batch, int64_t elems,
               int64_t stride, const float *lambdas, const int64_t *partners) {
  if (batch == 0 || elems == 0) return;
  switch (dtype) {
    case FASTMIX_FLOAT32: return blend_typed<f32>(x, out, batch, elems, stride, lambdas, partners);
    case FASTMIX_FLOAT16: return blend_typed<f16>(x, out, batch, elems, stride, lambdas, partners);
    case FASTMIX_BFLOAT16: return blend_typed<bf16>(x, out, batch, elems, stride, lambdas, partners);
  }
}

}  // namespace fm
