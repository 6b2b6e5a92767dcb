// CUDA kernels of CutMix (mixup or CutMix per sample): the draw, one thread
// per sample, and the apply, one pass over the images.  The math is
// kernels/math/cutmix.cuh, shared with the CPU backend.
//
// The apply sees each image as rows (RowShape, kernels/math/geometry.cuh: NCHW rows of `width`
// elements, NHWC rows of width * channels), so a CutMix sample's row is its
// own elements with at most one span of its partner's, and the box costs a
// few comparisons per 16-byte vector (a lane's row and column advance by
// additions); only the few unaligned elements at a sample's ends are placed
// by a division each.
//  - Out of place (cutmix_chunks_kernel): one warp per (chunk, sample) item.
//    Where the walk pays (kernels/walk.cuh) the samples go along the partner
//    chains, chunk by chunk within a sample, so a partner chunk read from
//    DRAM is the own chunk the next sample's warps read from L2; otherwise
//    sample fastest, so the partner chunks read are the own chunks of warps
//    in flight.  A mixup chunk reads both; a CutMix chunk reads its
//    partner's cells only where the box is.
//  - In place: the blend's staged kernel (kernels/blend_staged.cuh) with each
//    sample's box, on 16-byte vectors at any row length and stride; here
//    only its fallback on elements (cutmix_staged_kernel), for rows shorter
//    than two vectors and batches too large for a tile of vectors: a block
//    owns a segment of one row position, stages it for the whole batch in
//    shared memory, then writes what changes, so every partner is read
//    before it is overwritten.
// Out of place moves 16-byte vectors wherever x and out are equally far
// from 16-byte alignment (a sample's vectors start after its unaligned head,
// and a partner at another offset is realigned), else elements.
#include "blend_staged.cuh"
#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "math/cutmix.cuh"
#include "math/dtype.cuh"
#include "mixup_source.cuh"
#include "static_switch.cuh"
#include "walk.cuh"

#include <cuda_runtime.h>

#include <type_traits>

