// The per-row math of the mixup cross-entropy and of the soft targets, shared
// by the CPU backend (host/cpu_cross_entropy.cpp) and the CUDA kernels
// (kernels/cross_entropy.cu).  See docs/loss.md for the derivation.  How a
// backend gets m, logs and mean of a row (vectorised loops on the CPU, an
// online accumulator on the GPU) is its own business: this file starts from
// those statistics.
//
// A row i has the logits z[0..C), the labels y1 = labels[i], y2 =
// labels[partners[i]], the weights w1, w2 (0 for an ignored label, and w2 = 0
// without mixup) and, from the logits, m = max(z), logs = log(sum exp(z - m))
// (so lse = m + logs) and mean = sum(z) / C.  Then
//   CE_eps(y) = (1 - eps) * (lse - z[y]) + eps * (lse - mean)
//   loss      = w1 * CE_eps(y1) + w2 * CE_eps(y2)
//   dloss/dz  = (w1 + w2) * softmax(z) - w1 * t(y1) - w2 * t(y2),
//   t(y)_c    = (1 - eps) * [c == y] + eps / C.
// A term whose weight is 0 is skipped (it contributes exactly 0, also when its
// logit is -inf), and with eps == 0 the mean term is skipped.
#pragma once

#include "common.cuh"

#include <fastmix/fastmix.h>

