// The CPU backend of the uint8 input path: the shared arithmetic of
// kernels/math/input.cuh over (row block, sample) items, the draw of
// host/cpu_cutmix.cpp.
#include "../kernels/math/dtype.cuh"
#include "../kernels/math/input.cuh"
#include "validate.hpp"

#include <algorithm>

namespace fm {
namespace {

constexpr int64_t kParallelGrain = 1 << 15;

template <class T>
void apply_typed(const U8Images &im, const float *lambdas, const int64_t *partners,
                 const int32_t *boxes) {
  using raw = typename T::raw;
  const U8Geometry g{im.channels, im.height, im.width, im.in_layout == FASTMIX_LAYOUT_NHWC,
                     im.out_layout == FASTMIX_LAYOUT_NHWC};
  const int64_t n = im.batch, rows = g.rows(), len = g.len();
  const int64_t per = std::max<int64_t>(1, std::min<int64_t>(rows, 16384 / len));
  const int64_t blocks = (rows + per - 1) / per;
  raw *out = static_cast<raw *>(im.out);
  [[maybe_unused]] const int64_t total = n * rows * len;  // OpenMP: worth a team?
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
  for (int64_t item = 0; item < n * blocks; ++item) {
    const int64_t i = item % n, r0 = (item / n) * per, r1 = std::min(rows, r0 + per);
    const uint8_t *a = im.x + i * im.x_stride, *b = im.x + partners[i] * im.x_stride;
    const int32_t *box = boxes + 4 * i;
    const bool cut = !(box[0] == -1 && box[1] == -1 && box[2] == -1 && box[3] == -1);
    const float lam = lambdas[i], mu = 1.0f - lam;
    for (int64_t r = r0; r < r1; ++r) {
      raw *o = out + i * im.out_stride + r * len;
      const int64_t y = g.out_nhwc ? r : r % g.h, ch0 = g.out_nhwc ? 0 : r / g.h;
      const bool row_in = y >= box[0] && y < box[2];
      for (int64_t x = 0; x < g.w; ++x) {
        const bool in_box = row_in && x >= box[1] && x < box[3];
        for (int64_t k = 0; k < (g.out_nhwc ? g.c : 1); ++k) {
          const int64_t ch = g.out_nhwc ? k : ch0, off = u8_in_offset(g, ch, y, x);
          o[g.out_nhwc ? x * g.c + k : x] =
              T::store(u8_value(a[off], b[off], cut, in_box, lam, mu, im.scale[ch], im.shift[ch]));
        }
      }
    }
  }
}

fastmix_status apply(const char *func, const U8Images &im, const float *lambdas,
                     const int64_t *partners, const int32_t *boxes) {
  FM_TRY(check_partners_host(func, partners, im.batch));
  FM_TRY(check_boxes_host(func, boxes, im.batch, im.height, im.width));
  if (im.batch == 0) return FASTMIX_SUCCESS;
  dispatch_dtype(im.dtype, [&](auto t) { apply_typed<decltype(t)>(im, lambdas, partners, boxes); });
  return FASTMIX_SUCCESS;
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
