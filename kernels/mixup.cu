// CUDA kernels for sampling, blending and the fused mixup, with their
// launchers.  The math comes from kernels/math/, shared with the CPU
// backend; this file holds only the launch geometry and the memory movement.
//
// Traffic: blending must read each input element and write each output
// element once, 2 bytes moved per byte of the batch.
//  - Out of place (blend_rows_kernel): a block handles one chunk of one sample
//    (32 elements per thread: 32 KiB of float32, 16 KiB of 16-bit types).
//    Where it pays (walk_pays: a batch larger than L2, of large samples),
//    the samples are walked along the partner chains, i, partner(i),
//    partner(partner(i)), ... (each block finds that order itself, in shared
//    memory), chunk by chunk within a sample, so the blocks in flight cover a
//    window of two or three consecutive samples of that order: the partner
//    chunk a block reads from DRAM is the own chunk the next sample's blocks
//    read a moment later from L2, and DRAM sees one read stream and one write
//    stream, each sequential, as for a copy.  Otherwise in sample order.
//  - In place (blend_staged_kernel): a block owns a strip of columns of every
//    sample, stages the strip of the whole batch in shared memory and only
//    then writes it back, so every partner is read before it is overwritten,
//    whatever the partners are.
// CutMix in place (kernels/cutmix.cu) runs the staged kernel too, with each
// sample's box staged beside its lambda and partner.
// The fused mixup out of place uses the rows kernel with a source that draws
// lambda and partner instead of reading them, once per work item; in place it
// draws first (sample_kernel) and the staged kernel reads the draw, since
// every block of the staged kernel needs the whole batch's.
#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "math/cutmix.cuh"
#include "math/dtype.cuh"
#include "math/sampler.cuh"
#include "walk.cuh"

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
  __device__ int64_t partner_of(int64_t i, int64_t n) const {
    const int64_t p = partners[i];
    return (p >= 0 && p < n) ? p : -1;
  }
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
  __device__ int64_t partner_of(int64_t i, int64_t) const { return partner(pairing, (uint64_t)i); }
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

// The kernel's source as it reads it: the parameter itself, or its copy
// resolved into shared memory.
template <class Source>
__device__ __forceinline__ const Source &select_source(const Source &src, const Source &) {
  return src;
}
template <class Source, class Resolved>
__device__ __forceinline__ const Resolved &select_source(const Source &, const Resolved &shared) {
  return shared;
}

// ---- out of place -----------------------------------------------------------
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
// walk: whether the block finds the walk (the launch then gives 8 bytes of
// dynamic shared memory per sample).
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
    chunk += step_c, pos += step_k;
    if (chunk >= chunks_per_row) chunk -= chunks_per_row, ++pos;
  }
}

// ---- in place ---------------------------------------------------------------
// A block owns a strip of columns of every sample: it stages the strip of the
// whole batch in shared memory, waits for the block, and only then writes the
// blended strip back, so every partner is read before it is overwritten,
// whatever the partners are.  The staged strip has one of three layouts:
//  - kAligned: the sample stride is a multiple of 16 bytes, so a column has
//    the same offset from 16-byte alignment in every sample; the strips start
//    at aligned columns, tile row r holds sample r's 16-byte vectors of the
//    strip, and a partner's vector is the same slot of the partner's row.
//  - kShifted: the stride is not, and the strips are aligned in sample 0, so
//    in sample r the aligned vectors start o_r = r * stride mod V elements
//    before the strip.  Tile row r holds the aligned vectors that cover the
//    strip in sample r (one more than the strip is wide), and a partner's
//    elements are read from its row o_p - o_r elements further on: four
//    32-bit shared-memory loads per vector, and for the 16-bit types a funnel
//    shift per word.  The vectors that straddle the strip's edges are loaded
//    whole (their other elements, the neighbouring strip's, are never used)
//    and stored element by element, so that each element is written by the
//    one block that owns its column.
//  - kElements: elements, for batches too large for a tile of vectors.
enum Layout { kElements, kAligned, kShifted };

