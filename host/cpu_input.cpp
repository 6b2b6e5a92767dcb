// The CPU backend of the uint8 input path over (row block, sample) items,
// each output row cut into at most three spans (own pixels, the partner's
// box, own pixels), the draw of host/cpu_cutmix.cpp.  Each value is the
// CUDA kernel's u8_value (kernels/math/input.cuh), rounded once; the rows
// are the output layout's (kernels/math/geometry.cuh, RowShape).
#include "../kernels/math/input.cuh"
#include "cpu_common.hpp"
#include "cpu_simd.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace fm {
namespace {

// Pixels [x0, x1) of image row y of one output row, in float32: from `s`
// (Blend: the blend of `s` and `t`), every channel of the pixel (OutNhwc) or
// channel ch0.
// The layouts are template arguments so that the index arithmetic folds and
// the NCHW -> NCHW loop vectorizes.
template <bool InNhwc, bool OutNhwc, bool Blend>
void u8_span(const U8Images &im, const uint8_t *s, const uint8_t *t, float *o, int64_t y,
             int64_t ch0, int64_t x0, int64_t x1, float lam, float mu) {
  const int64_t c = im.channels, h = im.height, w = im.width;
  for (int64_t x = x0; x < x1; ++x)
    for (int64_t k = 0; k < (OutNhwc ? c : 1); ++k) {
      const int64_t ch = OutNhwc ? k : ch0;
      const int64_t off = InNhwc ? (y * w + x) * c + ch : (ch * h + y) * w + x;
      o[OutNhwc ? x * c + k : x] =
          u8_value(s[off], t[off], !Blend, false, lam, mu, im.scale[ch], im.shift[ch]);
    }
}

template <class T, bool InNhwc, bool OutNhwc>
void apply_layouts(const U8Images &im, const float *lambdas, const int64_t *partners,
                   const int32_t *boxes) {
  using raw = typename T::raw;
  const int64_t n = im.batch, h = im.height, w = im.width;
  const RowShape rs = row_shape(im.out_layout, im.channels, h, w);
  const int64_t rows = rs.rows, len = rs.len;
  const int64_t per = std::max<int64_t>(1, std::min<int64_t>(rows, 16384 / len));
  const int64_t blocks = (rows + per - 1) / per;
  raw *out = static_cast<raw *>(im.out);
  [[maybe_unused]] const int64_t total = n * rows * len;  // OpenMP: worth a team?
#pragma omp parallel if (total > kParallelGrain)
  {
    // 16-bit outputs: a row in float32, then converted as a whole (AVX2/F16C
    // where the CPU has them, the same rounding as T::store).
    std::vector<float> row(std::is_same<T, f32>::value ? 0 : (size_t)len);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n * blocks; ++item) {
      const int64_t i = item % n, r0 = (item / n) * per, r1 = std::min(rows, r0 + per);
      const uint8_t *a = im.x + i * im.x_stride, *b = im.x + partners[i] * im.x_stride;
      const Box box = Box::at(boxes, i);
      const bool cut = !box.blends();
      const float lam = lambdas[i], mu = 1.0f - lam;
      for (int64_t r = r0; r < r1; ++r) {
        raw *dst = out + i * im.out_stride + r * len;
        float *o = row.empty() ? reinterpret_cast<float *>(dst) : row.data();
        const int64_t y = rs.image_row(r), ch0 = OutNhwc ? 0 : r / h;
        if (!cut) {
          u8_span<InNhwc, OutNhwc, true>(im, a, b, o, y, ch0, 0, w, lam, mu);
        } else if (y >= box.y0 && y < box.y1) {  // own, the partner's box, own
          u8_span<InNhwc, OutNhwc, false>(im, a, a, o, y, ch0, 0, box.x0, lam, mu);
          u8_span<InNhwc, OutNhwc, false>(im, b, b, o, y, ch0, box.x0, box.x1, lam, mu);
          u8_span<InNhwc, OutNhwc, false>(im, a, a, o, y, ch0, box.x1, w, lam, mu);
        } else {
          u8_span<InNhwc, OutNhwc, false>(im, a, a, o, y, ch0, 0, w, lam, mu);
        }
        if (!row.empty()) encode_row<T>(row.data(), dst, len);
      }
    }
  }
}

template <class T>
void apply_typed(const U8Images &im, const float *lambdas, const int64_t *partners,
                 const int32_t *boxes) {
  const bool in = im.in_layout == FASTMIX_LAYOUT_NHWC, out = im.out_layout == FASTMIX_LAYOUT_NHWC;
  if (in && out) return apply_layouts<T, true, true>(im, lambdas, partners, boxes);
  if (in) return apply_layouts<T, true, false>(im, lambdas, partners, boxes);
  if (out) return apply_layouts<T, false, true>(im, lambdas, partners, boxes);
  apply_layouts<T, false, false>(im, lambdas, partners, boxes);
}

fastmix_status apply(const char *func, const U8Images &im, const float *lambdas,
                     const int64_t *partners, const int32_t *boxes) {
  return checked_apply(func, im, partners, boxes,
                       [&](auto t) { apply_typed<decltype(t)>(im, lambdas, partners, boxes); });
}

}  // namespace

fastmix_status cpu_cutmix_apply_u8(const U8ApplyArgs &a, void *) {
  return apply(a.func, a.images, a.lambdas, a.partners, a.boxes);
}

fastmix_status cpu_cutmix_u8(const U8Args &a, void *stream) {
  FM_TRY(cpu_cutmix_sample(a.draw, stream));
  return apply(a.func, a.images, a.draw.lambdas, a.draw.partners, a.draw.boxes);
}

}  // namespace fm
