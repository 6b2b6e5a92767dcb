// Internal interfaces between the C ABI (host/api.cpp), the CPU backend
// (host/cpu_*.cpp) and the CUDA launchers (kernels/*.cu).  Not installed.
#pragma once

#include <fastmix/fastmix.h>

#include <stddef.h>
#include <stdint.h>

#define FM_TRY(expr)                                      \
  do {                                                    \
    const fastmix_status fm_status_ = (expr);             \
    if (fm_status_ != FASTMIX_SUCCESS) return fm_status_; \
  } while (0)

namespace fm {

// Records the detail of a failure for fastmix_last_error() and returns `status`.
fastmix_status fail(fastmix_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

inline size_t dtype_size(fastmix_dtype dtype) { return dtype == FASTMIX_FLOAT32 ? 4 : 2; }

// ---- CPU backend (arguments already validated) ----------------------------
void cpu_sample(float alpha, int fold, fastmix_pairing pairing, uint64_t seed, uint64_t offset,
                int64_t batch, float *lambdas, int64_t *partners);
void cpu_blend(fastmix_dtype dtype, const void *x, void *out, int64_t batch, int64_t elems,
               int64_t stride, const float *lambdas, const int64_t *partners);
// fastmix_sample_device_seed (x == NULL) and fastmix_mixup_device_seed on the
// CPU: seed and offset read from seed_offset, then seed_offset[1] += increment.
void cpu_draw_device_seed(fastmix_dtype dtype, float alpha, int fold, fastmix_pairing pairing,
                          uint64_t *seed_offset, uint64_t increment, const void *x, void *out,
                          int64_t batch, int64_t elems, int64_t stride, float *lambdas,
                          int64_t *partners);

// ---- CUDA backend ----------------------------------------------------------
// Each launcher validates what only the device can tell (device pointers,
// shared memory), queues its kernel on `stream` and reports launch errors.
// Without the CUDA backend they return FASTMIX_ERROR_NO_DEVICE.
struct MixupDraw {  // present when the kernel draws lambdas and partners itself
  float alpha;
  int fold;
  fastmix_pairing pairing;
  uint64_t seed, offset;
};

fastmix_status cuda_sample(float alpha, int fold, fastmix_pairing pairing, uint64_t seed,
                           uint64_t offset, int64_t batch, float *lambdas, int64_t *partners,
                           void *stream);
// draw == NULL: blend with the given lambdas and partners; otherwise draw them,
// write them to lambdas/partners, and blend, in one launch.
fastmix_status cuda_blend(fastmix_dtype dtype, const void *x, void *out, int64_t batch,
                          int64_t elems, int64_t stride, float *lambdas, int64_t *partners,
                          const MixupDraw *draw, void *stream);
int cuda_device_count();

// ---- cross-entropy and soft targets (issue 3; host/api_loss.cpp) -------------
// The arguments of fastmix_cross_entropy, validated.
struct CeArgs {
  fastmix_dtype dtype;
  const void *logits;
  int64_t batch, classes, stride;
  const int64_t *labels;
  const float *lambdas;  // NULL together with partners: plain cross-entropy
  const int64_t *partners;
  fastmix_reduction reduction;
  float eps;
  int64_t ignore_index;
  float *loss;
  void *grad;  // NULL: no gradient
  float grad_scale;
  void *workspace;  // CUDA MEAN/SUM: >= ce_workspace_bytes(batch, reduction), or NULL
};

// fastmix_cross_entropy_workspace_size on CUDA: a double (the MEAN
// denominator), then one float per row (the row losses).
inline size_t ce_workspace_bytes(int64_t batch, fastmix_reduction reduction) {
  if (reduction == FASTMIX_REDUCTION_NONE) return 0;
  return ((size_t)8 + 4 * (size_t)batch + 7) & ~(size_t)7;
}
// The CPU backend; labels and partners already checked on the host.
void cpu_cross_entropy(const CeArgs &a);
void cpu_soft_targets(fastmix_dtype dtype, const int64_t *labels, const float *lambdas,
                      const int64_t *partners, int64_t batch, int64_t classes, float eps,
                      void *targets, int64_t stride);
fastmix_status cuda_cross_entropy(const CeArgs &a, void *stream);
fastmix_status cuda_soft_targets(fastmix_dtype dtype, const int64_t *labels, const float *lambdas,
                                 const int64_t *partners, int64_t batch, int64_t classes, float eps,
                                 void *targets, int64_t stride, void *stream);

// ---- seed and offset read from memory at run time (issue 6; host/api.cpp) ----
// seed_offset = {seed, offset} on the device, read by the kernels when they
// run; afterwards a one-thread kernel on the same stream adds `increment` to
// seed_offset[1] (nothing when it is 0).  x == NULL: sample only.  Arguments
// arrive validated (batch may be 0: then only the increment is queued).
fastmix_status cuda_draw_device_seed(fastmix_dtype dtype, float alpha, int fold,
                                     fastmix_pairing pairing, uint64_t *seed_offset,
                                     uint64_t increment, const void *x, void *out, int64_t batch,
                                     int64_t elems, int64_t stride, float *lambdas,
                                     int64_t *partners, void *stream);

}  // namespace fm