// Per sample, in shared memory: lambda and where the partner's staged data is
// (vector layouts: the tile's byte offset of the partner element that pairs
// with the sample's tile element 0; kElements: the partner's row), or
// kNoPartner when the partner is out of range and the sample becomes NaN.
struct __align__(8) StagedRow {
  float lam;
  int32_t partner;
};
constexpr int32_t kNoPartner = INT32_MIN;

// What the staged kernel writes.  BlendRule: every sample blended with its
// partner.  CutRule: CutMix, each sample's box (staged as an int4 (y0, x0,
// y1, x1) before the StagedRows) from its partner, the blend where the box
// is (-1, -1, -1, -1), NaN where partner or box is out of range; the
// image's rows are `len` elements, h image rows of w pixels, k elements per
// pixel column (rows at least two vectors long: see staged_strip).
struct BlendRule {
  GivenSource src;
};
struct CutRule {
  const float *lambdas;
  const int64_t *partners;
  const int32_t *boxes;
  int64_t h, w, k, len;
};
template <class Rule>
constexpr bool kCut = std::is_same<Rule, CutRule>::value;
// Shared memory per sample besides the tile.
template <class Rule>
constexpr __host__ __device__ int64_t staged_row_bytes() {
  return kCut<Rule> ? 8 + 16 : 8;
}

// 16 bytes at a shared-memory address aligned to the element size only, by
// 32-bit loads; `odd`: a 16-bit type's address is 2 bytes past a word, and
// each word is put together from two (a funnel shift by 16).  The branch is
// per row, not a shift by 0 or 16 per word: fewer instructions, and
// GPGPU-Sim's shf gives hi | lo for a shift of 0.
template <class T, class V>
__device__ __forceinline__ V load_shared_unaligned(const unsigned char *p, bool odd) {
  uint32_t r[4];
  if (sizeof(typename T::raw) == 2 && odd) {
    const uint32_t *w = reinterpret_cast<const uint32_t *>(p - 2);
    uint32_t v[5];
    FM_UNROLL
    for (int j = 0; j < 5; ++j) v[j] = w[j];
    FM_UNROLL
    for (int j = 0; j < 4; ++j) r[j] = __funnelshift_r(v[j], v[j + 1], 16);
  } else {
    const uint32_t *w = reinterpret_cast<const uint32_t *>(p);
    FM_UNROLL
    for (int j = 0; j < 4; ++j) r[j] = w[j];
  }
  V o;
  memcpy(&o, r, 16);
  return o;
}

// How much of a strip a vector layout checks: kNone, nothing (the interior
// strips of kAligned: every vector of the tile lies inside the strip);
// kEdges, the tile's first and last vector of each row (the interior strips
// of kShifted: the vectors that straddle the strip's edges); kAll, every
// vector (the first and last strips, where the tile also reaches past the
// sample's first or last column).
enum Check { kNone, kEdges, kAll };

// A thread's part of a strip: kRowVecs tile columns kc, kc + part, ... of the
// rows r0, r0 + dr, ..., so that a warp covers consecutive vectors of a row,
// a row's lambda and partner are read once per kRowVecs vectors, and the
// addresses advance by additions.
constexpr uint32_t kRowVecs = 4;
struct StripThread {
  uint32_t part, kc, r0, dr;
};

