// The CPU backend of the mixup cross-entropy and the soft targets.  The
// per-row math is kernels/cross_entropy.cuh, shared with the CUDA kernels.
// Arguments, labels and partners arrive validated by host/api_loss.cpp.
//
// Rows are spread over an OpenMP team.  Each row is decoded once into a
// float32 buffer (the thread's own), then: max, sum of exp(z - max) and sum of
// z in float32 (vectorised `omp simd` reductions), the loss, and the gradient
// from the buffer (so grad_logits == logits is safe).  For MEAN and SUM the
// float32 row losses are kept and summed afterwards in row order in float64:
// the result does not depend on the number of threads.
#include "internal.hpp"

#include "../kernels/cross_entropy.cuh"

#include <vector>

namespace fm {
namespace {

// Below this many elements a call stays on the calling thread.
constexpr int64_t kParallelGrain = 1 << 15;

struct RowStats {
  float m, logs, mean;
};

// Max, log-sum-exp and mean of one decoded row.
RowStats row_stats(const float *z, int64_t n, bool want_mean) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = z[j] > m ? z[j] : m;
  float s = 0.0f;
  if (m == -INFINITY) {
    s = (float)n;  // every logit is -inf: lse = -inf (the loss is NaN, as in PyTorch)
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) s += expf(z[j] - m);
  }
  float sz = 0.0f;
  if (want_mean) {
#pragma omp simd reduction(+ : sz)
    for (int64_t j = 0; j < n; ++j) sz += z[j];
  }
  return RowStats{m, logf(s), sz / (float)n};
}

template <class T>
void cross_entropy_typed(const CeArgs &a) {
  using raw = typename T::raw;
  const raw *logits = static_cast<const raw *>(a.logits);
  raw *grad = static_cast<raw *>(a.grad);
  const int64_t n = a.batch, C = a.classes;
  const float eps = a.eps, eps_c = a.eps / (float)C;
  const bool reduce = a.reduction != FASTMIX_REDUCTION_NONE;

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
    std::vector<float> buf((size_t)C);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const CeRow r = ce_row(a.labels, a.lambdas, a.partners, i, n, C, a.ignore_index);
      const raw *zr = logits + i * a.stride;
      float *z = buf.data();
      for (int64_t j = 0; j < C; ++j) z[j] = T::load(zr[j]);
      const RowStats st = row_stats(z, C, eps != 0.0f);
      out[i] = ce_loss(r, st.m, st.logs, r.w1 != 0.0f ? z[r.y1] : 0.0f,
                       r.w2 != 0.0f ? z[r.y2] : 0.0f, st.mean, eps);
      if (grad) {
        raw *g = grad + i * a.stride;
        for (int64_t j = 0; j < C; ++j)
          g[j] = T::store(ce_grad(r, j, z[j], st.m, st.logs, eps, eps_c, k));
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
void soft_targets_typed(const int64_t *labels, const float *lambdas, const int64_t *partners,
                        int64_t n, int64_t C, float eps, void *targets, int64_t stride) {
  using raw = typename T::raw;
  raw *t = static_cast<raw *>(targets);
  const float eps_c = eps / (float)C;
#pragma omp parallel for schedule(static) if (n * C > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const StRow r = st_row(labels, lambdas, partners, i, n, C);
    raw *row = t + i * stride;
    for (int64_t c = 0; c < C; ++c) row[c] = T::store(soft_target(r, c, eps, eps_c));
  }
}

}  // namespace

void cpu_cross_entropy(const CeArgs &a) {
  switch (a.dtype) {
    case FASTMIX_FLOAT32: return cross_entropy_typed<f32>(a);
    case FASTMIX_FLOAT16: return cross_entropy_typed<f16>(a);
    case FASTMIX_BFLOAT16: return cross_entropy_typed<bf16>(a);
  }
}

void cpu_soft_targets(fastmix_dtype dtype, const int64_t *labels, const float *lambdas,
                      const int64_t *partners, int64_t batch, int64_t classes, float eps,
                      void *targets, int64_t stride) {
  switch (dtype) {
    case FASTMIX_FLOAT32:
      return soft_targets_typed<f32>(labels, lambdas, partners, batch, classes, eps, targets, stride);
    case FASTMIX_FLOAT16:
      return soft_targets_typed<f16>(labels, lambdas, partners, batch, classes, eps, targets, stride);
    case FASTMIX_BFLOAT16:
      return soft_targets_typed<bf16>(labels, lambdas, partners, batch, classes, eps, targets, stride);
  }
}

}  // namespace fm
