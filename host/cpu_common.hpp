// What the CPU backend's files share: the checks only the CPU backend makes,
// on draws and labels in host memory that the entry points cannot read (on
// CUDA they live on the device, where a bad value makes its sample or row
// NaN instead), each before any output is written so that a refused call
// writes nothing; and a draw's seed read from, and advanced in, host memory.
#pragma once

#include "../kernels/math/cutmix.cuh"
#include "backend.hpp"

#include <stdint.h>

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
    const int32_t *b = boxes + 4 * i;
    FM_CHECK(box_valid(b, height, width),
             "%s: boxes[%lld] = (%d, %d, %d, %d) is neither (-1, -1, -1, -1) nor a box with 0 <= "
             "y0 <= y1 <= height (%lld) and 0 <= x0 <= x1 <= width (%lld)",
             func, (long long)i, b[0], b[1], b[2], b[3], (long long)height, (long long)width);
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

}  // namespace fm
