// The CPU backend of the loss (fastmix_loss and its cross-entropy forms) and
// the soft targets.  The per-row math is kernels/math/cross_entropy.cuh,
// shared with the CUDA kernels.  Arguments arrive validated by
// host/api_loss.cpp; the labels and partners, host memory here, are checked
// before any output is written.
//
// Rows are spread over an OpenMP team.  Each row is decoded once into a
// float32 buffer (the thread's own; float32 logits are read where they are),
// then, for the softmax cross-entropy: max, sum of exp(z - max) and, where
// needed, sum of z in float32 (vectorised `omp simd` reductions), the loss,
// and the gradient from the buffer (so grad_logits == logits is safe).  The
// binary loss is one pass per class.  For MEAN and SUM the float32 row
// losses are kept and summed afterwards in row order in float64: the result
// does not depend on the number of threads.
#include "../kernels/math/cross_entropy.cuh"
#include "../kernels/math/dtype.cuh"
#include "cpu_common.hpp"
#include "cpu_simd.hpp"

#include <cmath>
#include <type_traits>
#include <vector>

namespace fm {
namespace {

struct RowStats {
  float m, logs, mean, inv_sum;  // inv_sum = 1 / sum(exp(z - m))
};

// Max, log-sum-exp and mean of one decoded row, in vectorised loops, keeping
// e[j] = exp(z[j] - m) (e may be z) so that the gradient needs no second exp:
// softmax(z)[j] = e[j] * inv_sum.  The sums run in float32 over blocks of
// kSumBlock elements and add the blocks in float64: a plain float32 sum of a
// million terms loses about 1e-4 relative.  Blocks of 256 keep the sum
// accurate to a few ulps also where the compiler does not vectorise the loop
// (a sequential float32 sum of 2048 terms lost ~1e-6, which the label
// column's gradient, a difference of two near-equal terms, amplified).
constexpr int64_t kSumBlock = 256;

inline RowStats row_stats_impl(const float *z, float *e, int64_t n, bool want_mean) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = z[j] > m ? z[j] : m;
  double s = 0.0, sz = 0.0;
  for (int64_t j0 = 0; j0 < n; j0 += kSumBlock) {
    const int64_t j1 = j0 + kSumBlock < n ? j0 + kSumBlock : n;
    float bs = 0.0f, bz = 0.0f;
    if (want_mean) {  // before e overwrites z
#pragma omp simd reduction(+ : bz)
      for (int64_t j = j0; j < j1; ++j) bz += z[j];
    }
#pragma omp simd reduction(+ : bs)
    for (int64_t j = j0; j < j1; ++j) {
      e[j] = exp_vec(z[j] - m);  // NaN for every j when all logits are -inf
      bs += e[j];
    }
    if (m == -INFINITY)
      bs = (float)(j1 - j0);  // all -inf: lse = -inf (the loss is NaN, as in PyTorch)
    s += bs;
    sz += bz;
  }
  return RowStats{m, logf((float)s), (float)(sz / (double)n), (float)(1.0 / s)};
}

// The gradient row k * (G p_c - base cw_c - h1 [c == y1] - h2 [c == y2]) of a
// labelled row into g from e = exp(z - m): branch-free over every column
// (cw_c = 1 without class weights), then the two label columns through
// ce_grad_elem itself.  y1 and y2 are columns of the row also for a skipped
// term (whose h is then 0).
inline void grad_row_impl(const CeGrad &gr, int64_t y1, int64_t y2, const float *e,
                          float *g /* may be e */, int64_t n, float inv_sum, const float *cw,
                          float k) {
  if (gr.bad || gr.zero) {
    const float v = ce_grad_elem(gr, false, false, 0.0f, 1.0f, k);  // NaN or 0
    for (int64_t j = 0; j < n; ++j) g[j] = v;
    return;
  }
  // The label columns' softmax first: g may be e itself.
  const float p1 = e[y1] * inv_sum, p2 = e[y2] * inv_sum;
  const float G = gr.G, base = gr.base;
  if (cw) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) g[j] = k * (G * (e[j] * inv_sum) - base * cw[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) g[j] = k * (G * (e[j] * inv_sum) - base);
  }
  g[y1] = ce_grad_elem(gr, true, y1 == y2, p1, cw ? cw[y1] : 1.0f, k);
  g[y2] = ce_grad_elem(gr, y2 == y1, true, p2, cw ? cw[y2] : 1.0f, k);
}

// The same loops compiled for AVX2 as well, chosen at run time (GCC's
// target_clones did not dispatch from inside this shared library).
#if defined(__x86_64__)
__attribute__((target("avx2"))) RowStats row_stats_avx2(const float *z, float *e, int64_t n,
                                                        bool want_mean) {
  return row_stats_impl(z, e, n, want_mean);
}
__attribute__((target("avx2"))) void grad_row_avx2(const CeGrad &gr, int64_t y1, int64_t y2,
                                                   const float *e, float *g, int64_t n,
                                                   float inv_sum, const float *cw, float k) {
  grad_row_impl(gr, y1, y2, e, g, n, inv_sum, cw, k);
}
#endif

