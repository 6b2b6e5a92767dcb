// The geometry every image op shares, written once for the CPU backend and
// the CUDA kernels: a CutMix box, a sample's images seen as rows, the mark
// of a sample whose partner (or box) is out of range, and a CutMix apply's
// draws as the kernels read them.
#pragma once

#include "common.cuh"

#include <fastmix/fastmix.h>
#include <stdint.h>

namespace fm {

// A partner that is out of range, or whose box is: on CUDA the sample's
// output becomes NaN (fastmix.h).  Negative, so that `partner >= 0` tests
// for a good one, and far from any byte offset a kernel keeps in its place.
constexpr int32_t kBadPartner = INT32_MIN;

// A box as fastmix_cutmix_apply takes it, rows [y0, y1) and columns
// [x0, x1): (-1, -1, -1, -1) blends, a box inside the image cuts (an empty
// one copies the sample).  A value, so that a kernel keeps it in registers.
struct Box {
  int32_t y0, x0, y1, x1;
  // Box i of an array of (y0, x0, y1, x1) quadruples.
  static FM_HD Box at(const int32_t *boxes, int64_t i) {
    return Box{boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]};
  }
  FM_HD void store(int32_t *boxes, int64_t i) const {
    boxes[4 * i] = y0, boxes[4 * i + 1] = x0, boxes[4 * i + 2] = y1, boxes[4 * i + 3] = x1;
  }
  FM_HD bool blends() const { return y0 == -1 && x0 == -1 && y1 == -1 && x1 == -1; }
  FM_HD bool valid(int64_t h, int64_t w) const {
    return blends() || (y0 >= 0 && y0 <= y1 && y1 <= h && x0 >= 0 && x0 <= x1 && x1 <= w);
  }
};

// A sample's images seen as rows: NCHW has channels * height rows of `width`
// elements, row r at image row r % height; NHWC has `height` rows of
// width * channels elements.  A box's columns [x0, x1) are the row elements
// [x0 * k, x1 * k) with k = 1 (NCHW) or channels (NHWC); h and w are the
// image's height and width.
struct RowShape {
  int64_t rows, len, k, h, w;
  FM_HD int64_t image_row(int64_t r) const { return k == 1 ? r % h : r; }
};

inline RowShape row_shape(fastmix_layout layout, int64_t c, int64_t h, int64_t w) {
  return layout == FASTMIX_LAYOUT_NHWC ? RowShape{h, w * c, c, h, w} : RowShape{c * h, w, 1, h, w};
}

// A CutMix sample as the apply kernels use it (24 bytes): lambda, the
// partner (kBadPartner when it or the box is out of range: the output
// becomes NaN) and the box, which blends where y0 < 0 (the box (-1, -1, -1,
// -1), once validated).
struct CutSample {
  float lam;
  int32_t partner;
  Box box;
  FM_HD bool blends() const { return box.y0 < 0; }
};

// The draws of a CutMix apply, read from arrays; sample i of n in images of
// h x w pixels.
struct CutDraws {
  const float *lambdas;
  const int64_t *partners;
  const int32_t *boxes;
  FM_HD CutSample get(int64_t i, int64_t n, int64_t h, int64_t w) const {
    CutSample s;
    s.box = Box::at(boxes, i);
    const int64_t p = partners[i];
    s.lam = lambdas[i];
    s.partner = p >= 0 && p < n && s.box.valid(h, w) ? (int32_t)p : kBadPartner;
    return s;
  }
};

}  // namespace fm
