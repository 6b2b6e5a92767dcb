// The out-of-place blend (blend_rows_kernel), for blend and the fused mixup:
// a block handles one chunk of one sample (32 elements per thread: 32 KiB
// of float32, 16 KiB of 16-bit types).  Where it pays (walk_pays: a batch
// larger than L2, of large samples), the samples are walked along the
// partner chains, i, partner(i), partner(partner(i)), ... (each block finds
// that order itself, in shared memory), chunk by chunk within a sample, so
// the blocks in flight cover a window of two or three consecutive samples of
// that order: the partner chunk a block reads from DRAM is the own chunk the
// next sample's blocks read a moment later from L2, and DRAM sees one read
// stream and one write stream, each sequential, as for a copy.  Otherwise in
// sample order.  The fused mixup runs it with a source that draws lambda and
// partner instead of reading them, once per work item.
#pragma once

#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "mixup_source.cuh"
#include "walk.cuh"

#include <type_traits>

namespace fm {
// Definitions in an anonymous namespace, as in the .cu files: every .cu
// that includes this header compiles its own kernels (internal linkage), so
// no two translation units register the same kernel.
namespace {

// 16-byte vectors per thread per chunk: 32 elements of every type, so that a
// chunk's fixed cost is spread as thinly; a chunk is 32 KiB of float32 and
// 16 KiB of the 16-bit types (whose threads then need half the registers).
template <class T>
constexpr int kUnroll = 32 * (int)sizeof(typename T::raw) / 16;
template <class T>
constexpr int64_t kChunkVecs = int64_t{kUnroll<T>} * kThreads;

// Work item `item` is chunk item % chunks of the sample at position
// item / chunks of the walk (chunk-fastest).  A block walks items
// blockIdx.x, + gridDim.x, ...; it carries (position, chunk) along instead of
// dividing per item, and its first warp draws (or reads) lambda and partner
// for the block's next 32 items at once, one lane each, into shared memory,
// so the draw costs one thread per item instead of every thread of the block.
constexpr int kDrawAhead = 32;

// `also(slot, i, partner)` stores whatever else the block needs per item.
// walk: the block's walk, or NULL for the samples in order.
template <class Source, class Also>
__device__ __forceinline__ void fetch_samples(const Source &rs, int64_t item, int64_t items,
                                              int64_t n, int64_t chunks, const int32_t *walk,
                                              float *lam_s, int64_t *par_s, const Also &also) {
  if (threadIdx.x < kDrawAhead) {
    const int64_t it = item + (int64_t)threadIdx.x * gridDim.x;
    if (it < items) {
      const int64_t k = div_fast(it, chunks), i = walk ? walk[k] : k;
      const Sample s = rs.get(i, n);
      if (it == k * chunks) rs.publish(i, s);  // chunk 0 of sample i publishes it
      lam_s[threadIdx.x] = s.lam;
      par_s[threadIdx.x] = s.partner;
      also(threadIdx.x, i, s.partner);
    }
  }
}

// One thread's vectors of a chunk: kUnroll<T> 16-byte vectors kThreads apart
// from av/bv/ov, those below `left` (all of them when Full).  bv == NULL: the
// partner is out of range and the vectors become NaN.
template <class T, bool Full, class V>
__device__ __forceinline__ void blend_chunk(const V *av, const V *bv, V *ov, int64_t left,
                                            float lam, float mu) {
  constexpr int U = kUnroll<T>;
  V ra[U], rb[U];
  FM_UNROLL
  for (int k = 0; k < U; ++k)
    if (Full || k * kThreads < left) ra[k] = __ldg(av + k * kThreads);
  if (bv) {
    FM_UNROLL
    for (int k = 0; k < U; ++k)
      if (Full || k * kThreads < left) rb[k] = __ldg(bv + k * kThreads);
    FM_UNROLL
    for (int k = 0; k < U; ++k)
      if (Full || k * kThreads < left) ov[k * kThreads] = blend_vec<T>(ra[k], rb[k], lam, mu);
  } else {
    FM_UNROLL
    for (int k = 0; k < U; ++k)
      if (Full || k * kThreads < left) ov[k * kThreads] = nan_vec<T>();
  }
}

// The same when the partner's vectors start Shift elements past a 16-byte
// boundary (0 < Shift < V) while the own sample's are aligned: bv points at
// the aligned vector holding a vector's first partner element, and each
// partner vector is put together from that aligned vector and the next
// (realign).  The second load is the neighbouring lane's first, so it hits
// L1: memory still moves each partner byte once, for one more load
// instruction per vector.  The vectors go two columns at a time (in a sample's
// last chunk, one at a time, up to `left`), in a loop the compiler keeps:
// unrolled, it would hoist the own loads shared with blend_chunk above the
// branch on the shift and hold three vectors per column at once, 140-190
// registers in float32 and one block per SM for every sample, aligned or not.
// Two columns per step keep 6 vectors (96 bytes) per thread in flight.
template <class T, bool Full, int Shift, class V>
__device__ __forceinline__ void blend_chunk_shifted(const V *av, const V *bv, V *ov, int64_t left,
                                                    float lam, float mu) {
  constexpr int U = kUnroll<T>, G = Full ? 2 : 1;
#pragma unroll 1
  for (int g = 0; g < U; g += G) {
    if (!Full && g * kThreads >= left) break;
    V ra[G], rl[G], rh[G];
    FM_UNROLL
    for (int k = 0; k < G; ++k) {
      ra[k] = __ldg(av + (g + k) * kThreads);
      rl[k] = __ldg(bv + (g + k) * kThreads);
      rh[k] = __ldg(bv + (g + k) * kThreads + 1);
    }
    FM_UNROLL
    for (int k = 0; k < G; ++k)
      ov[(g + k) * kThreads] = blend_vec<T>(ra[k], realign<T, Shift>(rl[k], rh[k]), lam, mu);
  }
}

// Vec: x and out share their offset from 16-byte alignment, so in every
// sample the same columns are 16-byte aligned in x and in out, and a sample
// is [head scalars][16-byte vectors][tail scalars], the head shorter than
// two vectors.  Where the sample stride is no multiple of 16 bytes, the
// partner's columns sit at another offset from alignment (its shift) and
// are realigned (blend_chunk_shifted); the vectors then stop short enough
// that the partner's aligned loads stay inside the partner's sample.
// Up to 255 registers (a thread holds 2 x kUnroll<T> vectors, 256 bytes of
// float32 loads in flight): two resident blocks keep 128 KiB in flight per SM
// (64 KiB for the 16-bit types), more than its ~30 KiB share of an H200's
// bandwidth-delay product.
// walk: whether the block finds the walk (the launch then gives 8 bytes of
// dynamic shared memory per sample).
// Positional parameters rather than one struct: with a struct (the Source
// inside it) ptxas gave the DrawSource instances 2-21 more registers and the
// fused mixup out of place ran 2-3% more instructions on the simulator.
template <class T, bool Vec, class Source>
__global__ void __launch_bounds__(kThreads, 1)
    blend_rows_kernel(const typename T::raw *__restrict__ x, typename T::raw *__restrict__ out,
                      int64_t n, int64_t elems, int64_t stride, int64_t chunks_per_row,
                      bool walk, Source src) {
  using raw = typename T::raw;
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(raw);
  extern __shared__ int32_t walk_s[];  // [n] the walk, then [n] the partners while finding it
  __shared__ float lam_s[kDrawAhead];
  __shared__ int64_t par_s[kDrawAhead];
  // Vec: each item's vectors, found by the lane that fetches the item, so
  // that the block's threads only read them.
  __shared__ int32_t head_s[Vec ? kDrawAhead : 1], shift_s[Vec ? kDrawAhead : 1];
  __shared__ int64_t nvec_s[Vec ? kDrawAhead : 1];
  const int64_t items = n * chunks_per_row;
  // A source resolved when the kernel runs (the device seed: the pairing is
  // keyed from the seed in memory) is resolved once per block into shared
  // memory, where the lanes that draw read it; held in every thread's
  // registers, its keys would cost the kernel half its occupancy.
  using Resolved = decltype(src.resolve());
  __shared__ Resolved resolved_s[1];
  if constexpr (!std::is_same<Resolved, Source>::value) {
    if (threadIdx.x == 0) resolved_s[0] = src.resolve();
    __syncthreads();
  }
  const Resolved &rs = select_source(src, resolved_s[0]);
  if (walk) find_walk(n, walk_s, walk_s + n, [&](int64_t j) { return rs.partner_of(j, n); });
  const int32_t *order = walk ? walk_s : nullptr;
  const int64_t step_c = gridDim.x % chunks_per_row, step_k = gridDim.x / chunks_per_row;
  int64_t chunk = blockIdx.x % chunks_per_row, pos = blockIdx.x / chunks_per_row;
  int slot = kDrawAhead;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    if (slot == kDrawAhead) {  // the same in every thread of the block
      __syncthreads();         // the previous batch has been read
      fetch_samples(rs, item, items, n, chunks_per_row, order, lam_s, par_s,
                    [&](int k, int64_t q, int64_t p) {
        if (Vec) {
          const RowVectors r =
              row_vectors<T>(x + q * stride, p >= 0 ? x + p * stride : nullptr, elems);
          head_s[k] = r.head, shift_s[k] = r.shift, nvec_s[k] = r.nvec;
        }
      });
      __syncthreads();
      slot = 0;
    }
    const float lam = lam_s[slot], mu = 1.0f - lam;
    const int64_t p = par_s[slot], i = order ? order[pos] : pos;
    const raw *a = x + i * stride;
    const raw *b = p >= 0 ? x + p * stride : nullptr;
    raw *o = out + i * stride;
    if (Vec) {
      using vec = typename Vec16<T>::type;
      const int shift = shift_s[slot];
      const int64_t nvec = nvec_s[slot];
      const int64_t head = nvec ? head_s[slot] : elems;  // no vectors: all scalars
      const int64_t v0 = chunk * kChunkVecs<T> + threadIdx.x, left = nvec - v0;
      const vec *av = reinterpret_cast<const vec *>(a + head) + v0;
      const vec *bv = reinterpret_cast<const vec *>(b + head - shift) + v0;
      vec *ov = reinterpret_cast<vec *>(o + head) + v0;
      // All kUnroll<T> vectors of this thread lie in the sample in every chunk
      // but a sample's last: that case runs without per-vector bounds checks.
      const bool full = (kUnroll<T> - 1) * kThreads < left;
      if (shift == 0) {
        if (full)
          blend_chunk<T, true>(av, b ? bv : nullptr, ov, left, lam, mu);
        else
          blend_chunk<T, false>(av, b ? bv : nullptr, ov, left, lam, mu);
      } else if (full) {
        with_constant<1, (int)V>(shift, [&](auto s) {
          blend_chunk_shifted<T, true, decltype(s)::value>(av, bv, ov, left, lam, mu);
        });
      } else {
        with_constant<1, (int)V>(shift, [&](auto s) {
          blend_chunk_shifted<T, false, decltype(s)::value>(av, bv, ov, left, lam, mu);
        });
      }
      if (chunk == 0) {  // the unaligned edges of the sample
        const int64_t tail0 = head + nvec * V;
        for (int64_t j = threadIdx.x; j < head + (elems - tail0); j += kThreads) {
          const int64_t c = j < head ? j : tail0 + (j - head);
          o[c] = blend_one<T>(__ldg(a + c), b ? b + c : nullptr, lam, mu);
        }
      }
    } else {
      const int64_t j0 = chunk * kChunkVecs<T> * V;
      const int64_t j1 = j0 + kChunkVecs<T> * V < elems ? j0 + kChunkVecs<T> * V : elems;
      for (int64_t j = j0 + threadIdx.x; j < j1; j += kThreads)
        o[j] = blend_one<T>(__ldg(a + j), b ? b + j : nullptr, lam, mu);
    }
    ++slot;
    chunk += step_c, pos += step_k;
    if (chunk >= chunks_per_row) chunk -= chunks_per_row, ++pos;
  }
}

}  // namespace
}  // namespace fm
