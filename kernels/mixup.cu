// CUDA entry points of sampling, blending and the fused mixup, the draw's
// kernel and the launchers.  The math comes from kernels/math/, shared with
// the CPU backend; the kernels that move the images are in their own headers:
//  - out of place, blend_rows_kernel (kernels/blend_rows.cuh), the walk along
//    the partner chains where it pays (kernels/walk.cuh);
//  - in place, blend_staged_kernel (kernels/blend_staged.cuh), which CutMix
//    in place runs too (kernels/cutmix.cu).
//
// Traffic: blending must read each input element and write each output
// element once, 2 bytes moved per byte of the batch.
// The fused mixup out of place uses the rows kernel with a source that draws
// lambda and partner instead of reading them, once per work item; in place it
// draws first (sample_kernel) and the staged kernel reads the draw, since
// every block of the staged kernel needs the whole batch's.
#include "blend_rows.cuh"
#include "blend_staged.cuh"
#include "cuda_util.cuh"
#include "math/dtype.cuh"
#include "math/sampler.cuh"
#include "mixup_source.cuh"

#include <cuda_runtime.h>

#include <type_traits>

namespace fm {
namespace {

// Seed and offset of a draw source, without keying the pairing (which only
// the partners need).
__device__ __forceinline__ void draw_key(const DrawSource &s, uint64_t *seed, uint64_t *offset) {
  *seed = s.seed, *offset = s.offset;
}
__device__ __forceinline__ void draw_key(const DeviceSeedSource &s, uint64_t *seed,
                                         uint64_t *offset) {
  *seed = s.seed_offset[0], *offset = s.seed_offset[1];
}

// The draw of lambdas and partners.  Not memory-bound: what counts is latency
// (a small batch) or instructions (a big one).
//  - G == 1, a batch too big to be in flight at once: one thread per sample
//    in a grid-stride loop, the serial code (the fewest instructions).
//  - G > 1, a batch whose blocks all fit on the device at once: a block of
//    kSampleThreads draws S = kTrialLanes / G samples.  G lanes per sample run
//    the gammas' rejection trials side by side (log_gammas_lanes) into shared
//    memory; meanwhile the next warp computes the samples' boosts, one lane
//    each, and the last warp their partners.  After the barrier the boost
//    warp turns the log-gammas into lambdas.  Each warp runs one kind of
//    work: lanes of one warp running trials, boosts and the Feistel network
//    would run them one after the other.
constexpr int kTrialLanes = 128;
constexpr int kSampleThreads = kTrialLanes + 64;
template <class Source, int G>
__global__ void __launch_bounds__(G == 1 ? kThreads : kSampleThreads)
    sample_kernel(int64_t n, Source src) {
  if constexpr (G == 1) {
    const auto rs = src.resolve();
    for (int64_t i = blockIdx.x * (int64_t)kThreads + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * kThreads)
      rs.publish(i, rs.get(i, n));
  } else {
    constexpr int S = kTrialLanes / G;
    static_assert(S <= 32, "one lane per sample in the last two warps");
    __shared__ float lg_s[S][2];
    const BetaParams &bp = src.beta;
    // 0: trials, 1: boost and lambda, 2: partner; the same in a warp.
    const int kind = threadIdx.x < kTrialLanes ? 0 : threadIdx.x < kTrialLanes + 32 ? 1 : 2;
    const int s = kind == 0 ? threadIdx.x / G : (threadIdx.x - kTrialLanes) % 32;
    const int64_t i = blockIdx.x * (int64_t)S + s;
    const bool live = s < S && i < n;
    float boost = 0.0f;
    if (kind == 2) {
      if (live) {
        const DrawSource rs = src.resolve();
        rs.partners[i] = partner(rs.pairing, (uint64_t)i);
      }
    } else {
      uint64_t seed, offset;
      draw_key(src, &seed, &offset);
      if (kind == 0)
        log_gammas_lanes<G>(bp, seed, offset, (uint32_t)i, live, lg_s[s]);
      else if (live && bp.boost)
        boost = boost_logs(philox(seed, 0u, (uint32_t)i, offset));
    }
    __syncthreads();
    if (kind == 1 && live) src.lambdas[i] = beta_from_logs(bp, lg_s[s][0], lg_s[s][1], boost);
  }
}

// ---- host side --------------------------------------------------------------
// Out of place: the rows kernel, lambda and partner read or drawn.
template <class T, class Source>
fastmix_status launch_rows(const char *func, const Device &dev, const Images &im, const Source &src,
                           cudaStream_t stream) {
  using raw = typename T::raw;
  const int64_t V = kVecBytes / (int64_t)sizeof(raw);
  const void *x = im.x;
  void *out = im.out;
  const int64_t n = im.batch, elems = im.elems, stride = im.stride;
  // Vectors when x and out share their offset from 16-byte alignment,
  // whatever the stride: the kernel finds each sample's aligned columns.
  // Chunks per sample: enough for the most vectors a sample can have.
  const bool vec = (uintptr_t)x % kVecBytes == (uintptr_t)out % kVecBytes && elems >= V;
  const int64_t per_chunk = kChunkVecs<T> * (vec ? 1 : V);
  const int64_t body = vec ? elems / V : elems;
  const int64_t chunks = body > 0 ? (body + per_chunk - 1) / per_chunk : 1;
  auto kernel =
      bool_switch(vec, [](auto v) { return blend_rows_kernel<T, decltype(v)::value, Source>; });
  // The walk along the partner chains, where it pays.
  const bool walk = walk_pays(dev, n, elems * (int64_t)sizeof(raw));
  const int64_t smem = walk ? (int64_t)walk_smem(n) : 0;
  // One wave of resident blocks: every block is in flight from the start, so
  // the blocks cover one window of the walk.
  unsigned grid = 0;
  FM_TRY(one_wave(func, dev, kernel, kThreads, smem, n * chunks, &grid));
  return launch(func, kernel, grid, kThreads, (size_t)smem, stream, static_cast<const raw *>(x),
                static_cast<raw *>(out), n, elems, stride, chunks, walk, src);
}

// In place: the staged kernel, lambda and partner read (a fused draw would
// repeat the whole batch's draw in every block, since each needs every row).
// `before()` queues what must run first (the draw of fastmix_mixup), once
// everything that can refuse the call has been checked, so that a refused
// call writes nothing.  A vector tile where it fits, else elements.
template <class T, class Before>
fastmix_status launch_staged(const char *func, const Device &dev, const Images &im,
                             const GivenSource &src, cudaStream_t stream, const Before &before) {
  const int64_t es = (int64_t)sizeof(typename T::raw);
  const int64_t n = im.batch, elems = im.elems;
  const int64_t fixed = (staged_row_bytes<BlendRule>() * n + 15) & ~int64_t(15);
  const int64_t limit = dev.smem_optin;
  if (fixed + n * es > limit)
    return fail(
        FASTMIX_ERROR_NOT_SUPPORTED,
        "%s: in place on CUDA needs batch * (8 + %d) <= %lld bytes of shared memory, batch is "
        "%lld; blend out of place instead",
        func, (int)es, (long long)limit, (long long)n);
  Staged st;
  if (!vector_tile<T>(dev, im.out, n, elems, im.stride, fixed, &st)) {
    st.width = (limit - fixed) / (n * es);
    if (st.width > 4096) st.width = 4096;
    if (st.width > elems) st.width = elems;
    if (st.width < 1) st.width = 1;
    st.smem = fixed + ((n * st.width * es + 15) & ~int64_t(15));
    st.strips = (elems + st.width - 1) / st.width;
  }
  return launch_staged_kernel<T>(func, dev, st, im.out, n, elems, im.stride, BlendRule{src}, stream,
                                 before);
}

template <class Source>
fastmix_status dispatch_rows(const char *func, const Device &dev, const Images &im,
                             const Source &src, cudaStream_t stream) {
  return dispatch_dtype(
      im.dtype, [&](auto t) { return launch_rows<decltype(t)>(func, dev, im, src, stream); });
}

template <class Before>
fastmix_status dispatch_staged(const char *func, const Device &dev, const Images &im,
                               const GivenSource &src, cudaStream_t stream, const Before &before) {
  return dispatch_dtype(im.dtype, [&](auto t) {
    return launch_staged<decltype(t)>(func, dev, im, src, stream, before);
  });
}

// Calls f(source) with the source that draws lambdas and partners as `d`
// says: keyed on the host (a seed value) or by the kernel (a seed in memory).
template <class F>
fastmix_status with_draw_source(const Draw &d, int64_t batch, float *lambdas, int64_t *partners,
                                F &&f) {
  const BetaParams beta = make_beta_params(d.alpha, d.fold);
  if (d.seed.kind == Seed::kMemory)
    return f(
        DeviceSeedSource{beta, (int)d.pairing, (uint64_t)batch, d.seed.ptr, lambdas, partners});
  return f(DrawSource{beta, make_pairing(d.pairing, d.seed.seed, d.seed.offset, (uint64_t)batch),
                      d.seed.seed, d.seed.offset, lambdas, partners});
}

// Draws lambdas and partners into the arrays (sample_kernel) with G lanes per
// sample if the batch's blocks are all resident at once (*done), else does
// nothing.
template <int G, class Source>
fastmix_status launch_sample_lanes(const char *func, const Device &dev, int64_t batch,
                                   const Source &src, cudaStream_t stream, bool *done) {
  auto kernel = sample_kernel<Source, G>;
  int64_t wave = 0;
  FM_TRY(wave_blocks(func, dev, kernel, kSampleThreads, 0, &wave));
  const int64_t blocks = (batch + kTrialLanes / G - 1) / (kTrialLanes / G);
  *done = blocks <= wave;
  if (!*done) return FASTMIX_SUCCESS;
  return launch(func, kernel, (unsigned)blocks, kSampleThreads, 0, stream, batch, src);
}

// Lanes per sample: the most (fewest rounds of trials) that keep the batch's
// trial lanes within kTrialWarpsPerScheduler warps per warp scheduler (4 per
// SM), beyond which the trials' instructions, not their latency, bound the
// draw; at least 4.
constexpr int64_t kTrialWarpsPerScheduler = 4;
int sample_lanes(const Device &dev, int64_t batch) {
  const int64_t lanes = (int64_t)dev.sms * 4 * kTrialWarpsPerScheduler * 32;
  return batch * 16 <= lanes ? 16 : batch * 8 <= lanes ? 8 : 4;
}

fastmix_status launch_sample(const char *func, const Device &dev, const Draw &draw, int64_t batch,
                             float *lambdas, int64_t *partners, cudaStream_t stream) {
  return with_draw_source(draw, batch, lambdas, partners, [&](const auto &src) {
    using Source = std::decay_t<decltype(src)>;
    bool done = false;
    const int g = sample_lanes(dev, batch);
    const fastmix_status st =
        g == 16  ? launch_sample_lanes<16>(func, dev, batch, src, stream, &done)
        : g == 8 ? launch_sample_lanes<8>(func, dev, batch, src, stream, &done)
                 : launch_sample_lanes<4>(func, dev, batch, src, stream, &done);
    if (st != FASTMIX_SUCCESS || done) return st;
    return launch(func, sample_kernel<Source, 1>, draw_grid(dev, batch), kThreads, 0, stream, batch,
                  src);
  });
}

}  // namespace

fastmix_status cuda_sample(const SampleArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev,
                        {{"seed_offset", seed_pointer(a.draw.seed), true},
                         {"lambdas", a.lambdas},
                         {"partners", a.partners}}));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.batch > 0) FM_TRY(launch_sample(a.func, dev, a.draw, a.batch, a.lambdas, a.partners, s));
  return advance_offset(a.func, a.draw.seed, s);
}