RowStats row_stats(const float *z, float *e, int64_t n, bool want_mean) {
#if defined(__x86_64__)
  if (has_avx2_f16c()) return row_stats_avx2(z, e, n, want_mean);
#endif
  return row_stats_impl(z, e, n, want_mean);
}

void grad_row(const CeGrad &gr, int64_t y1, int64_t y2, const float *e, float *g, int64_t n,
              float inv_sum, const float *cw, float k) {
#if defined(__x86_64__)
  if (has_avx2_f16c()) return grad_row_avx2(gr, y1, y2, e, g, n, inv_sum, cw, k);
#endif
  grad_row_impl(gr, y1, y2, e, g, n, inv_sum, cw, k);
}

// ---- the loss of one row ------------------------------------------------------
// The row formulas of kernels/math/cross_entropy.cuh over the decoded logits
// (and the decoded target row): the row's values in float32, its sums over
// the classes in float64 (or in the float64-blocked sums of row_stats).

// Row i of dense targets of any storage type, decoded to float32.
void decode_targets(const LossArgs &a, int64_t i, float *out) {
  dispatch_dtype(a.targets_dtype, [&](auto t) {
    using T = decltype(t);
    decode_row<T>(static_cast<const typename T::raw *>(a.targets) + i * a.targets_stride, out,
                  a.classes);
  });
}

// What every row of the loss shares.
struct RowLoss {
  const LossArgs &a;
  int64_t C;
  float eps, eps_c, k;
  const float *cw, *pw;  // NULL: all 1

  float cw_at(int64_t c) const { return cw ? cw[c] : 1.0f; }

  // Softmax cross-entropy with labels: loss, and the gradient into g (may be
  // e).  z: the row; e receives exp(z - m) and may be z itself where there
  // are no class weights (the label logits are read first, the mean inside
  // row_stats).
  float ce_labels(int64_t i, const float *z, float *e, float *g) const {
    const CeRow r = ce_row(a.labels, a.lambdas, a.partners, i, a.batch, C, a.ignore_index);
    const float zy1 = r.w1 != 0.0f ? z[r.y1] : 0.0f, zy2 = r.w2 != 0.0f ? z[r.y2] : 0.0f;
    const RowStats st = row_stats(z, e, C, !cw && eps != 0.0f);
    const CeHits h = ce_hits(r, cw);
    // S = sum cw_c and A = sum cw_c (m - z_c), for the smoothing term only; a
    // class of weight 0 adds exactly 0 (also where its logit is -inf).
    // Without class weights S = C and A = C (m - mean).
    double S = 0.0, A = 0.0;
    if (eps != 0.0f && (r.w1 != 0.0f || r.w2 != 0.0f)) {
      if (!cw) {
        S = (double)C;
        A = (double)C * (double)(st.m - st.mean);
      } else {
        for (int64_t c = 0; c < C; ++c) {
          if (cw[c] == 0.0f) continue;
          S += cw[c];
          A += (double)cw[c] * (double)(st.m - z[c]);
        }
      }
    }
    const float loss =
        ce_loss_labels(r, h, st.m, st.logs, zy1, zy2, eps, eps_c, (float)S, (float)A);
    if (g)
      grad_row(ce_grad_labels(r, h, eps, eps_c, (float)S), r.y1, r.y2, e, g, C, st.inv_sum, cw, k);
    return loss;
  }

  // Softmax cross-entropy with a dense target row t: sum_c u_c (lse - z_c)
  // = U logs + sum_c u_c (m - z_c); gradient k (U p_c - u_c).  A class whose
  // u_c is 0 adds exactly 0 to the loss (also where its logit is -inf).
  float ce_dense(const float *z, const float *t, float *e, float *g) const {
    const RowStats st = row_stats(z, e, C, false);
    double U = 0.0, A = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const float u = ce_dense_u(t[c], cw_at(c), eps, eps_c);
      if (u == 0.0f) continue;
      U += u;
      A += (double)u * (double)(st.m - z[c]);
    }
    const float Uf = (float)U;
    if (g)
      for (int64_t c = 0; c < C; ++c)  // g may be e: each element read before it is written
        g[c] = k * (Uf * (e[c] * st.inv_sum) - ce_dense_u(t[c], cw_at(c), eps, eps_c));
    return (float)(U * (double)st.logs + A);
  }

  // Binary cross-entropy with logits, per class: the target from the labels
  // (soft targets) or the dense row t, smoothed, then thresholded.
  float bce(int64_t i, const float *z, const float *t, float *g) const {
    LabelPair lp{};
    if (!t) lp = label_pair(a.labels, a.lambdas, a.partners, i, a.batch);
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const float tc = bce_threshold(
          t ? smooth_target(t[c], eps, eps_c) : soft_target(lp, c, eps, eps_c), a.threshold);
      const float zc = z[c], e = std::exp(-std::fabs(zc));
      const float w = cw_at(c), pwc = pw ? pw[c] : 1.0f;
      sum += bce_loss(zc, tc, w, pwc, std::log1p(e));
      if (g) g[c] = k * bce_grad(zc, tc, w, pwc, e, 1.0f / (1.0f + e));
    }
    return (float)sum;
  }
};