// One strip [c0, c1) of a vector layout (c0 is negative in the first strip
// when x is not 16-byte aligned: those columns do not exist).  A vector that
// is not inside the sample is loaded element by element, and one that is not
// inside the strip is stored so (where C checks it).  g: the thread's first
// vector column c0 + kc * V of its row, as a byte pointer; the row's aligned
// vectors start o elements before it.
template <class T, bool Shifted, Check C, class Rule>
__device__ __forceinline__ void staged_strip(typename T::raw *x, const StagedRow *rows,
                                             const int4 *boxes, unsigned char *tile, uint32_t n,
                                             int64_t elems, int64_t stride, int64_t c0, int64_t c1,
                                             uint32_t pitch_bytes, const StripThread &th,
                                             const Rule &rule) {
  using raw = typename T::raw;
  using vec = typename Vec16<T>::type;
  constexpr int V = kVecBytes / (int)sizeof(raw);
  const int64_t lo_ok = c0 > 0 ? c0 : 0, row_bytes = (int64_t)th.dr * stride * (int64_t)sizeof(raw);
  const uint32_t tile_step = th.dr * pitch_bytes, u_bytes = th.part * kVecBytes;
  const int64_t u_gbytes = u_bytes, u_elems = (int64_t)th.part * V;
  const int64_t col0 = c0 + (int64_t)th.kc * V;
  unsigned char *const g0 = reinterpret_cast<unsigned char *>(x + (int64_t)th.r0 * stride + col0);
  unsigned char *const t0 = tile + th.r0 * pitch_bytes + th.kc * kVecBytes;
  const bool first_col = th.kc == 0, last_col = th.kc == th.part - 1;
  // Whether vector u of the thread's row needs the check of C.
  auto checked = [&](int u) {
    return C == kAll ||
           (C == kEdges && ((u == 0 && first_col) || (u == (int)kRowVecs - 1 && last_col)));
  };
  // The row's first aligned vector at or before g (by subtraction from g, so
  // that the compiler still knows a global pointer), and how many elements
  // before g it starts.
  auto aligned = [](unsigned char *g) { return Shifted ? g - (uintptr_t)g % kVecBytes : g; };
  auto offset = [](const unsigned char *g) {
    return Shifted ? (int)((uintptr_t)g % kVecBytes / sizeof(raw)) : 0;
  };

  unsigned char *g = g0, *t = t0;
  // Two rows per step: 8 loads in flight per thread before the first store
  // to shared memory waits for its data.
#pragma unroll 2
  for (uint32_t r = th.r0; r < n; r += th.dr, g += row_bytes, t += tile_step) {
    const unsigned char *gv = aligned(g);
    FM_UNROLL
    for (int u = 0; u < (int)kRowVecs; ++u) {
      vec *tu = reinterpret_cast<vec *>(t + u * u_bytes);
      const raw *gu = reinterpret_cast<const raw *>(gv + u * u_gbytes);
      const int64_t lo = col0 - offset(g) + u * u_elems;  // the column of gu[0]
      if (C != kAll || (lo >= 0 && lo + V <= elems)) {
        *tu = *reinterpret_cast<const vec *>(gu);
      } else {
        FM_UNROLL
        for (int j = 0; j < V; ++j)
          if (lo + j >= lo_ok && lo + j < c1) reinterpret_cast<raw *>(tu)[j] = gu[j];
      }
    }
  }
  __syncthreads();

  // CutMix: where the thread's vectors start in sample 0's image, once per
  // strip: column and image row of c0 + kc * V + u * part * V.  A row's
  // vectors start o = offset(g) elements earlier (o < V).  A column before
  // the sample (first strip, f > -V) is put on a row -1 of its own, whose
  // elements are never written; with rows of at least 2V elements its
  // column f + len - o stays in that row, and the vector's elements from
  // column len on are row 0's.
  Pos pos[kCut<Rule> ? kRowVecs : 1];
  if constexpr (kCut<Rule>) {
    FM_UNROLL
    for (int u = 0; u < (int)kRowVecs; ++u) {
      const int64_t f = col0 + u * u_elems;
      const int64_t row = f < 0 ? -1 : div_fast(f, rule.len);
      pos[u] = Pos{f - row * rule.len, row < 0 ? -1 : row - div_fast(row, rule.h) * rule.h};
    }
  }

  g = g0, t = t0;
  const StagedRow *row = rows + th.r0;
  for (uint32_t r = th.r0; r < n; r += th.dr, g += row_bytes, t += tile_step, row += th.dr) {
    unsigned char *gv = aligned(g);
    const StagedRow rw = *row;
    if constexpr (kCut<Rule>) {
      const int4 bx = boxes[r];
      if (rw.partner != kNoPartner && bx.x >= 0) {  // CutMix: only what the box changes
        const RowBox box{(int64_t)bx.y * rule.k, (int64_t)bx.w * rule.k, rule.len, rule.h, bx.x,
                         (uint32_t)(bx.z - bx.x)};
        const int o = offset(g);
        const unsigned char *pt = tile + rw.partner + th.kc * kVecBytes;
        FM_UNROLL
        for (int u = 0; u < (int)kRowVecs; ++u) {
          Pos p = pos[u];
          if (Shifted) {
            p.col -= o;
            if (p.col < 0) p.col += rule.len, p.y = p.y == 0 ? rule.h - 1 : p.y - 1;
          }
          const VecHit hit = vec_hit<V, true>(box, p.col, p.y);
          if (!hit.touch) continue;
          const unsigned char *pu = pt + u * u_bytes;
          raw *gu = reinterpret_cast<raw *>(gv + u * u_gbytes);
          const int64_t lo = col0 - o + u * u_elems;
          if (!checked(u) || (lo >= lo_ok && lo + V <= c1)) {
            const vec pv = Shifted ? load_shared_unaligned<T, vec>(pu, (rw.partner & 2) != 0)
                                   : *reinterpret_cast<const vec *>(pu);
            if (vec_inside<V>(box, hit, p.col)) {
              *reinterpret_cast<vec *>(gu) = pv;
            } else {
              vec vo = *reinterpret_cast<const vec *>(t + u * u_bytes);
              raw *po = reinterpret_cast<raw *>(&vo);
              const raw *pp = reinterpret_cast<const raw *>(&pv);
              FM_UNROLL
              for (int j = 0; j < V; ++j)
                if (elem_in(box, hit, p.col, j)) po[j] = pp[j];
              *reinterpret_cast<vec *>(gu) = vo;
            }
          } else {
            FM_UNROLL
            for (int j = 0; j < V; ++j)
              if (lo + j >= lo_ok && lo + j < c1 && elem_in(box, hit, p.col, j))
                gu[j] = reinterpret_cast<const raw *>(pu)[j];
          }
        }
        continue;
      }
    }
    const float lam = rw.lam, mu = 1.0f - lam;
    // Bad: the partner is out of range, and the row becomes NaN.
    auto put = [&](auto bad_type) {
      constexpr bool bad = decltype(bad_type)::value;
      const unsigned char *pt = tile + (bad ? 0 : rw.partner) + th.kc * kVecBytes;
      FM_UNROLL
      for (int u = 0; u < (int)kRowVecs; ++u) {
        const vec own = *reinterpret_cast<const vec *>(t + u * u_bytes);
        const unsigned char *pu = pt + u * u_bytes;
        raw *gu = reinterpret_cast<raw *>(gv + u * u_gbytes);
        const int64_t lo = col0 - offset(g) + u * u_elems;
        if (!checked(u) || (lo >= lo_ok && lo + V <= c1)) {
          if (bad)
            *reinterpret_cast<vec *>(gu) = nan_vec<T>();
          else
            *reinterpret_cast<vec *>(gu) =
                blend_vec<T>(own,
                             Shifted ? load_shared_unaligned<T, vec>(pu, (rw.partner & 2) != 0)
                                     : *reinterpret_cast<const vec *>(pu),
                             lam, mu);
        } else {
          const raw *own_e = reinterpret_cast<const raw *>(&own);
          FM_UNROLL
          for (int j = 0; j < V; ++j)
            if (lo + j >= lo_ok && lo + j < c1)
              gu[j] = blend_one<T>(own_e[j], bad ? nullptr : reinterpret_cast<const raw *>(pu) + j,
                                   lam, mu);
        }
      }
    };
    if (rw.partner == kNoPartner)
      put(std::true_type{});
    else
      put(std::false_type{});
  }
}

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

