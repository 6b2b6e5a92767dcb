// CUDA kernel of the uint8 input path: uint8 images in, mixed (mixup or
// CutMix, the draw of kernels/cutmix.cu) and normalized float images out,
// one pass.  The arithmetic is kernels/math/input.cuh (u8_value), shared
// with the CPU, so the values are bitwise the CPU backend's.
//
// Traffic: 1 byte read per output element (the partner's byte too for a
// mixup sample or inside a box, which is another block's own byte, read at
// about the same time: see the tile order) and one element written.  The
// layout change (NHWC <-> NCHW) is a transpose, done through shared memory
// so that the global reads and writes are 16-byte vectors in every layout
// pair:
//
// - A tile is a run of `px` consecutive pixels of one sample (pixel y * w +
//   x, across image rows: neither the transpose nor the normalization cares
//   where a row ends, only the CutMix box does), about kTileBytes input
//   bytes.  NHWC input holds it as one run of px * c bytes, NCHW input as c
//   runs of px bytes (one per channel); the output likewise in elements.
// - Load phase: each input run is cut at the 16-byte boundaries of global
//   memory; a vector wholly in the run is one 16-byte load and one 16-byte
//   shared store, at the same offset from alignment in shared memory as in
//   global memory (so the shared stores are aligned too), and the partial
//   vectors at a run's ends are read byte by byte, so that nothing outside
//   the sample is read, whatever the alignment of x and x_stride.  The
//   partner's tile goes to a second buffer, at its own alignment.
// - Store phase: each output run is cut at the 16-byte boundaries of out;
//   a thread computes one vector (4 float32 or 8 16-bit elements), reading
//   each element's byte from shared memory wherever the input layout puts it
//   (one shared byte load per element costs the same at any stride and any
//   alignment, where a wider load would need realigning), and writes it with
//   one 16-byte store; the partial vectors at a run's ends are written
//   element by element.
// The work per element is a shared byte load, the conversion and
// u8_value's arithmetic (a second byte and the blend for mixup).
//
// Per tile (uniform over the block): a bad partner or box writes NaN and
// reads nothing (fastmix.h's contract for CUDA); a mixup sample reads both
// tiles (only its own where the partner is itself or lambda is 1, where the
// blend equals the sample's value for any partner byte); a CutMix sample
// whose box misses the tile reads only its own tile, one whose box covers
// it only the partner's, and otherwise both: each output vector then
// classifies its pixels against the box, and only one that straddles the
// box's edge picks element by element.  Reading the two whole tiles there
// (rather than skipping the vectors that no output takes) reads the
// partner's bytes outside the box, which its own block reads at about the
// same time (L2 hits), and the sample's own bytes inside the box, which
// nobody may need: in DRAM that is at most the share of the input under
// the boxes that no partner takes (about 4% of the input of the
// benchmark's draw), for a load phase without box arithmetic.
//
// Tile order: block t takes tile t / n of sample slot t % n, so that the
// same tile of every sample is in flight together and a partner's bytes,
// read by its own block and by its pair's, are still in L2 the second
// time.  Slots go 0, n-1, 1, n-2, ...: timm's default pairing (flip) pairs i
// with n-1-i, whom this puts in neighbouring blocks; other pairings lose
// nothing by it.
//
// Indices inside a tile are 32-bit (a tile holds at most about kTileBytes +
// 64 * 16 bytes); the divisions by the channels, the vectors per run, the
// batch and the width are a multiply and a shift (FastDiv) while the
// dividend fits 31 bits, else a double-precision quotient, corrected.
#include "blend_vec.cuh"
#include "cuda_util.cuh"
#include "math/dtype.cuh"
#include "math/input.cuh"

#include <cuda_runtime.h>

