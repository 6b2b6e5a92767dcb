// The CPU backend of sampling, blending and the fused mixup: the same shared
// math as the CUDA kernels (kernels/math/sampler.cuh, kernels/math/common.cuh),
// spread over an OpenMP team.  Arguments arrive validated by host/api.cpp.
#include "../kernels/math/dtype.cuh"
#include "../kernels/math/sampler.cuh"
#include "cpu_blend.hpp"
#include "cpu_common.hpp"

#include <algorithm>

namespace fm {
namespace {

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

template <class T>
void blend_typed(const Images &im, const float *lambdas, const int64_t *partners) {
  using raw = typename T::raw;
  if (im.x == im.out)  // a sample is one row
    in_place_segments(static_cast<raw *>(im.out), im.batch, im.stride, 1, im.elems, partners,
                      [&](int64_t i, const raw *own, const raw *theirs, raw *dst, int64_t,
                          int64_t s0, int64_t s1) {
                        blend_span<T>(own, theirs, dst, s1 - s0, lambdas[i], 1.0f - lambdas[i]);
                      });
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
  const SeedValue sv = read_seed(d.seed);
  const uint64_t seed = sv.seed, offset = sv.offset;
  const BetaParams bp = make_beta_params(d.alpha, d.fold);
  const Pairing pr = make_pairing(d.pairing, seed, offset, (uint64_t)batch);
#pragma omp parallel for schedule(static) if (batch > 256)
  for (int64_t i = 0; i < batch; ++i) {
    lambdas[i] = beta_lambda(bp, seed, offset, (uint64_t)i);
    partners[i] = partner(pr, (uint64_t)i);
  }
  advance_seed(d.seed, offset);
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
