// CUDA kernels for sampling, blending and the fused mixup, with their
// launchers.  The math comes from kernels/math/, shared with the CPU
// backend; this file holds only the launch geometry and the memory movement.
//
// Traffic: blending must read each input element and write each output
// element once, 2 bytes moved per byte of the batch.
//  - Out of place (blend_rows_kernel): a block handles one chunk of one sample
//    (32 elements per thread: 32 KiB of float32, 16 KiB of 16-bit types).
//    Work items are ordered sample-fastest, so the blocks in flight cover the
//    same column chunk of every sample at once (a few MiB): the partner chunk
//    a block reads is the own chunk of another block in flight, and one of the
//    two reads hits L2.
//  - In place (blend_staged_kernel): a block owns a strip of columns of every
//    sample, stages the strip of the whole batch in shared memory and only
//    then writes it back, so every partner is read before it is overwritten,
//    whatever the partners are.
// The fused mixup uses the same kernels with a source that draws lambda and
// partner instead of reading them: once per work item out of place, once per
// sample and block in place.
#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "math/dtype.cuh"
#include "math/sampler.cuh"

#include <cuda_runtime.h>

#include <type_traits>

namespace fm {
namespace {

constexpr int kThreads = 256;
// 16-byte vectors per thread per chunk: 32 elements of every type, so that a
// chunk's fixed cost is spread as thinly; a chunk is 32 KiB of float32 and
// 16 KiB of the 16-bit types (whose threads then need half the registers).
template <class T>
constexpr int kUnroll = 32 * (int)sizeof(typename T::raw) / 16;
template <class T>
constexpr int64_t kChunkVecs = int64_t{kUnroll<T>} * kThreads;
constexpr uint32_t kBadPartner = 0xffffffffu;

// ---- where lambda and partner of a sample come from ------------------------
struct Sample {
  float lam;
  int64_t partner;  // -1: out of range, the sample's output becomes NaN
};

struct GivenSource {
  const float *lambdas;
  const int64_t *partners;
  __device__ Sample get(int64_t i, int64_t n) const {
    const int64_t p = partners[i];
    return {lambdas[i], (p >= 0 && p < n) ? p : -1};
  }
  __device__ void publish(int64_t, const Sample &) const {}
  __device__ GivenSource resolve() const { return *this; }
};

struct DrawSource {
  BetaParams beta;
  Pairing pairing;
  uint64_t seed, offset;
  float *lambdas;
  int64_t *partners;
  __device__ Sample get(int64_t i, int64_t) const {
    return {beta_lambda(beta, seed, offset, (uint64_t)i), partner(pairing, (uint64_t)i)};
  }
  __device__ void publish(int64_t i, const Sample &s) const {
    lambdas[i] = s.lam;
    partners[i] = s.partner;
  }
  __device__ DrawSource resolve() const { return *this; }
};

// Seed and offset read from device memory when the kernel runs (so a
// captured graph draws afresh at each replay).  Every thread reads them and
// keys the pairing itself at kernel start (make_pairing is the host's code),
// so the draw is bitwise that of DrawSource with the same values.  The kernel
// only reads seed_offset; the increment is a separate kernel queued after it.
struct DeviceSeedSource {
  BetaParams beta;  // depends on alpha and fold only: computed on the host
  int kind;
  uint64_t n;
  const uint64_t *seed_offset;
  float *lambdas;
  int64_t *partners;
  __device__ DrawSource resolve() const {
    const uint64_t seed = seed_offset[0], offset = seed_offset[1];
    return DrawSource{beta, make_pairing(kind, seed, offset, n), seed, offset, lambdas, partners};
  }
};

// ---- out of place -----------------------------------------------------------
// Work item `item` is chunk item / n of sample item % n (sample-fastest).  A
// block walks items blockIdx.x, + gridDim.x, ...; it carries (sample, chunk)
// along instead of dividing per item, and its first warp draws (or reads)
// lambda and partner for the block's next 32 items at once, one lane each,
// into shared memory, so the draw costs one thread per item instead of every
// thread of the block.
constexpr int kDrawAhead = 32;

// `also(slot, i, partner)` stores whatever else the block needs per item.
template <class Source, class Also>
__device__ __forceinline__ void fetch_samples(const Source &rs, int64_t item, int64_t items,
                                              int64_t n, float *lam_s, int64_t *par_s,
                                              const Also &also) {
  if (threadIdx.x < kDrawAhead) {
    const int64_t it = item + (int64_t)threadIdx.x * gridDim.x;
    if (it < items) {
      const int64_t i = it % n;
      const Sample s = rs.get(i, n);
      if (it < n) rs.publish(i, s);  // chunk 0 of sample i publishes it
      lam_s[threadIdx.x] = s.lam;
      par_s[threadIdx.x] = s.partner;
      also(threadIdx.x, i, s.partner);
    }
  }
}

// Where a sample's vectors are (the Vec path of blend_rows_kernel): head, the
// columns before the first vector, where a + head (and o + head) is 16-byte
// aligned; shift, b + head's offset from alignment in elements; nvec, the
// vectors.  The partner's aligned loads start `shift` elements before
// b + head, so the head grows by a vector when that would be before b, and
// with a shift a vector's second aligned load ends V - shift elements past
// its last partner element, which must still be in the sample.  nvec == 0:
// the whole sample is done with scalars.
struct RowVectors {
  int32_t head, shift;
  int64_t nvec;
};

template <class T>
__device__ __forceinline__ RowVectors row_vectors(const typename T::raw *a,
                                                  const typename T::raw *b, int64_t elems) {
  constexpr int V = kVecBytes / (int)sizeof(typename T::raw);
  RowVectors r;
  r.head = (int32_t)((kVecBytes - (uintptr_t)a % kVecBytes) % kVecBytes / sizeof(*a));
  r.shift = 0;
  if (b) {
    r.shift = (int32_t)((uintptr_t)(b + r.head) % kVecBytes / sizeof(*a));
    if (r.shift > r.head) r.head += V;
  }
  const int64_t room = elems - r.head - (r.shift ? V - r.shift : 0);
  r.nvec = room > 0 ? room / V : 0;
  return r;
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

// blend_chunk_shifted for the run-time shift 0 < shift < V, by a chain of
// uniform branches (the shift is the same in every thread of the block).
template <class T, bool Full, int S = 1, class V>
__device__ __forceinline__ void blend_chunk_any_shift(int shift, const V *av, const V *bv, V *ov,
                                                      int64_t left, float lam, float mu) {
  if constexpr (S < kVecBytes / (int)sizeof(typename T::raw)) {
    if (shift == S)
      blend_chunk_shifted<T, Full, S>(av, bv, ov, left, lam, mu);
    else
      blend_chunk_any_shift<T, Full, S + 1>(shift, av, bv, ov, left, lam, mu);
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
template <class T, bool Vec, class Source>
__global__ void __launch_bounds__(kThreads, 1)
    blend_rows_kernel(const typename T::raw *__restrict__ x, typename T::raw *__restrict__ out,
                      int64_t n, int64_t elems, int64_t stride, int64_t chunks_per_row,
                      Source src) {
  using raw = typename T::raw;
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(raw);
  __shared__ float lam_s[kDrawAhead];
  __shared__ int64_t par_s[kDrawAhead];
  // Vec: each item's vectors, found by the lane that fetches the item, so
  // that the block's threads only read them.
  __shared__ int32_t head_s[Vec ? kDrawAhead : 1], shift_s[Vec ? kDrawAhead : 1];
  __shared__ int64_t nvec_s[Vec ? kDrawAhead : 1];
  const int64_t items = n * chunks_per_row;
  const auto rs = src.resolve();
  const int64_t step_i = gridDim.x % n, step_c = gridDim.x / n;
  int64_t i = blockIdx.x % n, chunk = blockIdx.x / n;
  int slot = kDrawAhead;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    if (slot == kDrawAhead) {  // the same in every thread of the block
      __syncthreads();         // the previous batch has been read
      fetch_samples(rs, item, items, n, lam_s, par_s, [&](int k, int64_t q, int64_t p) {
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
    const int64_t p = par_s[slot];
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
        blend_chunk_any_shift<T, true>(shift, av, bv, ov, left, lam, mu);
      } else {
        blend_chunk_any_shift<T, false>(shift, av, bv, ov, left, lam, mu);
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
    i += step_i, chunk += step_c;
    if (i >= n) i -= n, ++chunk;
  }
}

// ---- in place ---------------------------------------------------------------
// (row, column) of cell k = threadIdx.x, + kThreads, ... in a row-major grid
// `width` cells wide, advanced by additions: one division per thread and
// strip instead of two per cell.
struct CellWalk {
  uint32_t r0, c0, dr, dc, width;
  __device__ explicit CellWalk(uint32_t w)
      : r0(threadIdx.x / w), c0(threadIdx.x % w), dr(kThreads / w), dc(kThreads % w), width(w) {}
  __device__ void next(uint32_t &r, uint32_t &c) const {
    r += dr, c += dc;
    if (c >= width) c -= width, ++r;
  }
};

// Shared memory: lam[n] floats, partner[n] u32, then the strip, n x width raw
// elements (16-byte aligned).  Strip s < strips covers the vector columns
// [head + s*width, ...); with Vec, strip `strips` holds the unaligned edges.
template <class T, bool Vec, class Source>
__global__ void __launch_bounds__(kThreads)
    blend_staged_kernel(typename T::raw *x, int64_t n, int64_t elems, int64_t stride, int64_t head,
                        int64_t width, int64_t strips, Source src) {
  using raw = typename T::raw;
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(raw);
  extern __shared__ __align__(16) unsigned char smem[];
  float *lam_s = reinterpret_cast<float *>(smem);
  uint32_t *p_s = reinterpret_cast<uint32_t *>(smem + 4 * n);
  raw *tile = reinterpret_cast<raw *>(smem + ((8 * n + 15) & ~int64_t(15)));

  const auto rs = src.resolve();
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const Sample s = rs.get(i, n);
    if (blockIdx.x == 0) rs.publish(i, s);
    lam_s[i] = s.lam;
    p_s[i] = s.partner >= 0 ? (uint32_t)s.partner : kBadPartner;
  }
  __syncthreads();

  const int64_t nvec = Vec ? (elems - head) / V : 0;
  const int64_t tail0 = head + nvec * V;
  const int64_t edge = Vec ? head + (elems - tail0) : 0;
  const int64_t total = strips + (edge > 0 ? 1 : 0);
  for (int64_t s = blockIdx.x; s < total; s += gridDim.x) {
    const bool is_edge = s == strips;
    const int64_t c0 = Vec ? head + s * width : s * width;
    const int64_t w =
        is_edge ? edge : ((Vec ? tail0 : elems) - c0 < width ? (Vec ? tail0 : elems) - c0 : width);
    if (Vec && !is_edge) {
      // Cells are 16-byte vectors, row-major over (sample, vector column).
      using vec = typename Vec16<T>::type;
      const uint32_t wv = (uint32_t)(w / V), pitch = (uint32_t)(width / V);
      vec *tile_v = reinterpret_cast<vec *>(tile);
      const raw *base = x + c0;
      if (kThreads % wv == 0) {
        // Every full strip: a thread keeps its column and steps over rows
        // kThreads / wv apart, so its addresses advance by additions.
        const uint32_t c = threadIdx.x % wv, r0 = threadIdx.x / wv, dr = kThreads / wv;
        const int64_t gstep = (int64_t)dr * stride;
        const uint32_t tstep = dr * pitch;
        const raw *g = base + r0 * stride + c * V;
        vec *t = tile_v + r0 * pitch + c;
        for (uint32_t r = r0; r < n; r += dr, g += gstep, t += tstep)
          *t = *reinterpret_cast<const vec *>(g);
        __syncthreads();
        raw *o = x + c0 + r0 * stride + c * V;
        t = tile_v + r0 * pitch + c;
        const vec *tcol = tile_v + c;
        for (uint32_t r = r0; r < n; r += dr, o += gstep, t += tstep) {
          const uint32_t p = p_s[r];
          const float lam = lam_s[r], mu = 1.0f - lam;
          *reinterpret_cast<vec *>(o) =
              p == kBadPartner ? nan_vec<T>() : blend_vec<T>(*t, tcol[p * pitch], lam, mu);
        }
      } else {
        // The last, narrower strip: cells dealt out to the threads in turn.
        const uint32_t cells = (uint32_t)n * wv;
        const CellWalk walk(wv);
        for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
          tile_v[r * pitch + c] = *reinterpret_cast<const vec *>(base + r * stride + c * V);
          walk.next(r, c);
        }
        __syncthreads();
        for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
          const uint32_t p = p_s[r];
          const float lam = lam_s[r], mu = 1.0f - lam;
          *reinterpret_cast<vec *>(x + r * stride + c0 + c * V) =
              p == kBadPartner
                  ? nan_vec<T>()
                  : blend_vec<T>(tile_v[r * pitch + c], tile_v[p * pitch + c], lam, mu);
          walk.next(r, c);
        }
      }
    } else {
      const uint32_t cells = (uint32_t)(n * w);
      const CellWalk walk((uint32_t)w);
      for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
        const int64_t col = is_edge ? (c < head ? c : tail0 + (c - head)) : c0 + c;
        tile[(int64_t)r * width + c] = x[r * stride + col];
        walk.next(r, c);
      }
      __syncthreads();
      for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
        const uint32_t p = p_s[r];
        const int64_t col = is_edge ? (c < head ? c : tail0 + (c - head)) : c0 + c;
        const float lam = lam_s[r], mu = 1.0f - lam;
        x[r * stride + col] =
            blend_one<T>(tile[(int64_t)r * width + c],
                         p == kBadPartner ? nullptr : &tile[(int64_t)p * width + c], lam, mu);
        walk.next(r, c);
      }
    }
    __syncthreads();  // the strip buffer is reused by the next strip
  }
}

// Not memory-bound: one block per SM is enough occupancy, and the bound lets
// the device-seed variant keep its pairing keys in registers.
template <class Source>
__global__ void __launch_bounds__(kThreads, 1) sample_kernel(int64_t n, Source src) {
  const auto rs = src.resolve();
  for (int64_t i = blockIdx.x * (int64_t)kThreads + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * kThreads)
    rs.publish(i, rs.get(i, n));
}

// ---- host side --------------------------------------------------------------
// Geometry shared by both blend kernels for one call.
struct Geometry {
  bool vec;
  int64_t head;  // scalar columns before the first 16-byte-aligned vector
};

Geometry geometry(const void *x, const void *out, int64_t elems, int64_t stride, size_t esize) {
  Geometry g{false, 0};
  const uintptr_t xa = (uintptr_t)x, oa = (uintptr_t)out;
  const int64_t V = kVecBytes / (int64_t)esize;
  if (xa % kVecBytes != oa % kVecBytes || (stride * (int64_t)esize) % kVecBytes != 0) return g;
  g.head = (int64_t)(((kVecBytes - xa % kVecBytes) % kVecBytes) / esize);
  g.vec = elems - g.head >= V;
  if (!g.vec) g.head = 0;
  return g;
}

template <class T, class Source>
fastmix_status launch_blend(const char *func, const Device &dev, const void *x, void *out,
                            int64_t n, int64_t elems, int64_t stride, const Source &src,
                            cudaStream_t stream) {
  using raw = typename T::raw;
  const int64_t V = kVecBytes / (int64_t)sizeof(raw);
  if (x != out) {
    // Vectors when x and out share their offset from 16-byte alignment,
    // whatever the stride: the kernel finds each sample's aligned columns.
    // Chunks per sample: enough for the most vectors a sample can have.
    const bool vec = (uintptr_t)x % kVecBytes == (uintptr_t)out % kVecBytes && elems >= V;
    const int64_t per_chunk = kChunkVecs<T> * (vec ? 1 : V);
    const int64_t body = vec ? elems / V : elems;
    const int64_t chunks = body > 0 ? (body + per_chunk - 1) / per_chunk : 1;
    const int64_t items = n * chunks;
    const raw *xs = static_cast<const raw *>(x);
    raw *os = static_cast<raw *>(out);
    auto kernel = vec ? blend_rows_kernel<T, true, Source> : blend_rows_kernel<T, false, Source>;
    // One wave of resident blocks: every block is in flight from the start,
    // so the partner chunk a block reads is being read by another block too.
    int per_sm = 0;
    FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kThreads, 0, &per_sm));
    const int64_t wave = (int64_t)dev.sms * per_sm;
    const int64_t grid = items < wave ? items : wave;
    return launch(func, kernel, (unsigned)grid, kThreads, 0, stream, xs, os, n, elems, stride,
                  chunks, src);
  }
  Geometry g = geometry(x, out, elems, stride, sizeof(raw));
  // In place: the widest strip that keeps two blocks per SM where the batch
  // allows (each block also costs the SM its reserved shared memory), else
  // one block per SM with all the shared memory a block may have.
  const int64_t fixed = (8 * n + 15) & ~int64_t(15);
  const int64_t limit = dev.smem_optin;
  if (fixed + n * (int64_t)sizeof(raw) > limit)
    return fail(
        FASTMIX_ERROR_NOT_SUPPORTED,
        "%s: in place on CUDA needs batch * (8 + %d) <= %lld bytes of shared memory, batch is "
        "%lld; blend out of place instead",
        func, (int)sizeof(raw), (long long)limit, (long long)n);
  int64_t half = (int64_t)dev.smem_per_sm / 2 - dev.smem_reserved;
  if (half > limit) half = limit;
  const int64_t budget = fixed + n * 64 * (int64_t)sizeof(raw) <= half ? half : limit;
  int64_t width = (budget - fixed) / (n * (int64_t)sizeof(raw));
  if (width > 4096) width = 4096;
  if (g.vec) {
    // A power of two of vectors, at most one per thread: the full strips
    // then take the kernel's fast loop.
    int64_t wv = 1;
    while (wv * 2 <= width / V && wv * 2 <= kThreads) wv *= 2;
    width = wv * V;
    if (width < 2 * V) g = Geometry{false, 0};
  }
  const int64_t cols = g.vec ? (elems - g.head) / V * V : elems;
  // No wider than the columns need; with vectors, keep a multiple of V and at
  // least 2V so that the edge strip (at most 2V - 2 columns) fits as well.
  const int64_t need = g.vec ? (cols > 2 * V ? cols : 2 * V) : cols;
  if (width > need) width = need;
  if (width < 1) width = 1;
  const int64_t strips = cols > 0 ? (cols + width - 1) / width : 0;
  const int64_t edge = g.vec ? elems - cols : 0;
  const int64_t total = strips + (edge > 0 ? 1 : 0);  // may be 0: block 0 still publishes
  const int64_t smem = fixed + ((n * width * (int64_t)sizeof(raw) + 15) & ~int64_t(15));
  raw *xs = static_cast<raw *>(out);
  auto kernel =
      g.vec ? blend_staged_kernel<T, true, Source> : blend_staged_kernel<T, false, Source>;
  if (smem > 48 * 1024)
    FM_TRY(allow_dynamic_smem(func, reinterpret_cast<const void *>(kernel), dev, (int)limit));
  int per_sm = 0;
  FM_TRY(
      blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kThreads, (size_t)smem, &per_sm));
  const int64_t wave = (int64_t)dev.sms * per_sm;
  const int64_t grid = total < 1 ? 1 : total < wave ? total : wave;
  return launch(func, kernel, (unsigned)grid, kThreads, (size_t)smem, stream, xs, n, elems, stride,
                g.head, width, strips, src);
}