namespace fm {

namespace {

// Input bytes of one sample per tile (about): 2 16-byte loads per thread and
// sample, and the two buffers (the sample's and the partner's) take about
// 16.5 KiB, so that shared memory leaves room for 8 blocks of 256 threads on
// an SM of an A100 or H100 (registers allow 5 or 6).
constexpr int kTileBytes = 8192;

// n / d for 0 <= n < 2^31: the high half of n * mul, shifted (the
// round-up method: mul = ceil(2^(31 + l) / d) with 2^l >= d, exact for
// dividends below 2^31).
struct FastDiv {
  uint32_t d, mul, shift;
  static FastDiv make(uint32_t d) {
    FastDiv f{d, 0, 0};
    if (d > 1) {
      int l = 0;
      while ((1ull << l) < d) ++l;
      f.mul = (uint32_t)(((1ull << (31 + l)) + d - 1) / d);
      f.shift = (uint32_t)(l - 1);
    }
    return f;
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const {
    return d == 1 ? n : __umulhi(n, mul) >> shift;
  }
};

// n / d for 0 <= n < 2^50 (an image or a batch of tiles that large does not
// fit in any memory) without the 64-bit division routine, whose call would
// cost registers everywhere in the kernel: the double quotient is within 1
// of the true one, then corrected.  inv = 1.0 / d, rounded.
__device__ __forceinline__ int64_t div_big(int64_t n, int64_t d, double inv) {
  int64_t q = (int64_t)((double)n * inv);
  const int64_t r = n - q * d;
  return r < 0 ? q - 1 : r >= d ? q + 1 : q;
}

struct U8Params {
  const uint8_t *x;
  void *out;
  CutDraws draws;
  int64_t n, x_stride, out_stride;
  int64_t hw;        // pixels of an image
  int64_t tiles;     // n * tiles of a sample
  int32_t h, w, c;   // height, width, channels
  int32_t px;        // pixels of a tile (the last of a sample may have fewer)
  int32_t in_vecs;   // 16-byte vectors an input run meets, at most
  int32_t out_vecs;  // output vectors an output run meets, at most
  int32_t buf;       // bytes of one tile buffer in shared memory
  int32_t plane;     // NCHW input: bytes between the channels' runs in a buffer
  bool small;        // tiles and hw below 2^31: 32-bit divisions
  FastDiv by_n, by_w, by_c, by_in_vecs, by_out_vecs;
  double inv_n, inv_w;  // 1 / n, 1 / w: the divisions of larger numbers
  float scale[FASTMIX_MAX_NORM_CHANNELS], shift[FASTMIX_MAX_NORM_CHANNELS];
};

// Where pixels are against a CutMix box.
enum Where { kOut, kIn, kStraddles };

// Pixel pix of an image (pixels are numbered y * w + x): its row y and
// column x.
__device__ __forceinline__ void pixel_yx(const U8Params &p, int64_t pix, int32_t &y, int32_t &x) {
  const int64_t q = p.small ? (int64_t)p.by_w.div((uint32_t)pix) : div_big(pix, p.w, p.inv_w);
  y = (int32_t)q, x = (int32_t)(pix - q * p.w);
}

// Whether pixel pix is in box b (a CutMix box, not empty).
__device__ __forceinline__ bool in_box(const U8Params &p, const Box &b, int64_t pix) {
  int32_t y, x;
  pixel_yx(p, pix, y, x);
  return y >= b.y0 && y < b.y1 && x >= b.x0 && x < b.x1;
}

// Where the pixels [pa, pa + span] (span >= 0) are against box b (a CutMix
// box, not empty).
__device__ Where where(const U8Params &p, const Box &b, int64_t pa, int32_t span) {
  int32_t ya, xa;
  pixel_yx(p, pa, ya, xa);
  if ((int64_t)xa + span < p.w) {  // one image row
    if (ya < b.y0 || ya >= b.y1 || xa + span < b.x0 || xa >= b.x1) return kOut;
    return xa >= b.x0 && xa + span < b.x1 ? kIn : kStraddles;
  }
  int32_t yb, xb;
  pixel_yx(p, pa + span, yb, xb);
  if (yb < b.y0 || ya >= b.y1) return kOut;
  // Rows ya .. yb, the first from column xa on, the last up to column xb:
  // all in the box only when the box takes whole rows; some when a middle
  // row is in the box's rows, or the first or the last meets its columns.
  if (ya >= b.y0 && yb < b.y1 && b.x0 == 0 && b.x1 == p.w) return kIn;
  const int32_t m0 = ya + 1 > b.y0 ? ya + 1 : b.y0, m1 = yb - 1 < b.y1 - 1 ? yb - 1 : b.y1 - 1;
  return m0 <= m1 || (ya >= b.y0 && xa < b.x1) || (yb < b.y1 && xb >= b.x0) ? kStraddles : kOut;
}

// What a tile's store phase does: NaN; the values of one buffer; the blend
// of two; CutMix, the second buffer inside the box.
enum Mode { kNan, kOne, kBlend, kCut };

// The bytes of the 16 at src (16-byte aligned) that are bytes [0, len) of
// their run, the first of the 16 being byte q0, to shared dst (aligned).
__device__ __forceinline__ void copy_edge(uint8_t *dst, const uint8_t *src, int32_t q0,
                                          int32_t len) {
  const int32_t e0 = q0 < 0 ? -q0 : 0, e1 = len - q0 < 16 ? len - q0 : 16;
#pragma unroll 1
  for (int32_t e = e0; e < e1; ++e) dst[e] = __ldg(src + e);
}

// Two floats as the 32-bit word of two 16-bit elements, lo first in memory.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
#if __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, bf16>::value) {
    const __nv_bfloat162 r = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&r);
  }
#endif
  return (uint32_t)T::store(lo) | ((uint32_t)T::store(hi) << 16);
}

