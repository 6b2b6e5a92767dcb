// CUDA kernel of the uint8 input path: uint8 images in, mixed (mixup or
// CutMix, the draw of kernels/cutmix.cu) and normalized float images out,
// one pass.  The arithmetic is kernels/math/input.cuh, shared with the CPU.
//
// Traffic: 1 byte read per output element (the partner's byte too for a
// mixup sample or inside a box, which is another warp's own byte in flight)
// and one element written.  One warp per (output rows, sample) item, sample
// fastest, each item about 512 output elements (a few short rows, or one);
// lanes walk a row's elements 32 apart, the (channel, column) of an NHWC
// output element advanced by additions.
#include "cuda_util.cuh"
#include "math/dtype.cuh"
#include "math/input.cuh"

#include <cuda_runtime.h>

namespace fm {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

struct U8Params {
  U8Geometry g;
  int64_t n, x_stride, out_stride;
  int64_t per;  // output rows per work item (about 512 elements)
  float scale[FASTMIX_MAX_NORM_CHANNELS], shift[FASTMIX_MAX_NORM_CHANNELS];
};

// OutNhwc: the output's layout, a template argument (it decides what a row
// is); the input's layout only changes where a lane's first byte is and the
// step to its next.
template <class T, bool OutNhwc>
__global__ void __launch_bounds__(kThreads)
    u8_rows_kernel(const uint8_t *__restrict__ x, typename T::raw *__restrict__ out, U8Params p,
                   const float *lambdas, const int64_t *partners, const int32_t *boxes) {
  using raw = typename T::raw;
  const U8Geometry &g = p.g;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int64_t warps = (int64_t)gridDim.x * kWarps;
  const int64_t rows = OutNhwc ? g.h : g.c * g.h, len = OutNhwc ? g.w * g.c : g.w;
  const int64_t blocks = (rows + p.per - 1) / p.per, hw = g.h * g.w;
  const int64_t items = p.n * blocks, di = warps % p.n, dk = warps / p.n;
  // An NHWC output lane's step of 32 elements: dx pixels and dc channels.
  const int dx = OutNhwc ? 32 / (int)g.c : 32, dc = OutNhwc ? 32 % (int)g.c : 0;
  int64_t i = warp % p.n, k = warp / p.n;
  for (int64_t item = warp; item < items; item += warps) {
    const int32_t y0 = boxes[4 * i], x0 = boxes[4 * i + 1], y1 = boxes[4 * i + 2],
                  x1 = boxes[4 * i + 3];
    const int64_t pi = partners[i];
    // box_valid of math/cutmix.cuh, spelled out on scalars: its array
    // argument put the NHWC variant's box on the stack (sm_90, 12 LDL/STL).
    const bool blends = y0 == -1 && x0 == -1 && y1 == -1 && x1 == -1;
    const bool ok =
        pi >= 0 && pi < p.n &&
        (blends || (y0 >= 0 && y0 <= y1 && y1 <= g.h && x0 >= 0 && x0 <= x1 && x1 <= g.w));
    const float lam = lambdas[i], mu = 1.0f - lam;
    const uint8_t *a = x + i * p.x_stride, *b = x + (ok ? pi : i) * p.x_stride;
    const int64_t r0 = k * p.per, r1 = r0 + p.per < rows ? r0 + p.per : rows;
    // (image row, channel) of the rows, advanced by additions
    int64_t y = OutNhwc ? r0 : r0 % g.h, ch0 = OutNhwc ? 0 : r0 / g.h;
    for (int64_t r = r0; r < r1; ++r) {
      raw *o = out + i * p.out_stride + r * len;
      const bool row_in = !blends && y >= y0 && y < y1;
      if (!ok) {
        for (int64_t e = lane; e < len; e += 32) o[e] = T::store(quiet_nan());
      } else if (!OutNhwc) {
        // A channel's row: pixel e of image row y, one scale and shift.
        const float sc = p.scale[ch0], sh = p.shift[ch0];
        const int64_t step = g.in_nhwc ? 32 * g.c : 32;
        int64_t off = g.in_nhwc ? (y * g.w + lane) * g.c + ch0 : (ch0 * g.h + y) * g.w + lane;
        if (blends) {
          for (int64_t e = lane; e < len; e += 32, off += step)
            o[e] =
                T::store(u8_value(__ldg(a + off), __ldg(b + off), false, false, lam, mu, sc, sh));
        } else {
          for (int64_t e = lane; e < len; e += 32, off += step) {
            const bool in_box = row_in && e >= x0 && e < x1;
            o[e] = T::store((float)__ldg((in_box ? b : a) + off) * sc + sh);
          }
        }
      } else {
        // A pixel row of every channel: element e is (pixel xx, channel ch).
        int xx = lane / (int)g.c, ch = lane % (int)g.c;
        const int64_t yw = y * g.w;
        for (int64_t e = lane; e < len; e += 32) {
          const int64_t off = g.in_nhwc ? yw * g.c + e : ch * hw + yw + xx;
          const bool in_box = row_in && xx >= x0 && xx < x1;
          o[e] = T::store(u8_value(__ldg(a + off), __ldg(b + off), !blends, in_box, lam, mu,
                                   p.scale[ch], p.shift[ch]));
          xx += dx, ch += dc;
          if (ch >= (int)g.c) ch -= (int)g.c, ++xx;
        }
      }
      if (!OutNhwc && y + 1 == g.h)
        y = 0, ++ch0;
      else
        ++y;
    }
    i += di, k += dk;
    if (i >= p.n) i -= p.n, ++k;
  }
}

fastmix_status launch_apply(const char *func, const Device &dev, const U8Images &im,
                            const float *lambdas, const int64_t *partners, const int32_t *boxes,
                            cudaStream_t stream) {
  if (im.batch == 0) return FASTMIX_SUCCESS;
  U8Params p{};
  p.g = U8Geometry{im.channels, im.height, im.width, im.in_layout == FASTMIX_LAYOUT_NHWC,
                   im.out_layout == FASTMIX_LAYOUT_NHWC};
  p.n = im.batch, p.x_stride = im.x_stride, p.out_stride = im.out_stride;
  const int64_t len = p.g.len(), rows = p.g.rows();
  p.per = len >= 512 ? 1 : (512 / len < rows ? 512 / len : rows);
  for (int c = 0; c < FASTMIX_MAX_NORM_CHANNELS; ++c)
    p.scale[c] = im.scale[c], p.shift[c] = im.shift[c];
  return dispatch_dtype(im.dtype, [&](auto t) {
    using T = decltype(t);
    auto kernel = p.g.out_nhwc ? u8_rows_kernel<T, true> : u8_rows_kernel<T, false>;
    int per_sm = 0;
    FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), kThreads, 0, &per_sm));
    const int64_t items = im.batch * ((p.g.rows() + p.per - 1) / p.per);
    const int64_t blocks = (items + kWarps - 1) / kWarps;
    const int64_t wave = (int64_t)dev.sms * per_sm;
    return launch(func, kernel, (unsigned)(blocks < wave ? blocks : wave), kThreads, 0, stream,
                  im.x, static_cast<typename T::raw *>(im.out), p, lambdas, partners, boxes);
  });
}

