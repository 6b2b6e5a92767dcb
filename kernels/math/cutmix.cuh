// The mixup-or-CutMix draw of one sample and the CutMix apply rule, written
// once for the CPU backend and the CUDA kernels.
//
// A draw unit u (the sample, the first sample of its pair, or 0 for the whole
// batch) owns the Philox counters with sample index u:
//   block kDecisionBlock:   x: mixed at all?  y: CutMix or mixup?
//                           z, w: the box's row and column (centre or corner)
//   block kMinMaxBlock:     x, y: the box's height and width (min/max form)
//   blocks kCutBetaBase...: the CutMix Beta draw
//   blocks 0...:            the mixup Beta draw, as fastmix_sample's, so
//                           that an all-mixup draw repeats fastmix_sample.
// Integer draws use Lemire's multiply-shift on a 32-bit word (a bias below
// range / 2^32); box sizes and the corrected lambda are computed in double
// from integers, so both backends give the same bits.
#pragma once

#include "geometry.cuh"
#include "sampler.cuh"

#include <fastmix/fastmix.h>
#include <math.h>

namespace fm {

constexpr uint32_t kCutBetaBase = 0x20000000u;
constexpr uint32_t kDecisionBlock = 0x40000000u;
constexpr uint32_t kMinMaxBlock = 0x40000001u;

// Everything about the draw that does not depend on the sample; made on the
// host from a validated fastmix_mix_config.
struct MixParams {
  BetaParams mix, cut;  // valid when use_mix / use_cut (and not minmax)
  int use_mix, use_cut, minmax, correct, mode;
  float prob, switch_prob;
  int32_t h, w;
  int32_t ch_lo, ch_hi, cw_lo, cw_hi;  // minmax: box sides in [lo, hi)
};

inline MixParams make_mix_params(const fastmix_mix_config &c, int64_t h, int64_t w) {
  MixParams p{};
  p.minmax = !(c.cutmix_min == 0.0 && c.cutmix_max == 0.0);
  p.use_mix = c.mixup_alpha > 0.0f;
  p.use_cut = c.cutmix_alpha > 0.0f || p.minmax;
  if (p.use_mix) p.mix = make_beta_params(c.mixup_alpha, c.fold);
  if (p.use_cut && !p.minmax) p.cut = make_beta_params(c.cutmix_alpha, c.fold);
  p.correct = c.correct_lam != 0 || p.minmax;
  p.mode = (int)c.mode;
  p.prob = c.prob;
  p.switch_prob = c.switch_prob;
  p.h = (int32_t)h;
  p.w = (int32_t)w;
  if (p.minmax) {
    p.ch_lo = (int32_t)((double)h * c.cutmix_min);
    p.ch_hi = (int32_t)((double)h * c.cutmix_max);
    p.cw_lo = (int32_t)((double)w * c.cutmix_min);
    p.cw_hi = (int32_t)((double)w * c.cutmix_max);
  }
  return p;
}

// An integer uniform in [lo, hi), or lo when the range is empty.
FM_HD int32_t uniform_int(uint32_t word, int32_t lo, int32_t hi) {
  if (hi <= lo) return lo;
  const uint64_t range = (uint64_t)((int64_t)hi - lo);
  return (int32_t)((int64_t)lo + (int64_t)(((uint64_t)word * range) >> 32));
}

FM_HD int32_t clamp_int(int64_t v, int32_t hi) { return (int32_t)(v < 0 ? 0 : v > hi ? hi : v); }

struct MixDraw {
  float lam;
  int64_t partner;
  Box box;  // (-1, -1, -1, -1) for a mixup sample
};

// The draw unit of sample i in a batch of n.
FM_HD uint32_t draw_unit(int mode, uint64_t i, uint64_t n) {
  if (mode == FASTMIX_MIX_BATCH) return 0u;
  if (mode == FASTMIX_MIX_PAIR) return (uint32_t)(i < n - 1 - i ? i : n - 1 - i);
  return (uint32_t)i;
}

FM_HD MixDraw mix_draw(const MixParams &p, const Pairing &pr, uint64_t seed, uint64_t offset,
                       uint64_t i, uint64_t n) {
  MixDraw d;
  const uint32_t u = draw_unit(p.mode, i, n);
  const uint4 w = philox(seed, kDecisionBlock, u, offset);
  if (!(uniform01(w.x) < p.prob)) {  // not mixed: itself, an empty cut
    d.lam = 1.0f;
    d.partner = (int64_t)i;
    d.box = Box{0, 0, 0, 0};
    return d;
  }
  d.partner = partner(pr, i);
  const bool cut = p.use_cut && (!p.use_mix || uniform01(w.y) < p.switch_prob);
  if (!cut) {
    d.lam = beta_lambda(p.mix, seed, offset, u);
    d.box = Box{-1, -1, -1, -1};
    return d;
  }
  int32_t y0, x0, y1, x1;
  if (p.minmax) {
    const uint4 s = philox(seed, kMinMaxBlock, u, offset);
    const int32_t ch = uniform_int(s.x, p.ch_lo, p.ch_hi);
    const int32_t cw = uniform_int(s.y, p.cw_lo, p.cw_hi);
    y0 = uniform_int(w.z, 0, p.h - ch);
    x0 = uniform_int(w.w, 0, p.w - cw);
    y1 = y0 + ch;
    x1 = x0 + cw;
    d.lam = 0.0f;  // corrected below
  } else {
    d.lam = beta_lambda(p.cut, seed, offset, u, kCutBetaBase);
    const double ratio = sqrt(1.0 - (double)d.lam);  // IEEE: the same on both sides
    const int64_t ch = (int64_t)((double)p.h * ratio), cw = (int64_t)((double)p.w * ratio);
    const int64_t cy = uniform_int(w.z, 0, p.h), cx = uniform_int(w.w, 0, p.w);
    y0 = clamp_int(cy - ch / 2, p.h);
    y1 = clamp_int(cy + ch / 2, p.h);
    x0 = clamp_int(cx - cw / 2, p.w);
    x1 = clamp_int(cx + cw / 2, p.w);
  }
  if (p.correct) {
    const double area = (double)(y1 - y0) * (double)(x1 - x0);
    d.lam = (float)(1.0 - area / ((double)p.h * (double)p.w));
  }
  d.box = Box{y0, x0, y1, x1};
  return d;
}

}  // namespace fm