// A 16-byte store of four words at p (16-byte aligned, global memory).
// Written out in PTX: the compiler split the vector store of a float4 or
// uint4 built from the computed values into four 32-bit stores here.
__device__ __forceinline__ void store16(void *p, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  asm("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)), "r"(a), "r"(b),
      "r"(c), "r"(d));
}

// Elements q0 .. q0 + V - 1 of a run of len elements at `run` one by one,
// those in the run: the partial vectors at a run's ends and the vectors that
// straddle a CutMix box's edge, few enough that a loop (rather than V copies
// of the code) costs nothing.
template <class T, int V, class F>
__device__ __forceinline__ void emit_each(typename T::raw *run, int32_t q0, int32_t len,
                                          F &&value) {
#pragma unroll 1
  for (int e = 0; e < V; ++e)
    if (q0 + e >= 0 && q0 + e < len) run[q0 + e] = T::store(value(e));
}

// One output vector: elements q0 .. q0 + V - 1 of a run of len elements at
// `run` (run + q0 16-byte aligned), value(e) for element q0 + e.  Wholly in
// the run: one 16-byte store; else the elements in the run one by one.
template <class T, int V, class F>
__device__ __forceinline__ void emit(typename T::raw *run, int32_t q0, int32_t len, F &&value) {
  if (q0 >= 0 && q0 + V <= len) {
    uint32_t w[4];
    FM_UNROLL
    for (int k = 0; k < 4; ++k)
      w[k] = V == 4 ? f32_bits(value(k)) : pack2<T>(value(2 * k), value(2 * k + 1));
    store16(run + q0, w[0], w[1], w[2], w[3]);
  } else {
    emit_each<T, V>(run, q0, len, value);
  }
}

// A tile: sample i's pixels [p0, p0 + np).  Input run r of a sample
// starting at src begins at byte in_start(r) (NHWC: the one run; NCHW: the
// channel's), output run r at element out_start(r).
struct Tile {
  int64_t i, p0;
  int32_t np;
};

template <bool InNhwc>
__device__ __forceinline__ int64_t in_start(const U8Params &p, const Tile &t, int32_t run) {
  return InNhwc ? t.p0 * p.c : run * p.hw + t.p0;
}

