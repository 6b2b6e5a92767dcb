// The in-place blend (blend_staged_kernel), for blend, mixup and CutMix in
// place, with its launch geometry: a block owns a strip of columns of every
// sample, stages the strip of the whole batch in shared memory and only then
// writes it back, so every partner is read before it is overwritten,
// whatever the partners are.  What it writes is its Rule: BlendRule (blend
// and mixup, kernels/mixup.cu) or CutRule (CutMix's box, kernels/cutmix.cu).
#pragma once

#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "math/cutmix.cuh"
#include "mixup_source.cuh"

#include <type_traits>

namespace fm {
// Definitions in an anonymous namespace, as in the .cu files: every .cu
// that includes this header compiles its own kernels (internal linkage), so
// no two translation units register the same kernel.
namespace {

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
// with the sample's tile element 0, which may be negative but is never
// kBadPartner; kElements: the partner's row), or kBadPartner when the partner
// is out of range and the sample becomes NaN.
struct __align__(8) StagedRow {
  float lam;
  int32_t partner;
};

// What the staged kernel writes.  BlendRule: every sample blended with its
// partner.  CutRule: CutMix, each sample's box (staged as an int4 (y0, x0,
// y1, x1) before the StagedRows) from its partner, the blend where the box
// is (-1, -1, -1, -1), NaN where partner or box is out of range; the
// image's rows are rs (rows at least two vectors long: see staged_strip).
struct BlendRule {
  GivenSource src;
};
struct CutRule {
  CutDraws draws;
  RowShape rs;
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
      const int64_t row = f < 0 ? -1 : div_fast(f, rule.rs.len);
      pos[u] =
          Pos{f - row * rule.rs.len, row < 0 ? -1 : row - div_fast(row, rule.rs.h) * rule.rs.h};
    }
  }

  g = g0, t = t0;
  const StagedRow *row = rows + th.r0;
  for (uint32_t r = th.r0; r < n; r += th.dr, g += row_bytes, t += tile_step, row += th.dr) {
    unsigned char *gv = aligned(g);
    const StagedRow rw = *row;
    if constexpr (kCut<Rule>) {
      const int4 bx = boxes[r];
      if (rw.partner != kBadPartner && bx.x >= 0) {  // CutMix: only what the box changes
        const RowBox box{
            (int64_t)bx.y * rule.rs.k, (int64_t)bx.w * rule.rs.k, rule.rs.len, rule.rs.h, bx.x,
            (uint32_t)(bx.z - bx.x)};
        const int o = offset(g);
        const unsigned char *pt = tile + rw.partner + th.kc * kVecBytes;
        FM_UNROLL
        for (int u = 0; u < (int)kRowVecs; ++u) {
          Pos p = pos[u];
          if (Shifted) {
            p.col -= o;
            if (p.col < 0) p.col += rule.rs.len, p.y = p.y == 0 ? rule.rs.h - 1 : p.y - 1;
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
    bool_switch(rw.partner == kBadPartner, put);
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
        row.partner == kBadPartner ? nullptr : &tile[(int64_t)row.partner * width + c], lam, mu);
    walk.next(r, c);
  }
}

// The geometry of a staged launch: the layout, the strip width in elements,
// x's offset from 16-byte alignment in elements (vector layouts), the tile
// width in vectors, shared memory and the strips.
struct Staged {
  Layout layout = kElements;
  int64_t width = 0, h = 0, smem = 0, strips = 0;
  uint32_t tile_w = 0;
};

// What the staged kernel reads: n samples of `elems` elements, `stride`
// apart, at x; the launch's geometry; and the rule.
template <class T, class Rule>
struct StagedParams {
  typename T::raw *x;
  int64_t n, elems, stride;
  Staged geo;
  Rule rule;
};

// Shared memory: (CutRule: n boxes, then) n StagedRows, then the tile
// (16-byte aligned): n rows of
// tile_w vectors (kShifted: tile_w + 1, the last one read only by the funnel
// shifts' fifth word) or of `width` elements (kElements).  Strip s covers
// columns [s * width - h, ...): h is x's offset from 16-byte alignment in
// elements for the vector layouts, so that the strips are aligned in sample 0.
// Two blocks per SM, as the tile is sized for.  (With no minimum, ptxas held
// one instance to 40 registers and spilled.)
template <class T, Layout L, class Rule>
__global__ void __launch_bounds__(kThreads, 2) blend_staged_kernel(const StagedParams<T, Rule> p) {
  using raw = typename T::raw;
  raw *const x = p.x;
  const int64_t n = p.n, elems = p.elems, stride = p.stride, h = p.geo.h, width = p.geo.width;
  const uint32_t tile_w = p.geo.tile_w;
  const int64_t strips = p.geo.strips;
  const Rule &rule = p.rule;
  constexpr uint32_t V = kVecBytes / (uint32_t)sizeof(raw);
  extern __shared__ __align__(16) unsigned char smem[];
  int4 *boxes = reinterpret_cast<int4 *>(smem);  // CutRule only
  StagedRow *rows = reinterpret_cast<StagedRow *>(smem + (kCut<Rule> ? 16 * n : 0));
  unsigned char *tile = smem + ((staged_row_bytes<Rule>() * n + 15) & ~int64_t(15));
  const uint32_t pitch_bytes = (tile_w + (L == kShifted ? 1 : 0)) * kVecBytes;

  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    Sample s;
    if constexpr (kCut<Rule>) {
      const CutSample c = rule.draws.get(i, n, rule.rs.h, rule.rs.w);
      s = Sample{c.lam, c.partner};
      boxes[i] = make_int4(c.box.y0, c.box.x0, c.box.y1, c.box.x1);
    } else {
      s = rule.src.get(i, n);
    }
    int32_t part = kBadPartner;
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
  const int64_t limit = dev.smem_optin, half = dev.smem_half();
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
  unsigned grid = 0;
  FM_TRY(one_wave(func, dev, kernel, kThreads, st.smem, st.strips, &grid));
  FM_TRY(before());
  if (st.strips == 0) return FASTMIX_SUCCESS;  // no elements
  const StagedParams<T, Rule> p{static_cast<typename T::raw *>(x), n, elems, stride, st, rule};
  return launch(func, kernel, grid, kThreads, (size_t)st.smem, stream, p);
}

}  // namespace
}  // namespace fm