fastmix_status cuda_blend(const BlendArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev,
                        {{"x", a.images.x},
                         {"out", a.images.out},
                         {"lambdas", a.lambdas},
                         {"partners", a.partners}}));
  if (a.images.batch == 0) return FASTMIX_SUCCESS;
  const GivenSource given{a.lambdas, a.partners};
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.images.x == a.images.out)
    return dispatch_staged(a.func, dev, a.images, given, s, [] { return FASTMIX_SUCCESS; });
  return dispatch_rows(a.func, dev, a.images, given, s);
}

fastmix_status cuda_mixup(const MixupArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev,
                        {{"seed_offset", seed_pointer(a.draw.seed), true},
                         {"x", a.images.x},
                         {"out", a.images.out},
                         {"lambdas", a.lambdas},
                         {"partners", a.partners}}));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.images.x == a.images.out) {  // the draw, then the staged blend reading it
    if (a.images.batch > 0)
      FM_TRY(dispatch_staged(a.func, dev, a.images, GivenSource{a.lambdas, a.partners}, s, [&] {
        return launch_sample(a.func, dev, a.draw, a.images.batch, a.lambdas, a.partners, s);
      }));
  } else if (a.images.batch > 0) {  // one kernel: the draw fused into the blend
    FM_TRY(with_draw_source(a.draw, a.images.batch, a.lambdas, a.partners, [&](const auto &src) {
      return dispatch_rows(a.func, dev, a.images, src, s);
    }));
  }
  return advance_offset(a.func, a.draw.seed, s);
}

}  // namespace fm