template <class Source>
fastmix_status dispatch_blend(const char *func, const Device &dev, const Images &im,
                              const Source &src, cudaStream_t stream) {
  return dispatch_dtype(im.dtype, [&](auto t) {
    return launch_blend<decltype(t)>(func, dev, im.x, im.out, im.batch, im.elems, im.stride, src,
                                     stream);
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

// A seed in memory, or NULL.
const uint64_t *seed_pointer(const Draw &d) {
  return d.seed.kind == Seed::kMemory ? d.seed.ptr : nullptr;
}

// The pointer checks of every call here, in the order of the entry points'
// parameters: seed_offset (a seed in memory), x and out (a blend), lambdas,
// partners.
fastmix_status check_pointers(const char *func, const Device &dev, const uint64_t *seed_offset,
                              const Images *im, const float *lambdas, const int64_t *partners) {
  if (seed_offset) FM_TRY(check_pointer(func, "seed_offset", seed_offset, dev));
  if (im) {
    FM_TRY(check_pointer(func, "x", im->x, dev));
    FM_TRY(check_pointer(func, "out", im->out, dev));
  }
  FM_TRY(check_pointer(func, "lambdas", lambdas, dev));
  return check_pointer(func, "partners", partners, dev);
}

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

fastmix_status cuda_sample(const SampleArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, seed_pointer(a.draw), nullptr, a.lambdas, a.partners));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.batch > 0) {
    FM_TRY(with_draw_source(a.draw, a.batch, a.lambdas, a.partners, [&](const auto &src) {
      const int64_t blocks = (a.batch + kThreads - 1) / kThreads;
      const int64_t grid = blocks < (int64_t)dev.sms * 16 ? blocks : (int64_t)dev.sms * 16;
      return launch(a.func, sample_kernel<std::decay_t<decltype(src)>>, (unsigned)grid, kThreads, 0,
                    s, a.batch, src);
    }));
  }
  return advance_offset(a.func, a.draw.seed, s);
}

fastmix_status cuda_blend(const BlendArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, nullptr, &a.images, a.lambdas, a.partners));
  if (a.images.batch == 0) return FASTMIX_SUCCESS;
  return dispatch_blend(a.func, dev, a.images, GivenSource{a.lambdas, a.partners},
                        static_cast<cudaStream_t>(stream));
}

fastmix_status cuda_mixup(const MixupArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, seed_pointer(a.draw), &a.images, a.lambdas, a.partners));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.images.batch > 0) {
    FM_TRY(with_draw_source(a.draw, a.images.batch, a.lambdas, a.partners, [&](const auto &src) {
      return dispatch_blend(a.func, dev, a.images, src, s);
    }));
  }
  return advance_offset(a.func, a.draw.seed, s);
}

}  // namespace fm