namespace fm {

// The two labels of row i and their shares, read once for the loss and the
// soft targets: y1 = labels[i] with share lam (1 without mixup) and, with
// mixup (lambdas != NULL, partners too), y2 = labels[partners[i]] with share
// mu = 1 - lam.  bad: partners[i] is outside [0, batch) (y2 then stays -1).
// Never reads out of bounds.  The labels are not range-checked here: the
// loss first lets ignore_index through.
struct LabelPair {
  int64_t y1, y2;
  float lam, mu;
  bool mixed, bad;
};

FM_HD LabelPair label_pair(const int64_t *labels, const float *lambdas, const int64_t *partners,
                           int64_t i, int64_t batch) {
  LabelPair r{labels[i], -1, 1.0f, 0.0f, lambdas != nullptr, false};
  if (r.mixed) {
    r.lam = lambdas[i];
    r.mu = 1.0f - r.lam;
    const int64_t p = partners[i];
    if (p < 0 || p >= batch)
      r.bad = true;
    else
      r.y2 = labels[p];
  }
  return r;
}

FM_HD bool label_in_range(int64_t y, int64_t classes) { return y >= 0 && y < classes; }

// What one row of the loss needs besides its logits.
struct CeRow {
  int64_t y1, y2;  // y2 is meaningful only when w2 != 0
  float w1, w2;    // the shares, 0 for an ignored label
  bool bad;        // a label or partner out of range: the row's loss and gradient are NaN
};

FM_HD CeRow ce_row(const int64_t *labels, const float *lambdas, const int64_t *partners, int64_t i,
                   int64_t batch, int64_t classes, int64_t ignore_index) {
  const LabelPair lp = label_pair(labels, lambdas, partners, i, batch);
  CeRow r{0, 0, 0.0f, 0.0f, lp.bad};
  if (lp.y1 != ignore_index) {
    if (!label_in_range(lp.y1, classes)) r.bad = true;
    r.y1 = lp.y1;
    r.w1 = lp.lam;
  }
  if (lp.mixed && !lp.bad && lp.y2 != ignore_index) {
    if (!label_in_range(lp.y2, classes)) r.bad = true;
    r.y2 = lp.y2;
    r.w2 = lp.mu;
  }
  if (r.bad) r.w1 = r.w2 = 0.0f;
  return r;
}

// Sum of the weights of one row, as it enters the MEAN denominator (a bad row
// adds nothing; its NaN loss already poisons the reduced loss).
FM_HD double ce_weight(const CeRow &r) { return (double)r.w1 + (double)r.w2; }

// ---- loss and gradient of one row ----------------------------------------------
// CE_eps for one label: lse - z[y] computed as (m - z[y]) + logs, which keeps
// full precision for logits of +-1e4.
FM_HD float ce_term(float m, float logs, float zy, float mean, float eps) {
  float t = (1.0f - eps) * ((m - zy) + logs);
  if (eps != 0.0f) t += eps * ((m - mean) + logs);
  return t;
}

// loss_i from the row statistics; zy1/zy2 are read only for terms with
// non-zero weight.  NaN for a bad row; 0 for a fully ignored one.
FM_HD float ce_loss(const CeRow &r, float m, float logs, float zy1, float zy2, float mean,
                    float eps) {
  if (r.bad) return quiet_nan();
  float loss = 0.0f;
  if (r.w1 != 0.0f) loss += r.w1 * ce_term(m, logs, zy1, mean, eps);
  if (r.w2 != 0.0f) loss += r.w2 * ce_term(m, logs, zy2, mean, eps);
  return loss;
}

// The smoothed one-hot target t(y)_c.
FM_HD float ce_target(bool hit, float eps, float eps_c) {
  return (hit ? 1.0f - eps : 0.0f) + eps_c;
}

// One gradient element: k * ((w1 + w2) * p - w1 * t(y1)_c - w2 * t(y2)_c),
// p = softmax(z)_c = exp((z_c - m) - logs), k = grad_scale * s.  eps_c =
// eps / C.  Exactly 0 for an ignored row, NaN for a bad one.
// ce_grad_p takes p itself (each backend computes it with its own exp); for
// c outside {y1, y2}, and w1 or w2 zero, its skipped terms are exact zeros, so
// a caller may evaluate it branch-free.
FM_HD float ce_grad_p(const CeRow &r, int64_t c, float p, float eps, float eps_c, float k) {
  if (r.bad) return quiet_nan();
  if (r.w1 == 0.0f && r.w2 == 0.0f) return 0.0f;
  float g = (r.w1 + r.w2) * p;
  if (r.w1 != 0.0f) g -= r.w1 * ce_target(c == r.y1, eps, eps_c);
  if (r.w2 != 0.0f) g -= r.w2 * ce_target(c == r.y2, eps, eps_c);
  return k * g;
}

// The factor of every gradient element: grad_scale, divided by the sum of the
// weights for MEAN.
FM_HD float ce_grad_factor(fastmix_reduction reduction, float grad_scale, double weight_sum) {
  return reduction == FASTMIX_REDUCTION_MEAN ? (float)((double)grad_scale / weight_sum)
                                             : grad_scale;
}

// The reduced loss from the float64 sums of the row losses and weights.
FM_HD float ce_reduced(fastmix_reduction reduction, double loss_sum, double weight_sum) {
  return reduction == FASTMIX_REDUCTION_MEAN ? (float)(loss_sum / weight_sum) : (float)loss_sum;
}

// ---- soft targets ------------------------------------------------------------
// Row i of the soft targets (no ignore_index): bad also when a label is out
// of range.
FM_HD LabelPair st_row(const int64_t *labels, const float *lambdas, const int64_t *partners,
                       int64_t i, int64_t batch, int64_t classes) {
  LabelPair r = label_pair(labels, lambdas, partners, i, batch);
  if (!label_in_range(r.y1, classes) || (r.mixed && !r.bad && !label_in_range(r.y2, classes)))
    r.bad = true;
  return r;
}

// targets[i][c] = (1 - eps) * (lam * [c == y1] + (1 - lam) * [c == y2]) + eps / C.
FM_HD float soft_target(const LabelPair &r, int64_t c, float eps, float eps_c) {
  if (r.bad) return quiet_nan();
  const float a = (c == r.y1 ? r.lam : 0.0f) + (c == r.y2 ? r.mu : 0.0f);
  return (1.0f - eps) * a + eps_c;
}

}  // namespace fm
