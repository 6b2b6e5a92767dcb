// What the CPU backend's files share: the checks only the CPU backend makes,
// on draws and labels in host memory that the entry points cannot read (on
// CUDA they live on the device, where a bad value makes its sample or row
// NaN instead), each before any output is written so that a refused call
// writes nothing; a draw's seed read from, and advanced in, host memory; a
// CutMix apply's checks and dtype dispatch; and the in-place strips of the
// blend.
#pragma once

#include "../kernels/math/cutmix.cuh"
#include "../kernels/math/dtype.cuh"
#include "backend.hpp"
#include "cpu_simd.hpp"

#include <stdint.h>

#include <algorithm>
#include <vector>

namespace fm {

// Host-side partners (CPU backend): each in [0, batch), checked before any
// output is written.
inline fastmix_status check_partners_host(const char *func, const int64_t *partners,
                                          int64_t batch) {
  for (int64_t i = 0; i < batch; ++i)
    FM_CHECK(partners[i] >= 0 && partners[i] < batch,
             "%s: partners[%lld] = %lld is outside [0, batch = %lld)", func, (long long)i,
             (long long)partners[i], (long long)batch);
  return FASTMIX_SUCCESS;
}

// Host-side CutMix draws (CPU backend): partners in [0, batch), boxes each
// (-1, -1, -1, -1) or inside a height x width image, checked before any
// output is written.
inline fastmix_status check_draws_host(const char *func, const int64_t *partners,
                                       const int32_t *boxes, int64_t batch, int64_t height,
                                       int64_t width) {
  FM_TRY(check_partners_host(func, partners, batch));
  for (int64_t i = 0; i < batch; ++i) {
    const Box b = Box::at(boxes, i);
    FM_CHECK(b.valid(height, width),
             "%s: boxes[%lld] = (%d, %d, %d, %d) is neither (-1, -1, -1, -1) nor a box with 0 <= "
             "y0 <= y1 <= height (%lld) and 0 <= x0 <= x1 <= width (%lld)",
             func, (long long)i, b.y0, b.x0, b.y1, b.x1, (long long)height, (long long)width);
  }
  return FASTMIX_SUCCESS;
}

// Host-side labels (CPU backend): each ignore_index (when `ignore` is set)
// or in [0, classes), checked before any output is written.
inline fastmix_status check_labels_host(const char *func, const int64_t *labels, int64_t batch,
                                        int64_t classes, bool ignore, int64_t ignore_index) {
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t y = labels[i];
    if ((ignore && y == ignore_index) || (y >= 0 && y < classes)) continue;
    return fail(FASTMIX_ERROR_LABEL_OUT_OF_RANGE,
                "%s: labels[%lld] = %lld is outside [0, classes = %lld)%s", func, (long long)i,
                (long long)y, (long long)classes, ignore ? " and is not ignore_index" : "");
  }
  return FASTMIX_SUCCESS;
}

// A draw's seed and offset: as given, or (Seed::kMemory) read from host
// memory when the draw runs.
struct SeedValue {
  uint64_t seed, offset;
};
inline SeedValue read_seed(const Seed &s) {
  return s.kind == Seed::kMemory ? SeedValue{s.ptr[0], s.ptr[1]} : SeedValue{s.seed, s.offset};
}

// After the draw that used `offset`: a seed in memory advances its offset
// (unsigned: wraps mod 2^64).
inline void advance_seed(const Seed &s, uint64_t offset) {
  if (s.kind == Seed::kMemory) s.ptr[1] = offset + s.increment;
}

// A CutMix apply (images of any kind): the draws checked, then
// f(T{}) with T the images' storage type (nothing for an empty batch).
template <class Images, class F>
fastmix_status checked_apply(const char *func, const Images &im, const int64_t *partners,
                             const int32_t *boxes, const F &f) {
  FM_TRY(check_draws_host(func, partners, boxes, im.batch, im.height, im.width));
  if (im.batch == 0) return FASTMIX_SUCCESS;
  dispatch_dtype(im.dtype, f);
  return FASTMIX_SUCCESS;
}

// In place over `batch` samples of `rows` rows of `len` elements each, x[i *
// stride] the first: a segment of one row position (at most about 256 KiB
// for the whole batch) is copied aside for every sample before any sample's
// segment is written, so that every partner is read before it changes; the
// partners may be any map into [0, batch).  write(i, own, theirs, dst, r,
// s0, s1) then writes elements [s0, s1) of row r of sample i at dst from
// the copies of its own segment and its partner's.
template <class raw, class Write>
void in_place_segments(raw *x, int64_t batch, int64_t stride, int64_t rows, int64_t len,
                       const int64_t *partners, const Write &write) {
  const int64_t width =
      std::max<int64_t>(1, std::min<int64_t>(len, (256 << 10) / (batch * (int64_t)sizeof(raw))));
  const int64_t segs = (len + width - 1) / width;
  [[maybe_unused]] const int64_t total = batch * rows * len;  // OpenMP: worth a team?
#pragma omp parallel if (total > kParallelGrain)
  {
    std::vector<raw> copy((size_t)(batch * width));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < rows * segs; ++item) {
      const int64_t r = item / segs, s0 = (item % segs) * width;
      const int64_t s1 = std::min(len, s0 + width), at = r * len + s0;
      for (int64_t i = 0; i < batch; ++i)
        std::copy(x + i * stride + at, x + i * stride + at + (s1 - s0), copy.data() + i * width);
      for (int64_t i = 0; i < batch; ++i)
        write(i, copy.data() + i * width, copy.data() + partners[i] * width, x + i * stride + at, r,
              s0, s1);
    }
  }
}

}  // namespace fm
