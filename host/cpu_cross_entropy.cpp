// The CPU backend of the mixup cross-entropy and the soft targets.  The
// per-row math is kernels/math/cross_entropy.cuh, shared with the CUDA
// kernels.  Arguments arrive validated by host/api_loss.cpp; the labels and
// partners, host memory here, are checked before any output is written.
//
// Rows are spread over an OpenMP team.  Each row is decoded once into a
// float32 buffer (the thread's own), then: max, sum of exp(z - max) and sum of
// z in float32 (vectorised `omp simd` reductions), the loss, and the gradient
// from the buffer (so grad_logits == logits is safe).  For MEAN and SUM the
// float32 row losses are kept and summed afterwards in row order in float64:
// the result does not depend on the number of threads.
#include "../kernels/math/cross_entropy.cuh"
#include "../kernels/math/dtype.cuh"
#include "cpu_simd.hpp"
#include "validate.hpp"

#include <cmath>
#include <type_traits>
#include <vector>

namespace fm {
namespace {

// Below this many elements a call stays on the calling thread.
constexpr int64_t kParallelGrain = 1 << 15;

struct RowStats {
  float m, logs, mean, inv_sum;  // inv_sum = 1 / sum(exp(z - m))
};

// Max, log-sum-exp and mean of one decoded row, in vectorised loops, keeping
// e[j] = exp(z[j] - m) (e may be z) so that the gradient needs no second exp:
// softmax(z)[j] = e[j] * inv_sum.  The sums run in float32 over blocks of
// kSumBlock elements and add the blocks in float64: a plain float32 sum of a
// million terms loses about 1e-4 relative.
constexpr int64_t kSumBlock = 2048;

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

// The gradient row k * ((w1 + w2) p - w1 t(y1) - w2 t(y2)) into g from e =
// exp(z - m), as ce_grad_p computes it: branch-free for the columns that are
// neither label (their target is eps / C, and a zero weight subtracts an
// exact zero), then the (at most two) label columns through ce_grad_p itself.
inline void grad_row_impl(const CeRow &r, const float *e, float *g /* may be e */, int64_t n,
                          float inv_sum, float eps, float eps_c, float k) {
  if (r.bad || (r.w1 == 0.0f && r.w2 == 0.0f)) {
    const float v = ce_grad_p(r, 0, 0.0f, eps, eps_c, k);  // NaN or 0
    for (int64_t j = 0; j < n; ++j) g[j] = v;
    return;
  }
  // The label columns' softmax first: g may be e itself.
  const float p1 = r.w1 != 0.0f ? e[r.y1] * inv_sum : 0.0f;
  const float p2 = r.w2 != 0.0f ? e[r.y2] * inv_sum : 0.0f;
  const float w = r.w1 + r.w2, t0 = ce_target(false, eps, eps_c);
  const float a1 = r.w1 * t0, a2 = r.w2 * t0;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    float v = w * (e[j] * inv_sum);
    v -= a1;
    v -= a2;
    g[j] = k * v;
  }
  if (r.w1 != 0.0f) g[r.y1] = ce_grad_p(r, r.y1, p1, eps, eps_c, k);
  if (r.w2 != 0.0f) g[r.y2] = ce_grad_p(r, r.y2, p2, eps, eps_c, k);
}

// The same loops compiled for AVX2 as well, chosen at run time (GCC's
// target_clones did not dispatch from inside this shared library).
#if defined(__x86_64__)
__attribute__((target("avx2"))) RowStats row_stats_avx2(const float *z, float *e, int64_t n,
                                                        bool want_mean) {
  return row_stats_impl(z, e, n, want_mean);
}
__attribute__((target("avx2"))) void grad_row_avx2(const CeRow &r, const float *e, float *g,
                                                   int64_t n, float inv_sum, float eps, float eps_c,
                                                   float k) {
  grad_row_impl(r, e, g, n, inv_sum, eps, eps_c, k);
}
#endif

RowStats row_stats(const float *z, float *e, int64_t n, bool want_mean) {
#if defined(__x86_64__)
  if (has_avx2_f16c()) return row_stats_avx2(z, e, n, want_mean);
#endif
  return row_stats_impl(z, e, n, want_mean);
}

void grad_row(const CeRow &r, const float *e, float *g, int64_t n, float inv_sum, float eps,
              float eps_c, float k) {
#if defined(__x86_64__)
  if (has_avx2_f16c()) return grad_row_avx2(r, e, g, n, inv_sum, eps, eps_c, k);
#endif
  grad_row_impl(r, e, g, n, inv_sum, eps, eps_c, k);
}

template <class T>
void cross_entropy_typed(const LossArgs &a) {
  using raw = typename T::raw;
  const raw *logits = static_cast<const raw *>(a.logits);
  raw *grad = static_cast<raw *>(a.grad);
  const int64_t n = a.batch, C = a.classes;
  const float eps = a.eps, eps_c = a.eps / (float)C;
  const bool reduce = a.reduction != FASTMIX_REDUCTION_NONE;
  if (n == 0) {  // nothing to read: no row buffer (classes may be huge), only the reduced loss
    if (reduce) a.loss[0] = ce_reduced(a.reduction, 0.0, 0.0);  // MEAN: 0/0 = NaN, SUM: 0
    return;
  }

  // The MEAN denominator, needed by the gradient before any row is written.
  double weight_sum = 0.0;
  if (a.reduction == FASTMIX_REDUCTION_MEAN)
    for (int64_t i = 0; i < n; ++i)
      weight_sum += ce_weight(ce_row(a.labels, a.lambdas, a.partners, i, n, C, a.ignore_index));
  const float k = ce_grad_factor(a.reduction, a.grad_scale, weight_sum);

  std::vector<float> row_loss(reduce ? (size_t)n : 0);
  float *out = reduce ? row_loss.data() : a.loss;

#pragma omp parallel if (n * C > kParallelGrain)
  {
    // The row's exp(z - m), then (in place) its gradient.  float32 logits
    // are read where they are; the others are decoded into the buffer first.
    // The whole row is read before any of its gradient is written, so
    // grad_logits == logits is safe.
    std::vector<float> buf((size_t)C);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const CeRow r = ce_row(a.labels, a.lambdas, a.partners, i, n, C, a.ignore_index);
      float *e = buf.data();
      const float *z = e;
      if constexpr (std::is_same<T, f32>::value)
        z = logits + i * a.stride;
      else
        decode_row<T>(logits + i * a.stride, e, C);
      const float zy1 = r.w1 != 0.0f ? z[r.y1] : 0.0f, zy2 = r.w2 != 0.0f ? z[r.y2] : 0.0f;
      const RowStats st = row_stats(z, e, C, eps != 0.0f);
      out[i] = ce_loss(r, st.m, st.logs, zy1, zy2, st.mean, eps);
      if (grad) {
        grad_row(r, e, e, C, st.inv_sum, eps, eps_c, k);
        encode_row<T>(e, grad + i * a.stride, C);
      }
    }
  }
  if (reduce) {
    double loss_sum = 0.0;
    for (int64_t i = 0; i < n; ++i) loss_sum += (double)row_loss[(size_t)i];
    a.loss[0] = ce_reduced(a.reduction, loss_sum, weight_sum);
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
  if (a.partners) FM_TRY(check_partners_host(a.func, a.partners, a.batch));
  FM_TRY(check_labels_host(a.func, a.labels, a.batch, a.classes, true, a.ignore_index));
  dispatch_dtype(a.dtype, [&](auto t) { cross_entropy_typed<decltype(t)>(a); });
  return FASTMIX_SUCCESS;
}

fastmix_status cpu_soft_targets(const SoftTargetsArgs &a, void *) {
  if (a.partners) FM_TRY(check_partners_host(a.func, a.partners, a.batch));
  FM_TRY(check_labels_host(a.func, a.labels, a.batch, a.classes, false, 0));
  dispatch_dtype(a.dtype, [&](auto t) { soft_targets_typed<decltype(t)>(a); });
  return FASTMIX_SUCCESS;
}

}  // namespace fm