fastmix_status check_pointers(const char *func, const Device &dev, const U8Images &im,
                              const float *lambdas, const int64_t *partners, const int32_t *boxes) {
  FM_TRY(check_pointer(func, "x", im.x, dev));
  FM_TRY(check_pointer(func, "out", im.out, dev));
  FM_TRY(check_pointer(func, "lambdas", lambdas, dev));
  FM_TRY(check_pointer(func, "partners", partners, dev));
  return check_pointer(func, "boxes", boxes, dev);
}

}  // namespace

fastmix_status cuda_cutmix_apply_u8(const U8ApplyArgs &a, void *stream) {
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  FM_TRY(check_pointers(a.func, dev, a.images, a.lambdas, a.partners, a.boxes));
  return launch_apply(a.func, dev, a.images, a.lambdas, a.partners, a.boxes,
                      static_cast<cudaStream_t>(stream));
}

fastmix_status cuda_cutmix_u8(const U8Args &a, void *stream) {
  const CutmixSampleArgs &d = a.draw;
  Device dev;
  FM_TRY(current_device(a.func, &dev));
  if (d.seed.kind == Seed::kMemory) FM_TRY(check_pointer(a.func, "seed_offset", d.seed.ptr, dev));
  FM_TRY(check_pointers(a.func, dev, a.images, d.lambdas, d.partners, d.boxes));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  FM_TRY(launch_cutmix_draw(d, dev, s));
  FM_TRY(launch_apply(a.func, dev, a.images, d.lambdas, d.partners, d.boxes, s));
  return advance_offset(a.func, d.seed, s);
}

}  // namespace fm
