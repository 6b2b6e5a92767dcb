// The per-row math of the mixup cross-entropy and of the soft targets, shared
// by the CPU backend (host/cpu_cross_entropy.cpp) and the CUDA kernels
// (kernels/cross_entropy.cu).  See docs/loss.md for the derivation.
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

#include <math.h>

namespace fm {

// What one row needs besides its logits.
struct CeRow {
  int64_t y1, y2;  // y2 is meaningful only when w2 != 0
  float w1, w2;
  bool bad;  // a label or partner out of range: the row's loss and gradient are NaN
};

// Reads row i's labels and weights.  lambdas == NULL means plain
// cross-entropy (partners is NULL too).  Never reads out of bounds: an index
// out of range marks the row bad instead.
FM_HD CeRow ce_row(const int64_t *labels, const float *lambdas, const int64_t *partners, int64_t i,
                   int64_t batch, int64_t classes, int64_t ignore_index) {
  CeRow r{0, 0, 0.0f, 0.0f, false};
  const int64_t y1 = labels[i];
  const float lam = lambdas ? lambdas[i] : 1.0f;
  if (y1 != ignore_index) {
    if (y1 < 0 || y1 >= classes) r.bad = true;
    r.y1 = y1;
    r.w1 = lam;
  }
  if (lambdas) {
    const int64_t p = partners[i];
    if (p < 0 || p >= batch) {
      r.bad = true;
    } else {
      const int64_t y2 = labels[p];
      if (y2 != ignore_index) {
        if (y2 < 0 || y2 >= classes) r.bad = true;
        r.y2 = y2;
        r.w2 = 1.0f - lam;
      }
    }
  }
  if (r.bad) r.w1 = r.w2 = 0.0f;
  return r;
}

// Sum of the weights of one row, as it enters the MEAN denominator (a bad row
// adds nothing; its NaN loss already poisons the reduced loss).
FM_HD double ce_weight(const CeRow &r) { return (double)r.w1 + (double)r.w2; }

// ---- the online log-sum-exp accumulator -------------------------------------
// m: running maximum, s: sum of exp(z - m), sz: sum of z.  Adding -inf to an
// accumulator whose maximum is -inf counts it as exp(0) (the row's lse then
// stays -inf whatever s is); a NaN makes s NaN.
struct CeAcc {
  float m, s, sz;
};

FM_HD CeAcc ce_acc_init() { return CeAcc{-INFINITY, 0.0f, 0.0f}; }

FM_HD void ce_acc_add(CeAcc &a, float x) {
  if (x > a.m) {
    a.s = a.s * expf(a.m - x) + 1.0f;
    a.m = x;
  } else {
    a.s += x == a.m ? 1.0f : expf(x - a.m);
  }
  a.sz += x;
}

// Adds N values with one rescale: the maximum of the N first, then one exp
// per value, independent of each other (instruction-level parallelism).
// Same conventions as ce_acc_add.
template <int N>
FM_HD void ce_acc_add_n(CeAcc &a, const float (&x)[N]) {
  float vm = x[0];
  for (int k = 1; k < N; ++k) vm = x[k] > vm ? x[k] : vm;
  if (vm > a.m) {
    a.s = a.s * expf(a.m - vm);
    a.m = vm;
  }
  for (int k = 0; k < N; ++k) {
    a.s += x[k] == a.m ? 1.0f : expf(x[k] - a.m);
    a.sz += x[k];
  }
}

// Symmetric in its arguments up to NaN: combine(a, b) and combine(b, a) are
// bitwise equal (IEEE + and * commute), so butterfly reductions give every
// lane the same value.
FM_HD float ce_acc_scale(const CeAcc &a, float m) { return a.m == m ? a.s : a.s * expf(a.m - m); }

FM_HD CeAcc ce_acc_combine(const CeAcc &a, const CeAcc &b) {
  const float m = a.m > b.m ? a.m : b.m;
  return CeAcc{m, ce_acc_scale(a, m) + ce_acc_scale(b, m), a.sz + b.sz};
}

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
// ce_grad_p takes p itself (the CPU backend computes it with its own
// vectorisable exp); for c outside {y1, y2}, and w1 or w2 zero, its skipped
// terms are exact zeros, so a caller may evaluate it branch-free.
FM_HD float ce_grad_p(const CeRow &r, int64_t c, float p, float eps, float eps_c, float k) {
  if (r.bad) return quiet_nan();
  if (r.w1 == 0.0f && r.w2 == 0.0f) return 0.0f;
  float g = (r.w1 + r.w2) * p;
  if (r.w1 != 0.0f) g -= r.w1 * ce_target(c == r.y1, eps, eps_c);
  if (r.w2 != 0.0f) g -= r.w2 * ce_target(c == r.y2, eps, eps_c);
  return k * g;
}

FM_HD float ce_grad(const CeRow &r, int64_t c, float x, float m, float logs, float eps, float eps_c,
                    float k) {
  return ce_grad_p(r, c, expf((x - m) - logs), eps, eps_c, k);
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
// The labels of row i for the soft targets (no ignore_index): bad when a
// label or the partner is out of range.
struct StRow {
  int64_t y1, y2;
  float lam, mu;
  bool bad;
};

FM_HD StRow st_row(const int64_t *labels, const float *lambdas, const int64_t *partners, int64_t i,
                   int64_t batch, int64_t classes) {
  StRow r{labels[i], -1, 1.0f, 0.0f, false};
  if (r.y1 < 0 || r.y1 >= classes) r.bad = true;
  if (lambdas) {
    r.lam = lambdas[i];
    r.mu = 1.0f - r.lam;
    const int64_t p = partners[i];
    if (p < 0 || p >= batch) {
      r.bad = true;
    } else {
      r.y2 = labels[p];
      if (r.y2 < 0 || r.y2 >= classes) r.bad = true;
    }
  }
  return r;
}

// targets[i][c] = (1 - eps) * (lam * [c == y1] + (1 - lam) * [c == y2]) + eps / C.
FM_HD float soft_target(const StRow &r, int64_t c, float eps, float eps_c) {
  if (r.bad) return quiet_nan();
  const float a = (c == r.y1 ? r.lam : 0.0f) + (c == r.y2 ? r.mu : 0.0f);
  return (1.0f - eps) * a + eps_c;
}

}  // namespace fm