// One strip [c0, c0 + w) of kElements, `width` elements per tile row.
template <class T>
__device__ __forceinline__ void staged_strip_elements(typename T::raw *x, const StagedRow *rows,
                                                      typename T::raw *tile, int64_t n,
                                                      int64_t stride, int64_t c0, int64_t w,
                                                      int64_t width) {
  const uint32_t cells = (uint32_t)(n * w);
  const CellWalk walk((uint32_t)w);
  for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
    tile[(int64_t)r * width + c] = x[r * stride + c0 + c];
    walk.next(r, c);
  }
  __syncthreads();
  for (uint32_t k = threadIdx.x, r = walk.r0, c = walk.c0; k < cells; k += kThreads) {
    const StagedRow row = rows[r];
    const float lam = row.lam, mu = 1.0f - lam;
    x[r * stride + c0 + c] = blend_one<T>(
        tile[(int64_t)r * width + c],
        row.partner == kNoPartner ? nullptr : &tile[(int64_t)row.partner * width + c], lam, mu);
    walk.next(r, c);
  }
}

// Shared memory: (CutRule: n boxes, then) n StagedRows, then the tile
// (16-byte aligned): n rows of
// tile_w vectors (kShifted: tile_w + 1, the last one read only by the funnel
// shifts' fifth word) or of `width` elements (kElements).  Strip s covers
// columns [s * width - h, ...): h is x's offset from 16-byte alignment in
// elements for the vector layouts, so that the strips are aligned in sample 0.
// Two blocks per SM, as the tile is sized for.  (With no minimum, ptxas held
// one instance to 40 registers and spilled.)
template <class T, Layout L, class Rule>
__global__ void __launch_bounds__(kThreads, 2)
    blend_staged_kernel(typename T::raw *x, int64_t n, int64_t elems, int64_t stride, int64_t h,
                        int64_t width, uint32_t tile_w, int64_t strips, Rule rule) {
  using raw = typename T::raw;
  constexpr uint32_t V = kVecBytes / (uint32_t)sizeof(raw);
  extern __shared__ __align__(16) unsigned char smem[];
  int4 *boxes = reinterpret_cast<int4 *>(smem);  // CutRule only
  StagedRow *rows = reinterpret_cast<StagedRow *>(smem + (kCut<Rule> ? 16 * n : 0));
  unsigned char *tile = smem + ((staged_row_bytes<Rule>() * n + 15) & ~int64_t(15));
  const uint32_t pitch_bytes = (tile_w + (L == kShifted ? 1 : 0)) * kVecBytes;

  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    Sample s;
    if constexpr (kCut<Rule>) {
      const int32_t b[4] = {rule.boxes[4 * i], rule.boxes[4 * i + 1], rule.boxes[4 * i + 2],
                            rule.boxes[4 * i + 3]};
      const int64_t p = rule.partners[i];
      s = Sample{rule.lambdas[i], p >= 0 && p < n && box_valid(b, rule.h, rule.w) ? p : -1};
      boxes[i] = make_int4(b[0], b[1], b[2], b[3]);
    } else {
      s = rule.src.get(i, n);
    }
    int32_t part = kNoPartner;
    if (s.partner >= 0) {
      if (L == kElements) {
        part = (int32_t)s.partner;
      } else {
        // The rows' offsets o_i (kShifted), from the low bits of i * stride.
        const uint32_t ms = (uint32_t)stride & (V - 1);
        const int oi = L == kShifted ? (int)(((uint32_t)i * ms) & (V - 1)) : 0;
        const int op = L == kShifted ? (int)(((uint32_t)s.partner * ms) & (V - 1)) : 0;
        part = (int32_t)((uint32_t)s.partner * pitch_bytes) + (op - oi) * (int)sizeof(raw);
      }
    }
    rows[i] = StagedRow{s.lam, part};
  }
  __syncthreads();

  if constexpr (L == kElements) {
    for (int64_t s = blockIdx.x; s < strips; s += gridDim.x) {
      const int64_t c0 = s * width;
      staged_strip_elements<T>(x, rows, reinterpret_cast<raw *>(tile), n, stride, c0,
                               elems - c0 < width ? elems - c0 : width, width);
      __syncthreads();  // the tile is reused by the next strip
    }
  } else {
    StripThread th;
    th.part = tile_w / kRowVecs;
    th.kc = threadIdx.x % th.part, th.r0 = threadIdx.x / th.part, th.dr = kThreads / th.part;
    const int64_t tile_cols = (int64_t)tile_w * V;
    for (int64_t s = blockIdx.x; s < strips; s += gridDim.x) {
      const int64_t c0 = s * width - h, c1 = c0 + width < elems ? c0 + width : elems;
      // Interior: every vector of the tile lies inside the sample (kShifted:
      // with a row's vectors up to V - 1 columns before c0).
      const bool interior = c0 >= (L == kShifted ? (int64_t)V - 1 : 0) && c0 + tile_cols <= elems;
      if (interior)
        staged_strip<T, L == kShifted, L == kShifted ? kEdges : kNone>(
            x, rows, boxes, tile, (uint32_t)n, elems, stride, c0, c1, pitch_bytes, th, rule);
      else
        staged_strip<T, L == kShifted, kAll>(x, rows, boxes, tile, (uint32_t)n, elems, stride, c0,
                                             c1, pitch_bytes, th, rule);
      __syncthreads();
    }
  }
}

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
  const int64_t items = n * chunks;
  const raw *xs = static_cast<const raw *>(x);
  raw *os = static_cast<raw *>(out);
  auto kernel = vec ? blend_rows_kernel<T, true, Source> : blend_rows_kernel<T, false, Source>;
  // The walk along the partner chains, where it pays.
  const bool walk = walk_pays(dev, n, elems * (int64_t)sizeof(raw));
  const size_t smem = walk ? walk_smem(n) : 0;
  // One wave of resident blocks: every block is in flight from the start, so
  // the blocks cover one window of the walk.
  int per_sm = 0;
  FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kThreads, smem, &per_sm));
  const int64_t wave = (int64_t)dev.sms * per_sm;
  const int64_t grid = items < wave ? items : wave;
  return launch(func, kernel, (unsigned)grid, kThreads, smem, stream, xs, os, n, elems, stride,
                chunks, walk, src);
}