namespace fm {
namespace {

constexpr int kWarps = kThreads / 32;

// ---- the draw -----------------------------------------------------------------
// The draw of n samples: seed and offset as given, or (seed_offset != NULL)
// read from it when the kernel runs and the pairing keyed there
// (make_pairing is the host's code), so that the draw is bitwise that of
// the same values given directly.
struct DrawParams {
  int64_t n;
  MixParams mp;
  Pairing pr;
  uint64_t seed, offset;
  const uint64_t *seed_offset;
  int pairing;
  float *lambdas;
  int64_t *partners;
  int32_t *boxes;
};

__global__ void __launch_bounds__(kThreads, 1) cutmix_sample_kernel(const DrawParams p) {
  Pairing pr = p.pr;
  uint64_t seed = p.seed, offset = p.offset;
  if (p.seed_offset) {
    seed = p.seed_offset[0];
    offset = p.seed_offset[1];
    pr = make_pairing(p.pairing, seed, offset, (uint64_t)p.n);
  }
  for (int64_t i = blockIdx.x * (int64_t)kThreads + threadIdx.x; i < p.n;
       i += (int64_t)gridDim.x * kThreads) {
    const MixDraw d = mix_draw(p.mp, pr, seed, offset, (uint64_t)i, (uint64_t)p.n);
    p.lambdas[i] = d.lam;
    p.partners[i] = d.partner;
    d.box.store(p.boxes, i);
  }
}

// ---- the apply ------------------------------------------------------------------
static_assert(sizeof(CutSample) == 24, "the shared-memory budget of the header counts 24 bytes");

// What both apply kernels read: n samples of rows `rs`, `stride` elements
// apart, from x into out (the same pointer in place), and the draws.  Out
// of place, `parts` is the chunks of a sample and `walk` says whether the
// items go along the partner chains; in place, `parts` is the segments of
// a row position, each 2^log2_pitch elements of the tile.
template <class T>
struct CutParams {
  const typename T::raw *__restrict__ x;
  typename T::raw *__restrict__ out;
  RowShape rs;
  int64_t n, stride, parts;
  int log2_pitch;
  bool walk;
  CutDraws draws;
  __device__ __forceinline__ CutSample sample(int64_t i) const {
    return draws.get(i, n, rs.h, rs.w);
  }
};

// Out of place: warp items of 32 x kLaneVecs vectors or 32 x kLaneElems
// elements of one sample (a lane's cells 32 apart), in the order above.  A
// sample is flat, rows * len elements (its rows are contiguous), and its
// cells are elements or, on the vector paths, the 16-byte vectors that
// row_vectors finds (with unaligned elements before and after, done one by
// one by the warp of chunk 0).  A mixup or bad sample's chunk is one flat
// span; a CutMix sample's lane finds the (image row, column) of its first
// cell with one division per item and walks the rest by additions.
//
// 16 vectors per lane: an item's fixed cost (the sample's draw read and
// checked, its vectors and the lane's position found) is then spread over
// 64 float32 elements per lane; with 8 vectors per lane an element costs
// about 1.5 instructions more.
constexpr int kLaneVecs = 16, kLaneElems = 8;

// Where a cell's first element is in the image (the row modulo the height:
// NCHW rows run through the channels; NHWC rows are image rows, and a lane
// past a sample's end computes positions it never uses).
__device__ __forceinline__ Pos pos_of(const RowShape &sh, int64_t f) {
  const int64_t row = div_fast(f, sh.len);
  return Pos{f - row * sh.len, row - div_fast(row, sh.h) * sh.h};
}

// A lane's step from one of its cells to the next, 32 cells of `by`
// elements: dcol columns and dy image rows; found once per thread.
struct Step {
  int64_t dcol, dy;
  __device__ Step(const RowShape &sh, int64_t by) {
    const int64_t drow = by / sh.len;
    dcol = by - drow * sh.len;
    dy = drow % sh.h;
  }
};

__device__ __forceinline__ void advance(Pos &p, const Step &st, const RowShape &sh) {
  p.col += st.dcol, p.y += st.dy;
  if (p.col >= sh.len) p.col -= sh.len, ++p.y;
  if (p.y >= sh.h) p.y -= sh.h;
}

__device__ __forceinline__ RowBox row_box(const Box &b, const RowShape &sh) {
  const int64_t lo = (int64_t)b.x0 * sh.k, hi = (int64_t)b.x1 * sh.k;
  return RowBox{lo, hi, sh.len, sh.h, b.y0, (uint32_t)(b.y1 - b.y0)};
}

// Element f of a sample, the way a scalar cell is done: NaN for a bad
// partner, the blend for a mixup sample, the partner's element inside the
// box (f at column col of image row y).
template <class T>
__device__ __forceinline__ typename T::raw cut_one(const CutSample &s, const typename T::raw *a,
                                                   const typename T::raw *b, int64_t f, int64_t col,
                                                   int64_t y, const RowBox &box) {
  if (!b) return T::store(quiet_nan());
  if (s.blends()) return blend_one<T>(__ldg(a + f), b + f, s.lam, 1.0f - s.lam);
  return __ldg((box.row_in(y) && col >= box.lo && col < box.hi ? b : a) + f);
}

// The partner's vector c, read from 16-byte-aligned vectors Shift elements
// before it.
template <class T, int Shift, class V>
__device__ __forceinline__ V partner_vec(const V *bv, int c) {
  if constexpr (Shift == 0)
    return __ldg(bv + c);
  else
    return realign<T, Shift>(__ldg(bv + c), __ldg(bv + c + 1));
}

// A lane's vectors of a chunk of a sample whose partner is in range, the
// partner's vectors Shift elements off alignment (bv: the aligned vector
// holding the first element of the partner's vector 0).  A vector may run
// past the end of an image row into the next (rows of any length >= V); the
// box test then looks at both rows.  Vectors wholly inside the box are the
// partner's, vectors that straddle its edges are put together per element.
// With a shift, each cell reads three vectors: its loop goes two cells at a
// time (fully unrolled, the 16-bit types took 240-254 registers and one
// block per SM; this way every instance fits two).  A partner vector is
// loaded after its box test, so a lane has few loads in flight; issuing a
// group's loads first (all of them, or the box's) was slower on the cycle
// model and read more from DRAM (docs/performance.md: the cycle model's
// "CutMix out of place").
template <class T, int Shift, bool Wraps>
__device__ __forceinline__ void cut_vectors(const CutSample &s, const typename T::raw *a,
                                            const typename T::raw *b, typename T::raw *o,
                                            const RowVectors &r, const RowShape &sh,
                                            const RowBox &box, const Step &st, int64_t c0) {
  using raw = typename T::raw;
  using vec = typename Vec16<T>::type;
  constexpr int V = kVecBytes / (int)sizeof(raw), kUnroll = Shift == 0 ? 8 : 2;
  // The lane's first vector, the others 32 vectors apart (constant offsets).
  const vec *av = reinterpret_cast<const vec *>(a + r.head) + c0;
  const vec *bv = reinterpret_cast<const vec *>(b + r.head - Shift) + c0;
  vec *ov = reinterpret_cast<vec *>(o + r.head) + c0;
  const int64_t left = r.nvec - c0;
  if (s.blends()) {
    const float lam = s.lam, mu = 1.0f - lam;
#pragma unroll kUnroll
    for (int q = 0; q < kLaneVecs; ++q)
      if (32 * q < left)
        ov[32 * q] = blend_vec<T>(__ldg(av + 32 * q), partner_vec<T, Shift>(bv, 32 * q), lam, mu);
    return;
  }
  Pos p = pos_of(sh, r.head + c0 * V);
#pragma unroll kUnroll
  for (int q = 0; q < kLaneVecs; ++q) {
    const int c = 32 * q;
    if (c < left) {
      const vec va = __ldg(av + c);
      const VecHit hit = vec_hit<V, Wraps>(box, p.col, p.y);
      if (!hit.touch) {
        ov[c] = va;
      } else if (vec_inside<V>(box, hit, p.col)) {
        ov[c] = partner_vec<T, Shift>(bv, c);
      } else {  // a box edge or a row end: element by element
        const vec vb = partner_vec<T, Shift>(bv, c);
        vec vo;
        const raw *pa = reinterpret_cast<const raw *>(&va);
        const raw *pb = reinterpret_cast<const raw *>(&vb);
        raw *po = reinterpret_cast<raw *>(&vo);
        FM_UNROLL
        for (int e = 0; e < V; ++e) po[e] = elem_in(box, hit, p.col, e) ? pb[e] : pa[e];
        ov[c] = vo;
      }
    }
    advance(p, st, sh);
  }
}

// The cells of the out-of-place kernel:
//  - kCutAligned: rows of whole 16-byte vectors (x and out aligned, row and
//    sample strides multiples of 16 bytes): no head, no shift, and a vector
//    never runs past a row's end;
//  - kCutFlat: x and out equally far from 16-byte alignment and image rows
//    at least a vector long: row_vectors' vectors, partners realigned, edge
//    elements done one by one;
//  - kCutElements: anything else.
enum CutPath { kCutElements, kCutAligned, kCutFlat };

// At least two blocks per SM: without the bound ptxas held the float32
// vector instances to 80 registers and spilled.
template <class T, CutPath P>
__global__ void __launch_bounds__(kThreads, 2) cutmix_chunks_kernel(const CutParams<T> p) {
  using raw = typename T::raw;
  using vec = typename Vec16<T>::type;
  extern __shared__ int32_t walk_s[];  // [n] the walk, then [n] the partners while finding it
  const RowShape &sh = p.rs;
  const int64_t n = p.n, chunks = p.parts;
  const bool walk = p.walk;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int64_t warps = (int64_t)gridDim.x * kWarps, items = n * chunks;
  const int64_t elems = sh.rows * sh.len;
  constexpr int E = P == kCutElements ? 1 : kVecBytes / (int)sizeof(raw);  // elements per cell
  const Step st(sh, 32 * E);
  if (walk)
    find_walk(n, walk_s, walk_s + n, [&](int64_t j) {
      const int64_t q = p.draws.partners[j];
      return q >= 0 && q < n ? q : int64_t{kBadPartner};
    });
  // Item t: along the walk, chunk t % chunks of the sample at position
  // t / chunks; else sample t % n's chunk t / n.  A warp carries its
  // (minor, major) pair along instead of dividing per item.
  const int64_t minors = walk ? chunks : n;
  const int64_t dminor = warps % minors, dmajor = warps / minors;
  int64_t minor = warp % minors, major = warp / minors;
  for (int64_t item = warp; item < items; item += warps) {
    const int64_t i = walk ? walk_s[major] : minor, k = walk ? minor : major;
    const CutSample s = p.sample(i);
    const raw *a = p.x + i * p.stride;
    const raw *b = s.partner == kBadPartner ? nullptr : p.x + (int64_t)s.partner * p.stride;
    raw *o = p.out + i * p.stride;
    const int64_t c0 = k * (32 * (P == kCutElements ? kLaneElems : kLaneVecs)) + lane;
    const RowBox box = row_box(s.box, sh);
    if constexpr (P != kCutElements) {
      const RowVectors r =
          P == kCutAligned ? RowVectors{0, 0, elems / E} : row_vectors<T>(a, b, elems);
      if (!b) {
        vec *ov = reinterpret_cast<vec *>(o + r.head) + c0;
        FM_UNROLL
        for (int q = 0; q < kLaneVecs; ++q)
          if (32 * q < r.nvec - c0) ov[32 * q] = nan_vec<T>();
      } else if (P == kCutAligned) {
        cut_vectors<T, 0, false>(s, a, b, o, r, sh, box, st, c0);
      } else if (r.nvec > 0) {
        with_constant<0, E>(r.shift, [&](auto shift) {
          cut_vectors<T, decltype(shift)::value, true>(s, a, b, o, r, sh, box, st, c0);
        });
      }
      if (P == kCutFlat && k == 0) {  // the elements before and after the vectors
        const int64_t head = r.nvec ? r.head : elems, tail0 = head + r.nvec * E;
        for (int64_t j = lane; j < head + (elems - tail0); j += 32) {
          const int64_t f = j < head ? j : tail0 + (j - head);
          const Pos at = pos_of(sh, f);
          o[f] = cut_one<T>(s, a, b, f, at.col, at.y, box);
        }
      }
    } else if (!b || s.blends()) {
      FM_UNROLL
      for (int q = 0; q < kLaneElems; ++q) {
        const int64_t f = c0 + 32 * q;
        if (f < elems) o[f] = cut_one<T>(s, a, b, f, 0, 0, box);
      }
    } else {
      Pos at = pos_of(sh, c0 < elems ? c0 : 0);
      FM_UNROLL
      for (int q = 0; q < kLaneElems; ++q) {
        const int64_t f = c0 + 32 * q;
        if (f < elems) o[f] = cut_one<T>(s, a, b, f, at.col, at.y, box);
        advance(at, st, sh);
      }
    }
    minor += dminor, major += dmajor;
    if (minor >= minors) minor -= minors, ++major;
  }
}

// In place, on elements, where the staged blend kernel
// (kernels/blend_staged.cuh) cannot take CutMix: image rows shorter than two
// vectors, or batches too large for a tile of vectors.  Shared memory: a
// CutSample per sample, then the tile, n x pitch elements (pitch a power of
// two).  Item t is segment t % segs of row position t / segs.
template <class T>
__global__ void __launch_bounds__(kThreads) cutmix_staged_kernel(const CutParams<T> p) {
  using raw = typename T::raw;
  extern __shared__ __align__(16) unsigned char smem[];
  const RowShape &sh = p.rs;
  const int64_t n = p.n, segs = p.parts, stride = p.stride;
  const int log2_pitch = p.log2_pitch;
  CutSample *info = reinterpret_cast<CutSample *>(smem);
  raw *tile =
      reinterpret_cast<raw *>(smem + ((n * (int64_t)sizeof(CutSample) + 15) & ~int64_t(15)));
  for (int64_t q = threadIdx.x; q < n; q += kThreads) info[q] = p.sample(q);
  __syncthreads();

  const int64_t pitch = int64_t(1) << log2_pitch;
  const uint32_t total = (uint32_t)(n << log2_pitch), mask = (uint32_t)pitch - 1;
  for (int64_t t = blockIdx.x; t < sh.rows * segs; t += gridDim.x) {
    const int64_t r = t / segs, c0 = (t % segs) * pitch;
    const int64_t w = sh.len - c0 < pitch ? sh.len - c0 : pitch;
    const int64_t hr = sh.image_row(r);
    raw *base = p.out + r * sh.len + c0;
    for (uint32_t e = threadIdx.x; e < total; e += kThreads) {
      const uint32_t q = e >> log2_pitch, c = e & mask;
      if (c < w) tile[e] = base[q * stride + c];
    }
    __syncthreads();
    for (uint32_t e = threadIdx.x; e < total; e += kThreads) {
      const uint32_t q = e >> log2_pitch, c = e & mask;
      if (c >= w) continue;
      const CutSample &s = info[q];
      raw *o = base + q * stride + c;
      if (s.partner == kBadPartner) {
        *o = T::store(quiet_nan());
        continue;
      }
      const raw *pe = &tile[((uint32_t)s.partner << log2_pitch) | c];
      const Box &bx = s.box;
      if (s.blends())
        *o = blend_one<T>(tile[e], pe, s.lam, 1.0f - s.lam);
      else if (hr >= bx.y0 && hr < bx.y1 && c0 + c >= bx.x0 * sh.k && c0 + c < bx.x1 * sh.k)
        *o = *pe;
    }
    __syncthreads();  // the tile is reused by the next item
  }
}

// ---- host side --------------------------------------------------------------
}  // namespace

// The draw kernel's launcher; the uint8 path (kernels/input.cu) draws with it too.
fastmix_status launch_cutmix_draw(const CutmixSampleArgs &a, const Device &dev,
                                  cudaStream_t stream) {
  if (a.batch == 0) return FASTMIX_SUCCESS;
  const MixParams mp = make_mix_params(a.config, a.height, a.width);
  const bool mem = a.seed.kind == Seed::kMemory;
  const Pairing pr = make_pairing(a.config.pairing, mem ? 0 : a.seed.seed, mem ? 0 : a.seed.offset,
                                  (uint64_t)a.batch);
  DrawParams p{};
  p.n = a.batch, p.mp = mp, p.pr = pr, p.seed = a.seed.seed, p.offset = a.seed.offset;
  p.seed_offset = mem ? a.seed.ptr : nullptr, p.pairing = (int)a.config.pairing;
  p.lambdas = a.lambdas, p.partners = a.partners, p.boxes = a.boxes;
  return launch(a.func, cutmix_sample_kernel, draw_grid(dev, a.batch), kThreads, 0, stream, p);
}

namespace {

template <class T>
fastmix_status launch_apply_typed(const char *func, const Device &dev, const CutImages &im,
                                  const CutDraws &draws, cudaStream_t stream) {
  using raw = typename T::raw;
  const int64_t es = (int64_t)sizeof(raw);
  const RowShape rs = row_shape(im.layout, im.channels, im.height, im.width);
  CutParams<T> p{};
  p.x = static_cast<const raw *>(im.x), p.out = static_cast<raw *>(im.out);
  p.rs = rs, p.n = im.batch, p.stride = im.stride, p.draws = draws;
  // Rows of whole 16-byte vectors in x: x aligned, row and sample strides
  // multiples of 16 bytes.
  const bool rows_aligned = (uintptr_t)im.x % kVecBytes == 0 && (rs.len * es) % kVecBytes == 0 &&
                            (im.stride * es) % kVecBytes == 0;
  if (im.x != im.out) {
    // A sample has at most elems / V vectors.
    const bool aligned = (uintptr_t)im.out % kVecBytes == 0 && rows_aligned;
    const bool flat =
        (uintptr_t)im.x % kVecBytes == (uintptr_t)im.out % kVecBytes && rs.len * es >= kVecBytes;
    const int64_t cells = rs.rows * rs.len / (aligned || flat ? kVecBytes / es : 1);
    const int64_t per_chunk = 32 * (aligned || flat ? kLaneVecs : kLaneElems);
    p.parts = (cells + per_chunk - 1) / per_chunk;
    auto kernel = aligned ? cutmix_chunks_kernel<T, kCutAligned>
                  : flat  ? cutmix_chunks_kernel<T, kCutFlat>
                          : cutmix_chunks_kernel<T, kCutElements>;
    // The walk along the partner chains, where it pays; one wave of
    // resident blocks, so that the blocks in flight cover one window of it.
    p.walk = walk_pays(dev, p.n, rs.rows * rs.len * es);
    const int64_t smem = p.walk ? (int64_t)walk_smem(p.n) : 0;
    const int64_t blocks = (p.n * p.parts + kWarps - 1) / kWarps;
    unsigned grid = 0;
    FM_TRY(one_wave(func, dev, kernel, kThreads, smem, blocks, &grid));
    return launch(func, kernel, grid, kThreads, (size_t)smem, stream, p);
  }
  // In place where the staged blend kernel cannot take it (image rows
  // shorter than two vectors, or batches too large for a tile of vectors):
  // the widest power-of-two segment of elements whose tile for the whole
  // batch fits two blocks per SM where it can, else one.
  const int64_t fixed = (im.batch * (int64_t)sizeof(CutSample) + 15) & ~int64_t(15);
  const int64_t limit = dev.smem_optin;
  const int64_t cell_bytes = es;
  if (fixed + im.batch * cell_bytes > limit)
    return fail(FASTMIX_ERROR_NOT_SUPPORTED,
                "%s: in place on CUDA needs batch * (%d + %d) <= %lld bytes of shared memory, "
                "batch is %lld; apply out of place instead",
                func, (int)sizeof(CutSample), (int)es, (long long)limit, (long long)im.batch);
  const int64_t half = dev.smem_half();
  const int64_t budget = fixed + im.batch * cell_bytes * 8 <= half ? half : limit;
  const int64_t cells = rs.len;
  while ((int64_t(2) << p.log2_pitch) <= cells * 2 - 1 && (int64_t(2) << p.log2_pitch) <= 1024 &&
         fixed + im.batch * cell_bytes * (int64_t(2) << p.log2_pitch) <= budget &&
         (im.batch << (p.log2_pitch + 1)) <= INT32_MAX)
    ++p.log2_pitch;
  const int64_t pitch = int64_t(1) << p.log2_pitch;
  p.parts = (cells + pitch - 1) / pitch;
  const int64_t smem = fixed + im.batch * cell_bytes * pitch;
  auto kernel = cutmix_staged_kernel<T>;
  unsigned grid = 0;
  FM_TRY(one_wave(func, dev, kernel, kThreads, smem, rs.rows * p.parts, &grid));
  return launch(func, kernel, grid, kThreads, (size_t)smem, stream, p);
}

// CutMix in place on the blend's staged kernel (kernels/blend_staged.cuh).
// *done false (and nothing queued) when image rows are shorter than two
// 16-byte vectors or no tile of vectors fits the batch: the caller then runs
// the element kernel.
fastmix_status launch_cutmix_staged(const char *func, const Device &dev, const CutImages &im,
                                    const CutDraws &draws, cudaStream_t stream, bool *done) {
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
    const CutRule rule{draws, rs};
    return launch_staged_kernel<T>(func, dev, st, im.out, n, elems, im.stride, rule, stream,
                                   [] { return FASTMIX_SUCCESS; });
  });
}

