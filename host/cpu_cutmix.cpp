// The CPU backend of CutMix: the shared draw (kernels/math/cutmix.cuh) and
// the apply, row by row.  An image is a list of rows (kernels/math/geometry.cuh,
// RowShape), so a CutMix sample's row is at most three spans: its own
// elements, the partner's inside the box, its own again.
#include "../kernels/math/cutmix.cuh"
#include "cpu_blend.hpp"
#include "cpu_common.hpp"

#include <algorithm>
#include <vector>

namespace fm {
namespace {

// Elements [s0, s1) of one row of sample i: a, b and o point at element s0
// of the sample's, the partner's and the output row.  `hr` is the image row.
// With `copy_own`, elements that keep the sample's own value are copied too
// (out of place); in place they are left alone.
template <class T>
void apply_span(const typename T::raw *a, const typename T::raw *b, typename T::raw *o, int64_t s0,
                int64_t s1, int64_t hr, int64_t k, float lam, const Box &box, bool copy_own) {
  if (box.blends()) {
    blend_span<T>(a, b, o, s1 - s0, lam, 1.0f - lam);
    return;
  }
  int64_t lo = s0, hi = s0;
  if (hr >= box.y0 && hr < box.y1) {
    lo = std::clamp<int64_t>(box.x0 * k, s0, s1);
    hi = std::clamp<int64_t>(box.x1 * k, lo, s1);
  }
  if (copy_own) {
    std::copy(a, a + (lo - s0), o);
    std::copy(a + (hi - s0), a + (s1 - s0), o + (hi - s0));
  }
  std::copy(b + (lo - s0), b + (hi - s0), o + (lo - s0));
}

template <class T>
void apply_typed(const CutImages &im, const float *lambdas, const int64_t *partners,
                 const int32_t *boxes) {
  using raw = typename T::raw;
  const RowShape rs = row_shape(im.layout, im.channels, im.height, im.width);
  const int64_t n = im.batch;
  [[maybe_unused]] const int64_t total = n * rs.rows * rs.len;  // OpenMP: worth a team?
  if (im.x != im.out) {
    // (row block, sample) items, sample fastest: the partner's rows are read
    // again as its own while still in cache.  A block is about 16K elements,
    // so that small images do not pay a work item per row.
    const raw *x = static_cast<const raw *>(im.x);
    raw *out = static_cast<raw *>(im.out);
    const int64_t per = std::max<int64_t>(1, std::min<int64_t>(rs.rows, 16384 / rs.len));
    const int64_t blocks = (rs.rows + per - 1) / per;
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
    for (int64_t item = 0; item < n * blocks; ++item) {
      const int64_t i = item % n, r0 = (item / n) * per, r1 = std::min(rs.rows, r0 + per);
      const raw *a = x + i * im.stride, *b = x + partners[i] * im.stride;
      raw *o = out + i * im.stride;
      const Box box = Box::at(boxes, i);
      if (box.blends()) {  // the rows are one span
        blend_span<T>(a + r0 * rs.len, b + r0 * rs.len, o + r0 * rs.len, (r1 - r0) * rs.len,
                      lambdas[i], 1.0f - lambdas[i]);
        continue;
      }
      for (int64_t r = r0; r < r1; ++r)
        apply_span<T>(a + r * rs.len, b + r * rs.len, o + r * rs.len, 0, rs.len, rs.image_row(r),
                      rs.k, lambdas[i], box, true);
    }
    return;
  }
  // In place: a segment of one row position is copied aside for the whole
  // batch before any sample's segment is written (as in_place_segments does
  // for the blend; through its callback this loop measured 7-8% slower in
  // bfloat16), then a blend writes its whole segment, a cut only what its
  // box takes.
  raw *x = static_cast<raw *>(im.out);
  const int64_t width =
      std::max<int64_t>(1, std::min<int64_t>(rs.len, (256 << 10) / (n * (int64_t)sizeof(raw))));
  const int64_t segs = (rs.len + width - 1) / width;
#pragma omp parallel if (total > kParallelGrain)
  {
    std::vector<raw> copy((size_t)(n * width));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < rs.rows * segs; ++item) {
      const int64_t r = item / segs, s0 = (item % segs) * width;
      const int64_t s1 = std::min(rs.len, s0 + width), at = r * rs.len + s0;
      for (int64_t i = 0; i < n; ++i)
        std::copy(x + i * im.stride + at, x + i * im.stride + at + (s1 - s0),
                  copy.data() + i * width);
      for (int64_t i = 0; i < n; ++i)
        apply_span<T>(copy.data() + i * width, copy.data() + partners[i] * width,
                      x + i * im.stride + at, s0, s1, rs.image_row(r), rs.k, lambdas[i],
                      Box::at(boxes, i), false);
    }
  }
}

fastmix_status apply(const char *func, const CutImages &im, const float *lambdas,
                     const int64_t *partners, const int32_t *boxes) {
  return checked_apply(func, im, partners, boxes,
                       [&](auto t) { apply_typed<decltype(t)>(im, lambdas, partners, boxes); });
}

// The draw; a seed in memory is host memory here, read before the draw and
// advanced after it.
void draw(const CutmixSampleArgs &a) {
  const SeedValue sv = read_seed(a.seed);
  const uint64_t seed = sv.seed, offset = sv.offset;
  const MixParams mp = make_mix_params(a.config, a.height, a.width);
  const Pairing pr = make_pairing(a.config.pairing, seed, offset, (uint64_t)a.batch);
#pragma omp parallel for schedule(static) if (a.batch > 256)
  for (int64_t i = 0; i < a.batch; ++i) {
    const MixDraw d = mix_draw(mp, pr, seed, offset, (uint64_t)i, (uint64_t)a.batch);
    a.lambdas[i] = d.lam;
    a.partners[i] = d.partner;
    d.box.store(a.boxes, i);
  }
  advance_seed(a.seed, offset);
}

}  // namespace

fastmix_status cpu_cutmix_sample(const CutmixSampleArgs &a, void *) {
  draw(a);
  return FASTMIX_SUCCESS;
}

fastmix_status cpu_cutmix_apply(const CutmixApplyArgs &a, void *) {
  return apply(a.func, a.images, a.lambdas, a.partners, a.boxes);
}

fastmix_status cpu_cutmix(const CutmixArgs &a, void *) {
  draw(a.draw);
  return apply(a.func, a.images, a.draw.lambdas, a.draw.partners, a.draw.boxes);
}

}  // namespace fm
