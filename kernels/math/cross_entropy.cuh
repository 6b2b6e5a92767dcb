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

// ---- loss and gradient of one row, with class weights and dense targets -------
// With class weights cw (all 1 without them) and smoothing, the cross-entropy
// of a row is sum_c u_c * (lse - z_c) for the weighted target u:
//   labels:  u_c = (1 - eps) * (h1 [c == y1] + h2 [c == y2]) + (w1 + w2) * eps_c * cw_c,
//            with the label terms' weights c1 = w1 * cw[y1], c2 = w2 * cw[y2];
//   dense:   u_c = cw_c * ((1 - eps) * t_c + eps_c).
// A backend gathers, besides m and logs, the row sums S = sum_c v_c and
// A = sum_c v_c * (m - z_c) (v = cw for labels, v = u for dense targets;
// needed for labels only when eps != 0), so that sum_c v_c * (lse - z_c) =
// S * logs + A keeps the precision of (m - z) for large logits.  Then
//   loss     = sum_c u_c * (lse - z_c)
//   dloss/dz = U * softmax(z) - u,   U = sum_c u_c.

// The label terms' weights c1, c2 (0 for a skipped term).
struct CeHits {
  float c1, c2;
};

FM_HD CeHits ce_hits(const CeRow &r, const float *class_weight) {
  if (!class_weight) return CeHits{r.w1, r.w2};
  return CeHits{r.w1 != 0.0f ? r.w1 * class_weight[r.y1] : 0.0f,
                r.w2 != 0.0f ? r.w2 * class_weight[r.y2] : 0.0f};
}

// The MEAN denominator of a labelled row with class weights: c1 + c2.
FM_HD double ce_weight_cw(const CeRow &r, const float *class_weight) {
  const CeHits h = ce_hits(r, class_weight);
  return (double)h.c1 + (double)h.c2;
}

// The loss of a labelled row; S and A from v = cw over the row (read only
// when eps != 0).  NaN for a bad row, 0 for a fully ignored one.
FM_HD float ce_loss_labels(const CeRow &r, const CeHits &h, float m, float logs, float zy1,
                           float zy2, float eps, float eps_c, float S, float A) {
  if (r.bad) return quiet_nan();
  float loss = 0.0f;
  if (r.w1 != 0.0f) loss += (1.0f - eps) * h.c1 * ((m - zy1) + logs);
  if (r.w2 != 0.0f) loss += (1.0f - eps) * h.c2 * ((m - zy2) + logs);
  if (eps != 0.0f && (r.w1 != 0.0f || r.w2 != 0.0f)) loss += (r.w1 + r.w2) * eps_c * (S * logs + A);
  return loss;
}

// The gradient of a labelled row: g_c = k * (G * p_c - base * cw_c - h1 [c == y1]
// - h2 [c == y2]).  zero: the row is fully ignored (every g_c is exactly 0);
// a bad row's g_c are NaN.
struct CeGrad {
  float G, base, h1, h2;
  bool zero, bad;
};

FM_HD CeGrad ce_grad_labels(const CeRow &r, const CeHits &h, float eps, float eps_c, float S) {
  const float share = r.w1 + r.w2;
  return CeGrad{(1.0f - eps) * (h.c1 + h.c2) + share * eps_c * S, share * eps_c,
                (1.0f - eps) * h.c1, (1.0f - eps) * h.c2, share == 0.0f, r.bad};
}

// One element of that gradient; cw_c is 1 without class weights.
FM_HD float ce_grad_elem(const CeGrad &g, bool hit1, bool hit2, float p, float cw_c, float k) {
  if (g.bad) return quiet_nan();
  if (g.zero) return 0.0f;
  float v = g.G * p - g.base * cw_c;
  if (hit1) v -= g.h1;
  if (hit2) v -= g.h2;
  return k * v;
}

// A smoothed target, (1 - eps) * t + eps_c, each operation rounded on both
// backends: the binary loss's threshold is a step on this value, so it must
// not depend on whether the compiler fused the multiply and the add (the loss
// kernels are built with contraction on).
FM_HD float smooth_target(float t, float eps, float eps_c) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(__fmul_rn(1.0f - eps, t), eps_c);
#else
  return (1.0f - eps) * t + eps_c;
#endif
}

// The weighted, smoothed target u_c of a dense row.
FM_HD float ce_dense_u(float t, float cw_c, float eps, float eps_c) {
  return cw_c * smooth_target(t, eps, eps_c);
}

// ---- binary cross-entropy with logits, per class ------------------------------
// The target of class c: the soft target of labels (or the smoothed dense
// value, (1 - eps) * t + eps_c), then the optional threshold.
FM_HD float bce_threshold(float t, float threshold) {
  return threshold >= 0.0f ? (t > threshold ? 1.0f : 0.0f) : t;
}

// cw * (pw * t * softplus(-z) + (1 - t) * softplus(z)), from e = exp(-|z|)
// and lp = log1p(e), which each backend computes with its own functions
// (softplus(z) = max(z, 0) + lp, softplus(-z) = max(-z, 0) + lp).
FM_HD float bce_loss(float z, float t, float cw, float pw, float lp) {
  const float sp = (z > 0.0f ? z : 0.0f) + lp, sn = (z < 0.0f ? -z : 0.0f) + lp;
  const float l = pw * t * sn + (1.0f - t) * sp;
  return cw * (z != z ? z : l);  // NaN z: NaN (the max above would drop it)
}

// Its derivative: cw * ((1 - t + pw * t) * sigmoid(z) - pw * t), from e and
// r = 1 / (1 + e) (sigmoid(z) = r for z >= 0, e * r below).
FM_HD float bce_grad(float z, float t, float cw, float pw, float e, float r) {
  const float sig = z >= 0.0f ? r : e * r;
  const float g = (1.0f - t + pw * t) * sig - pw * t;
  return cw * (z != z ? z : g);
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
  return smooth_target(a, eps, eps_c);
}

}  // namespace fm