fastmix_status launch_apply(const char *func, const Device &dev, const CutImages &im,
                            const CutDraws &draws, cudaStream_t stream) {
  if (im.batch == 0) return FASTMIX_SUCCESS;
  if (im.x == im.out) {
    bool done = false;
    FM_TRY(launch_cutmix_staged(func, dev, im, draws, stream, &done));
    if (done) return FASTMIX_SUCCESS;
  }
  return dispatch_dtype(im.dtype, [&](auto t) {
    return launch_apply_typed<decltype(t)>(func, dev, im, draws, stream);
  });
}

}  // namespace

fastmix_status cuda_cutmix_sample(const CutmixSampleArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev,
                        {{"seed_offset", seed_pointer(a.seed), true},
                         {"lambdas", a.lambdas},
                         {"partners", a.partners},
                         {"boxes", a.boxes}}));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  FM_TRY(launch_cutmix_draw(a, dev, s));
  return advance_offset(a.func, a.seed, s);
}

fastmix_status cuda_cutmix_apply(const CutmixApplyArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(
      check_apply_pointers(a.func, dev, a.images.x, a.images.out, a.lambdas, a.partners, a.boxes));
  return launch_apply(a.func, dev, a.images, CutDraws{a.lambdas, a.partners, a.boxes},
                      static_cast<cudaStream_t>(stream));
}

fastmix_status cuda_cutmix(const CutmixArgs &a, void *stream) {
  const CutmixSampleArgs &d = a.draw;
  return cutmix_draw_then(
      a.func, d, a.images.x, a.images.out, stream, [&](const Device &dev, cudaStream_t s) {
        return launch_apply(a.func, dev, a.images, CutDraws{d.lambdas, d.partners, d.boxes}, s);
      });
}

}  // namespace fm