// The geometry of a staged launch: the layout, the strip width in elements,
// x's offset from 16-byte alignment in elements (vector layouts), the tile
// width in vectors, shared memory and the strips.
struct Staged {
  Layout layout = kElements;
  int64_t width = 0, h = 0, smem = 0, strips = 0;
  uint32_t tile_w = 0;
};

// A tile of vectors when the batch leaves room for kRowVecs per row
// (kShifted: one more, the row's pad); false when it does not.  The widest
// tile that keeps two blocks per SM (each block also costs the SM its
// reserved shared memory), unless that tile gives a thread fewer than 8
// vectors per strip and a wider one fits in a block's shared memory: a
// strip's fixed cost (two barriers, its set-up) is then spread over too
// little work.  No wider than a sample.  On an H100/H200 the first holds for
// every batch up to a few thousand samples; on a GPU with 64 KiB per SM (and
// the simulator) batches of 32-64 run one block per SM.  `fixed`: the
// shared memory before the tile.
template <class T>
bool vector_tile(const Device &dev, const void *x, int64_t n, int64_t elems, int64_t stride,
                 int64_t fixed, Staged *st) {
  const int64_t es = (int64_t)sizeof(typename T::raw), V = kVecBytes / es;
  const int64_t limit = dev.smem_optin;
  int64_t half = (int64_t)dev.smem_per_sm / 2 - dev.smem_reserved;
  if (half > limit) half = limit;
  const bool shifted = (stride * es) % kVecBytes != 0;
  const int64_t pad = shifted ? 1 : 0;
  auto fits = [&](int64_t tile_w, int64_t budget) {
    return fixed + n * (tile_w + pad) * kVecBytes <= budget;
  };
  if (!fits(kRowVecs, limit)) return false;
  st->layout = shifted ? kShifted : kAligned;
  st->h = (int64_t)((uintptr_t)x % kVecBytes) / es;
  auto widest = [&](int64_t budget) {
    uint32_t w = kRowVecs;
    while (w < 256 && fits(2 * w, budget) && (w - pad) * V < elems + st->h) w *= 2;
    return w;
  };
  st->tile_w = widest(half);
  if (!fits(st->tile_w, half) || (n * st->tile_w < 8 * kThreads && widest(limit) > st->tile_w))
    st->tile_w = widest(limit);
  st->width = (st->tile_w - pad) * V;
  st->smem = fixed + n * (st->tile_w + pad) * kVecBytes;
  st->strips = (elems + st->h + st->width - 1) / st->width;
  return true;
}