// Load phase: the aligned 16-byte vectors that the input runs of the tile
// meet, from sample a into buffer ba and (b non-null) from sample b into bb,
// each at its global offset from alignment.
template <bool InNhwc>
__device__ __forceinline__ void load_tile(const U8Params &p, const Tile &t, const uint8_t *a,
                                          uint8_t *ba, const uint8_t *b, uint8_t *bb) {
  const int32_t len = InNhwc ? t.np * p.c : t.np;
  const int32_t vecs = (InNhwc ? 1 : p.c) * p.in_vecs;
  for (int32_t v = threadIdx.x; v < vecs; v += kThreads) {
    const int32_t run = InNhwc ? 0 : (int32_t)p.by_in_vecs.div((uint32_t)v);
    const int32_t j = v - run * p.in_vecs;
    const int64_t start = in_start<InNhwc>(p, t, run);
    const int32_t to = (InNhwc ? 0 : run * p.plane) + 16 * j;  // the vector's place
    const uint8_t *ga = a + start, *gb = b + start;
    const int32_t qa = 16 * j - (int32_t)((uintptr_t)ga & 15);  // its first byte in the run
    const int32_t qb = 16 * j - (int32_t)((uintptr_t)gb & 15);
    const bool full_a = qa >= 0 && qa + 16 <= len, full_b = b && qb >= 0 && qb + 16 <= len;
    uint4 va, vb;
    if (full_a) va = __ldg(reinterpret_cast<const uint4 *>(ga + qa));
    if (full_b) vb = __ldg(reinterpret_cast<const uint4 *>(gb + qb));
    if (full_a) *reinterpret_cast<uint4 *>(ba + to) = va;
    if (full_b) *reinterpret_cast<uint4 *>(bb + to) = vb;
    if (!full_a && qa < len) copy_edge(ba + to, ga + qa, qa, len);
    if (b && !full_b && qb < len) copy_edge(bb + to, gb + qb, qb, len);
  }
}

// Store phase: the aligned output vectors that the output runs of the tile
// meet, from the buffers.  Element q of an output run is pixel pix(q) of the
// tile, channel chan(q); its byte is at at(q, off) in a buffer whose input
// run (the channel's, NCHW input) has offset `off` from 16-byte alignment.
template <class T, bool InNhwc, bool OutNhwc, Mode M>
__device__ __forceinline__ void store_tile(const U8Params &p, const Tile &t, const Box &box,
                                           float lam, const uint8_t *a, const uint8_t *ba,
                                           const uint8_t *b, const uint8_t *bb) {
  using raw = typename T::raw;
  constexpr int V = kVecBytes / (int)sizeof(raw);
  const int32_t c = p.c;
  const float mu = 1.0f - lam;
  const int32_t len = OutNhwc ? t.np * c : t.np;
  const int32_t vecs = (OutNhwc ? 1 : c) * p.out_vecs;
  // The tile's first output element and input bytes.
  raw *const out_t = static_cast<raw *>(p.out) + t.i * p.out_stride + (OutNhwc ? t.p0 * c : t.p0);
  const uintptr_t ua = (uintptr_t)(a + in_start<InNhwc>(p, t, 0));
  const uintptr_t ub = (uintptr_t)(b + in_start<InNhwc>(p, t, 0));
  const int32_t hw16 = (int32_t)(p.hw & 15);
  for (int32_t v = threadIdx.x; v < vecs; v += kThreads) {
    const int32_t run = OutNhwc ? 0 : (int32_t)p.by_out_vecs.div((uint32_t)v);
    const int32_t j = v - run * p.out_vecs;
    raw *const dst = OutNhwc ? out_t : out_t + run * p.hw;
    const int32_t q0 = V * j - (int32_t)(((uintptr_t)dst / sizeof(raw)) & (V - 1));
    if (q0 >= len) continue;
    auto pix = [&](int e) -> int32_t {
      return OutNhwc ? (int32_t)p.by_c.div((uint32_t)(q0 + e)) : q0 + e;
    };
    auto chan = [&](int e) -> int32_t { return OutNhwc ? q0 + e - pix(e) * c : run; };
    // NCHW input: channel ch's run starts ch * hw bytes after the first.
    auto off = [&](uintptr_t u, int32_t ch) -> int32_t {
      return InNhwc ? (int32_t)(u & 15) : (int32_t)((u + ch * hw16) & 15);
    };
    auto at = [&](int e, uintptr_t u) -> int32_t {
      const int32_t ch = chan(e);
      if (InNhwc) return off(u, 0) + (OutNhwc ? q0 + e : pix(e) * c + ch);
      return ch * p.plane + off(u, ch) + pix(e);
    };
    auto one = [&](const uint8_t *buf, uintptr_t u) {
      emit<T, V>(dst, q0, len, [&](int e) {
        const int32_t ch = chan(e);
        return u8_value(buf[at(e, u)], 0, true, false, lam, mu, p.scale[ch], p.shift[ch]);
      });
    };
    if (M == kNan) {
      emit<T, V>(dst, q0, len, [](int) { return quiet_nan(); });
    } else if (M == kOne) {
      one(ba, ua);
    } else if (M == kBlend) {
      emit<T, V>(dst, q0, len, [&](int e) {
        const int32_t ch = chan(e);
        return u8_value(ba[at(e, ua)], bb[at(e, ub)], false, false, lam, mu, p.scale[ch],
                        p.shift[ch]);
      });
    } else {
      // The vector's pixels in the run, against the box.
      const int32_t qa = q0 < 0 ? 0 : q0, qb = (q0 + V < len ? q0 + V : len) - 1;
      const int32_t pa = OutNhwc ? (int32_t)p.by_c.div((uint32_t)qa) : qa;
      const int32_t pb = OutNhwc ? (int32_t)p.by_c.div((uint32_t)qb) : qb;
      const Where w = where(p, box, t.p0 + pa, pb - pa);
      if (w == kOut) {
        one(ba, ua);
      } else if (w == kIn) {
        one(bb, ub);
      } else {
        emit_each<T, V>(dst, q0, len, [&](int e) {
          const int32_t ch = chan(e);
          const bool in = in_box(p, box, t.p0 + pix(e));
          const uint8_t x = in ? bb[at(e, ub)] : ba[at(e, ua)];
          return u8_value(x, x, true, false, lam, mu, p.scale[ch], p.shift[ch]);
        });
      }
    }
  }
}

