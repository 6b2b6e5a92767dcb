// The uint8 input path's arithmetic: a mixed pixel from uint8 values,
// normalized (the caller rounds it once to the output type).  The CUDA
// kernel (kernels/input.cu) and the CPU backend's row loops
// (host/cpu_input.cpp) both call it.
#pragma once

#include "common.cuh"
#include "geometry.cuh"

#include <fastmix/fastmix.h>

namespace fm {

// The mixed value v of a pixel (see fastmix.h), then (v * scale) + shift.
// a and b: the sample's and the partner's value; `cut`: a CutMix sample,
// `in_box`: the pixel lies in its box.
FM_HD float u8_value(uint8_t a, uint8_t b, bool cut, bool in_box, float lam, float mu, float scale,
                     float shift) {
  const float v = cut ? (float)(in_box ? b : a) : blend(lam, mu, (float)a, (float)b);
  return v * scale + shift;
}

}  // namespace fm