// One wave of the staged kernel for `st`, after before() (see launch_staged).
template <class T, class Rule, class Before>
fastmix_status launch_staged_kernel(const char *func, const Device &dev, const Staged &st, void *x,
                                    int64_t n, int64_t elems, int64_t stride, const Rule &rule,
                                    cudaStream_t stream, const Before &before) {
  auto kernel = blend_staged_kernel<T, kAligned, Rule>;
  if (st.layout == kShifted) kernel = blend_staged_kernel<T, kShifted, Rule>;
  if constexpr (!kCut<Rule>)  // CutMix is staged on vectors only
    if (st.layout == kElements) kernel = blend_staged_kernel<T, kElements, Rule>;
  if (st.smem > 48 * 1024)
    FM_TRY(
        allow_dynamic_smem(func, reinterpret_cast<const void *>(kernel), dev, (int)dev.smem_optin));
  int per_sm = 0;
  FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kThreads, (size_t)st.smem,
                       &per_sm));
  const int64_t wave = (int64_t)dev.sms * per_sm;
  FM_TRY(before());
  if (st.strips == 0) return FASTMIX_SUCCESS;  // no elements
  return launch(func, kernel, (unsigned)(st.strips < wave ? st.strips : wave), kThreads,
                (size_t)st.smem, stream, static_cast<typename T::raw *>(x), n, elems, stride, st.h,
                st.width, st.tile_w, st.strips, rule);
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
  int per_sm = 0;
  FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kSampleThreads, 0, &per_sm));
  const int64_t blocks = (batch + kTrialLanes / G - 1) / (kTrialLanes / G);
  *done = blocks <= (int64_t)dev.sms * per_sm;
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
    const int64_t blocks = (batch + kThreads - 1) / kThreads;
    const int64_t grid = blocks < (int64_t)dev.sms * 16 ? blocks : (int64_t)dev.sms * 16;
    return launch(func, sample_kernel<Source, 1>, (unsigned)grid, kThreads, 0, stream, batch,
                  src);
  });
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