template <class T, bool InNhwc, bool OutNhwc>
__global__ void __launch_bounds__(kThreads) u8_tiles_kernel(const U8Params p) {
  extern __shared__ uint4 smem[];
  uint8_t *const buf_a = reinterpret_cast<uint8_t *>(smem), *const buf_b = buf_a + p.buf;
  for (int64_t tt = blockIdx.x; tt < p.tiles; tt += gridDim.x) {
    // The tile: slot s of tile k of each sample, slots in the order 0, n-1, 1, n-2, ...
    Tile t;
    const int64_t k = p.small ? (int64_t)p.by_n.div((uint32_t)tt) : div_big(tt, p.n, p.inv_n);
    const int64_t s = tt - k * p.n;
    t.i = (s & 1) ? p.n - 1 - (s >> 1) : s >> 1;
    t.p0 = k * p.px;
    t.np = (int32_t)(p.hw - t.p0 < p.px ? p.hw - t.p0 : p.px);
    const Box box = Box::at(p.draws.boxes, t.i);
    const int64_t pi = p.draws.partners[t.i];
    const float lam = p.draws.lambdas[t.i];
    const bool blends = box.blends();
    const bool ok = pi >= 0 && pi < p.n && box.valid(p.h, p.w);
    const uint8_t *a = p.x + t.i * p.x_stride, *b = p.x + (ok ? pi : t.i) * p.x_stride;
    Mode mode = kNan;
    if (ok && blends) {
      mode = kBlend;
      if (pi == t.i || lam == 1.0f) b = a;  // lam == 1: lam * a + 0 * b is a for any b
    } else if (ok) {
      const Where w = box.y0 == box.y1 || box.x0 == box.x1 ? kOut : where(p, box, t.p0, t.np - 1);
      mode = w == kStraddles ? kCut : kOne;
      if (w == kIn) a = b;
    }
    // A second buffer for the partner: CutMix straddling the tile, or a blend.
    const bool two = mode == kCut || (mode == kBlend && b != a);
    if (mode != kNan) load_tile<InNhwc>(p, t, a, buf_a, two ? b : nullptr, buf_b);
    __syncthreads();
    const uint8_t *bb = two ? buf_b : buf_a;
    with_constant<kNan, kCut + 1>(mode, [&](auto m) {
      store_tile<T, InNhwc, OutNhwc, (Mode) decltype(m)::value>(p, t, box, lam, a, buf_a, b, bb);
    });
    if (tt + gridDim.x < p.tiles) __syncthreads();  // the buffers are reloaded
  }
}