template <class T>
void loss_typed(const LossArgs &a) {
  using raw = typename T::raw;
  const raw *logits = static_cast<const raw *>(a.logits);
  raw *grad = static_cast<raw *>(a.grad);
  const int64_t n = a.batch, C = a.classes;
  const bool reduce = a.reduction != FASTMIX_REDUCTION_NONE;
  const bool binary = a.kind == FASTMIX_LOSS_BINARY_CROSS_ENTROPY, dense = a.targets != nullptr;
  if (n == 0) {  // nothing to read: no row buffer (classes may be huge), only the reduced loss
    if (reduce) a.loss[0] = ce_reduced(a.reduction, 0.0, 0.0);  // MEAN: 0/0 = NaN, SUM: 0
    return;
  }
  // The MEAN denominator, needed by the gradient before any row is written:
  // batch * classes (binary: PyTorch's mean over elements), batch (dense
  // targets), the summed weights of the label terms.
  double denom = loss_shape_denominator(a);
  if (!binary && !dense)
    for (int64_t i = 0; i < n; ++i)
      denom += ce_weight_cw(ce_row(a.labels, a.lambdas, a.partners, i, n, C, a.ignore_index),
                            a.class_weight);
  const RowLoss L{a,
                  C,
                  a.eps,
                  a.eps / (float)C,
                  ce_grad_factor(a.reduction, a.grad_scale, denom),
                  a.class_weight,
                  a.pos_weight};
  // The labelled cross-entropy without class weights reads z only before
  // row_stats overwrites it with exp(z - m): one buffer.
  const bool in_place = !binary && !dense && !a.class_weight;

  std::vector<float> row_loss(reduce ? (size_t)n : 0);
  float *out = reduce ? row_loss.data() : a.loss;
#pragma omp parallel if (n * C > kParallelGrain)
  {
    // zb: the decoded row (float32 logits are read where they are), eb: its
    // exp(z - m), then the gradient row (zb itself where in_place), tb: the
    // decoded target row.
    std::vector<float> zb((size_t)C), eb(in_place ? 0 : (size_t)C), tb(dense ? (size_t)C : 0);
    float *e = in_place ? zb.data() : eb.data();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float *z = zb.data();
      if constexpr (std::is_same<T, f32>::value)
        z = logits + i * a.stride;
      else
        decode_row<T>(logits + i * a.stride, zb.data(), C);
      const float *t = nullptr;
      if (dense) {
        decode_targets(a, i, tb.data());
        t = tb.data();
      }
      float *g = grad ? e : nullptr;
      out[i] = binary  ? L.bce(i, z, t, g)
               : dense ? L.ce_dense(z, t, e, g)
                       : L.ce_labels(i, z, e, g);
      if (grad) encode_row<T>(e, grad + i * a.stride, C);
    }
  }
  if (reduce) {
    double loss_sum = 0.0;
    for (int64_t i = 0; i < n; ++i) loss_sum += (double)row_loss[(size_t)i];
    a.loss[0] = ce_reduced(a.reduction, loss_sum, denom);
  }
}

template <class T>
void soft_targets_typed(const SoftTargetsArgs &a) {
  using raw = typename T::raw;
  raw *t = static_cast<raw *>(a.targets);
  const int64_t n = a.batch, C = a.classes;
  const float eps = a.eps, eps_c = a.eps / (float)C;
#pragma omp parallel for schedule(static) if (n * C > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const LabelPair r = st_row(a.labels, a.lambdas, a.partners, i, n, C);
    raw *row = t + i * a.stride;
    for (int64_t c = 0; c < C; ++c) row[c] = T::store(soft_target(r, c, eps, eps_c));
  }
}

}  // namespace

fastmix_status cpu_loss(const LossArgs &a, void *) {
  if (!a.targets) {
    // Labels and partners first: a bad one fails the call before anything is
    // written.  The binary loss has no ignore_index: every label is a class.
    if (a.partners) FM_TRY(check_partners_host(a.func, a.partners, a.batch));
    const bool ignore = a.kind == FASTMIX_LOSS_CROSS_ENTROPY;
    FM_TRY(check_labels_host(a.func, a.labels, a.batch, a.classes, ignore, a.ignore_index));
  }
  dispatch_dtype(a.dtype, [&](auto t) { loss_typed<decltype(t)>(a); });
  return FASTMIX_SUCCESS;
}

fastmix_status cpu_soft_targets(const SoftTargetsArgs &a, void *) {
  if (a.partners) FM_TRY(check_partners_host(a.func, a.partners, a.batch));
  FM_TRY(check_labels_host(a.func, a.labels, a.batch, a.classes, false, 0));
  dispatch_dtype(a.dtype, [&](auto t) { soft_targets_typed<decltype(t)>(a); });
  return FASTMIX_SUCCESS;
}

}  // namespace fm