fastmix_status launch_cutmix_staged(const char *func, const Device &dev, const CutImages &im,
                                    const float *lambdas, const int64_t *partners,
                                    const int32_t *boxes, cudaStream_t stream, bool *done) {
  *done = false;
  return dispatch_dtype(im.dtype, [&](auto t) {
    using T = decltype(t);
    const int64_t es = (int64_t)sizeof(typename T::raw);
    const RowShape rs = row_shape(im.layout, im.channels, im.height, im.width);
    const int64_t n = im.batch, elems = rs.rows * rs.len;
    const int64_t fixed = (staged_row_bytes<CutRule>() * n + 15) & ~int64_t(15);
    Staged st;
    if (rs.len * es < 2 * kVecBytes ||
        !vector_tile<T>(dev, im.out, n, elems, im.stride, fixed, &st))
      return FASTMIX_SUCCESS;
    *done = true;
    const CutRule rule{lambdas, partners, boxes, im.height, im.width, rs.k, rs.len};
    return launch_staged_kernel<T>(func, dev, st, im.out, n, elems, im.stride, rule, stream,
                                   [] { return FASTMIX_SUCCESS; });
  });
}

fastmix_status cuda_sample(const SampleArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, seed_pointer(a.draw), nullptr, a.lambdas, a.partners));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.batch > 0) FM_TRY(launch_sample(a.func, dev, a.draw, a.batch, a.lambdas, a.partners, s));
  return advance_offset(a.func, a.draw.seed, s);
}

fastmix_status cuda_blend(const BlendArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, nullptr, &a.images, a.lambdas, a.partners));
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
  FM_TRY(check_pointers(a.func, dev, seed_pointer(a.draw), &a.images, a.lambdas, a.partners));
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
