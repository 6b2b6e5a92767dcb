// The uint8 input path's arithmetic and indexing, written once for the CPU
// backend and the CUDA kernel: a mixed pixel from uint8 values, normalized,
// rounded once to the output type.
//
// The output is walked by rows (NCHW: channels * height rows of `width`
// elements; NHWC: height rows of width * channels), the input is read
// wherever its layout puts the pixel.
#pragma once

#include "common.cuh"

#include <fastmix/fastmix.h>

namespace fm {

struct U8Geometry {
  int64_t c, h, w;
  int in_nhwc, out_nhwc;
  int64_t rows() const { return out_nhwc ? h : c * h; }
  int64_t len() const { return out_nhwc ? w * c : w; }
};

// Offset of pixel (ch, y, x) in an input image.
FM_HD int64_t u8_in_offset(const U8Geometry &g, int64_t ch, int64_t y, int64_t x) {
  return g.in_nhwc ? (y * g.w + x) * g.c + ch : (ch * g.h + y) * g.w + x;
}

// The mixed value v of a pixel (see fastmix.h), then (v * scale) + shift.
// a and b: the sample's and the partner's value; `cut`: a CutMix sample,
// `in_box`: the pixel lies in its box.
FM_HD float u8_value(uint8_t a, uint8_t b, bool cut, bool in_box, float lam, float mu, float scale,
                     float shift) {
  const float v = cut ? (float)(in_box ? b : a) : blend(lam, mu, (float)a, (float)b);
  return v * scale + shift;
}

}  // namespace fm