// The tiles of a sample: the fewest of at most about kTileBytes input bytes,
// of equal size rounded up to 16 pixels (so that in NCHW, where a tile's
// channel runs start p0 apart from the image's, consecutive tiles keep the
// image's alignment), or the whole image when it is smaller.
int64_t tile_pixels(int64_t c, int64_t hw) {
  const int64_t most = (kTileBytes / c) / 16 * 16 > 16 ? (kTileBytes / c) / 16 * 16 : 16;
  const int64_t tiles = (hw + most - 1) / most;
  const int64_t px = ((hw + tiles - 1) / tiles + 15) / 16 * 16;
  return px < hw ? px : hw;
}

template <class T, bool InNhwc, bool OutNhwc>
fastmix_status launch_tiles(const char *func, U8Params p, cudaStream_t stream) {
  constexpr int V = kVecBytes / (int)sizeof(typename T::raw);
  const int64_t in_len = InNhwc ? (int64_t)p.px * p.c : p.px;
  const int64_t out_len = OutNhwc ? (int64_t)p.px * p.c : p.px;
  p.in_vecs = (int32_t)((in_len + 30) / 16);
  p.out_vecs = (int32_t)((out_len + 2 * V - 2) / V);
  p.plane = 16 * p.in_vecs;
  p.buf = (InNhwc ? 1 : p.c) * p.plane;
  p.by_in_vecs = FastDiv::make((uint32_t)p.in_vecs);
  p.by_out_vecs = FastDiv::make((uint32_t)p.out_vecs);
  const int64_t grid = p.tiles < 0x7fffffff ? p.tiles : 0x7fffffff;
  return launch(func, u8_tiles_kernel<T, InNhwc, OutNhwc>, (unsigned)grid, kThreads,
                (size_t)2 * p.buf, stream, p);
}

fastmix_status launch_apply(const char *func, const U8Images &im, const float *lambdas,
                            const int64_t *partners, const int32_t *boxes, cudaStream_t stream) {
  if (im.batch == 0) return FASTMIX_SUCCESS;
  U8Params p{};
  p.x = im.x, p.out = im.out, p.draws = CutDraws{lambdas, partners, boxes};
  p.n = im.batch, p.x_stride = im.x_stride, p.out_stride = im.out_stride;
  p.hw = im.height * im.width, p.h = (int32_t)im.height, p.w = (int32_t)im.width;
  p.c = (int32_t)im.channels;
  p.px = (int32_t)tile_pixels(im.channels, p.hw);
  p.tiles = p.n * ((p.hw + p.px - 1) / p.px);
  p.small = p.tiles < 0x80000000ll && p.hw < 0x80000000ll;
  p.by_n = FastDiv::make((uint32_t)(p.small ? p.n : 1));
  p.by_w = FastDiv::make((uint32_t)(p.small ? p.w : 1));
  p.by_c = FastDiv::make((uint32_t)p.c);
  p.inv_n = 1.0 / (double)p.n, p.inv_w = 1.0 / (double)p.w;
  for (int c = 0; c < FASTMIX_MAX_NORM_CHANNELS; ++c)
    p.scale[c] = im.scale[c], p.shift[c] = im.shift[c];
  const bool in_nhwc = im.in_layout == FASTMIX_LAYOUT_NHWC;
  const bool out_nhwc = im.out_layout == FASTMIX_LAYOUT_NHWC;
  return dispatch_dtype(im.dtype, [&](auto t) {
    using T = decltype(t);
    return bool_switch(in_nhwc, [&](auto in) {
      return bool_switch(out_nhwc, [&](auto o) {
        return launch_tiles<T, decltype(in)::value, decltype(o)::value>(func, p, stream);
      });
    });
  });
}

}  // namespace

fastmix_status cuda_cutmix_apply_u8(const U8ApplyArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(
      check_apply_pointers(a.func, dev, a.images.x, a.images.out, a.lambdas, a.partners, a.boxes));
  return launch_apply(a.func, a.images, a.lambdas, a.partners, a.boxes,
                      static_cast<cudaStream_t>(stream));
}

fastmix_status cuda_cutmix_u8(const U8Args &a, void *stream) {
  const CutmixSampleArgs &d = a.draw;
  return cutmix_draw_then(
      a.func, d, a.images.x, a.images.out, stream, [&](const Device &, cudaStream_t s) {
        return launch_apply(a.func, a.images, d.lambdas, d.partners, d.boxes, s);
      });
}

}  // namespace fm
