// The C ABI of the mixup cross-entropy and the soft targets (issue 3):
// argument validation, then dispatch to the CPU backend
// (host/cpu_cross_entropy.cpp) or the CUDA launchers
// (kernels/cross_entropy.cu).  Every argument, and on the CPU every label and
// partner, is checked before any output is written.
#include "validate.hpp"

using namespace fm;

namespace {

fastmix_status check_classes(const char *func, int64_t classes, int64_t stride,
                             const char *stride_name) {
  FM_CHECK(classes >= 1, "%s: classes must be >= 1, got %lld", func, (long long)classes);
  FM_CHECK(stride >= classes, "%s: %s (%lld) must be >= classes (%lld)", func, stride_name,
           (long long)stride, (long long)classes);
  return FASTMIX_SUCCESS;
}

fastmix_status check_mix(const char *func, const float *lambdas, const int64_t *partners) {
  FM_CHECK((lambdas == nullptr) == (partners == nullptr),
           "%s: lambdas and partners must both be given (mixup) or both be NULL (plain); "
           "got lambdas %s and partners %s",
           func, lambdas ? "non-NULL" : "NULL", partners ? "non-NULL" : "NULL");
  return FASTMIX_SUCCESS;
}

fastmix_status check_smoothing(const char *func, float eps) {
  FM_CHECK(eps >= 0.0f && eps <= 1.0f, "%s: label_smoothing must be in [0, 1], got %g", func,
           (double)eps);
  return FASTMIX_SUCCESS;
}

// Host labels: each ignore_index (when `ignore` is set) or in [0, classes).
fastmix_status check_labels_host(const char *func, const int64_t *labels, int64_t batch,
                                 int64_t classes, bool ignore, int64_t ignore_index) {
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t y = labels[i];
    if ((ignore && y == ignore_index) || (y >= 0 && y < classes)) continue;
    return fail(FASTMIX_ERROR_LABEL_OUT_OF_RANGE,
                "%s: labels[%lld] = %lld is outside [0, classes = %lld)%s", func, (long long)i,
                (long long)y, (long long)classes, ignore ? " and is not ignore_index" : "");
  }
  return FASTMIX_SUCCESS;
}

// The checks and dispatch of fastmix_cross_entropy and _ws (workspace NULL:
// the plain call).  Enums by reference: a C caller may pass any int there.
fastmix_status cross_entropy_call(const char *func, const fastmix_device &device,
                                  const fastmix_dtype &dtype, const void *logits, int64_t batch,
                                  int64_t classes, int64_t logits_stride, const int64_t *labels,
                                  const float *lambdas, const int64_t *partners,
                                  const fastmix_reduction &reduction, float label_smoothing,
                                  int64_t ignore_index, float *loss, void *grad_logits,
                                  float grad_scale, void *workspace, size_t workspace_bytes,
                                  void *stream) {
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_dtype(func, dtype));
    FM_TRY(check_batch(func, batch));
    FM_TRY(check_classes(func, classes, logits_stride, "logits_stride"));
    int64_t span = 0, gspan = 0;
    FM_TRY(check_rows(func, "logits", "logits_stride", dtype, logits, batch, classes, logits_stride,
                      &span));
    FM_CHECK(labels != nullptr, "%s: labels must not be NULL", func);
    FM_TRY(check_mix(func, lambdas, partners));
    const int red = enum_int(reduction);
    FM_CHECK(red == FASTMIX_REDUCTION_NONE || red == FASTMIX_REDUCTION_MEAN ||
                 red == FASTMIX_REDUCTION_SUM,
             "%s: reduction must be FASTMIX_REDUCTION_NONE (0), _MEAN (1) or _SUM (2), got %d",
             func, red);
    FM_TRY(check_smoothing(func, label_smoothing));
    FM_CHECK(loss != nullptr, "%s: loss must not be NULL", func);
    if (grad_logits) {
      FM_TRY(check_rows(func, "grad_logits", "logits_stride", dtype, grad_logits, batch, classes,
                        logits_stride, &gspan));
      FM_CHECK(
          grad_logits == logits || !overlaps(logits, (uint64_t)span, grad_logits, (uint64_t)gspan),
          "%s: grad_logits overlaps logits without being equal to it (only grad_logits == "
          "logits, in place, is supported)",
          func);
    }
    if (enum_int(device) != FASTMIX_DEVICE_CUDA) workspace = nullptr;  // the CPU uses none
    if (workspace) {
      const size_t need = ce_workspace_bytes(batch, reduction);
      FM_CHECK(workspace_bytes >= need,
               "%s: workspace_bytes (%zu) is below the %zu bytes that "
               "fastmix_cross_entropy_workspace_size gives for this batch and reduction",
               func, workspace_bytes, need);
      FM_CHECK((uintptr_t)workspace % 8 == 0, "%s: workspace must be 8-byte aligned", func);
      const auto clear = [&](const void *p, int64_t bytes) {
        return !overlaps(workspace, need, p, (uint64_t)bytes);
      };
      const int64_t loss_bytes = 4 * (enum_int(reduction) == FASTMIX_REDUCTION_NONE ? batch : 1);
      FM_CHECK(clear(logits, span) && clear(grad_logits, gspan) && clear(loss, loss_bytes) &&
                   clear(labels, 8 * batch) && clear(lambdas, 4 * batch) &&
                   clear(partners, 8 * batch),
               "%s: workspace overlaps another argument", func);
    }
    const CeArgs args{dtype,        logits,  batch,       classes,    logits_stride,
                      labels,       lambdas, partners,    reduction,  label_smoothing,
                      ignore_index, loss,    grad_logits, grad_scale, workspace};
    if (device == FASTMIX_DEVICE_CUDA) return cuda_cross_entropy(args, stream);
    if (partners) FM_TRY(check_partners_host(func, partners, batch));
    FM_TRY(check_labels_host(func, labels, batch, classes, true, ignore_index));
    cpu_cross_entropy(args);  // the CPU needs no workspace
    return FASTMIX_SUCCESS;
  });
}

}  // namespace

extern "C" {

fastmix_status fastmix_cross_entropy(fastmix_device device, fastmix_dtype dtype, const void *logits,
                                     int64_t batch, int64_t classes, int64_t logits_stride,
                                     const int64_t *labels, const float *lambdas,
                                     const int64_t *partners, fastmix_reduction reduction,
                                     float label_smoothing, int64_t ignore_index, float *loss,
                                     void *grad_logits, float grad_scale, void *stream) {
  return cross_entropy_call("fastmix_cross_entropy", device, dtype, logits, batch, classes,
                            logits_stride, labels, lambdas, partners, reduction, label_smoothing,
                            ignore_index, loss, grad_logits, grad_scale, nullptr, 0, stream);
}

fastmix_status fastmix_cross_entropy_ws(
    fastmix_device device, fastmix_dtype dtype, const void *logits, int64_t batch, int64_t classes,
    int64_t logits_stride, const int64_t *labels, const float *lambdas, const int64_t *partners,
    fastmix_reduction reduction, float label_smoothing, int64_t ignore_index, float *loss,
    void *grad_logits, float grad_scale, void *workspace, size_t workspace_bytes, void *stream) {
  return cross_entropy_call("fastmix_cross_entropy_ws", device, dtype, logits, batch, classes,
                            logits_stride, labels, lambdas, partners, reduction, label_smoothing,
                            ignore_index, loss, grad_logits, grad_scale, workspace, workspace_bytes,
                            stream);
}

fastmix_status fastmix_cross_entropy_workspace_size(fastmix_device device, int64_t batch,
                                                    fastmix_reduction reduction, size_t *bytes) {
  static const char *func = "fastmix_cross_entropy_workspace_size";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_batch(func, batch));
    const int red = enum_int(reduction);
    FM_CHECK(red == FASTMIX_REDUCTION_NONE || red == FASTMIX_REDUCTION_MEAN ||
                 red == FASTMIX_REDUCTION_SUM,
             "%s: reduction must be FASTMIX_REDUCTION_NONE (0), _MEAN (1) or _SUM (2), got %d",
             func, red);
    FM_CHECK(bytes != nullptr, "%s: bytes must not be NULL", func);
    *bytes = enum_int(device) == FASTMIX_DEVICE_CUDA ? ce_workspace_bytes(batch, reduction) : 0;
    return FASTMIX_SUCCESS;
  });
}

fastmix_status fastmix_soft_targets(fastmix_device device, fastmix_dtype dtype,
                                    const int64_t *labels, const float *lambdas,
                                    const int64_t *partners, int64_t batch, int64_t classes,
                                    float label_smoothing, void *targets, int64_t targets_stride,
                                    void *stream) {
  static const char *func = "fastmix_soft_targets";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_dtype(func, dtype));
    FM_TRY(check_batch(func, batch));
    FM_CHECK(labels != nullptr, "%s: labels must not be NULL", func);
    FM_TRY(check_mix(func, lambdas, partners));
    FM_TRY(check_classes(func, classes, targets_stride, "targets_stride"));
    FM_TRY(check_smoothing(func, label_smoothing));
    int64_t span = 0;
    FM_TRY(check_rows(func, "targets", "targets_stride", dtype, targets, batch, classes,
                      targets_stride, &span));
    if (device == FASTMIX_DEVICE_CUDA)
      return cuda_soft_targets(dtype, labels, lambdas, partners, batch, classes, label_smoothing,
                               targets, targets_stride, stream);
    if (partners) FM_TRY(check_partners_host(func, partners, batch));
    FM_TRY(check_labels_host(func, labels, batch, classes, false, 0));
    cpu_soft_targets(dtype, labels, lambdas, partners, batch, classes, label_smoothing, targets,
                     targets_stride);
    return FASTMIX_SUCCESS;
  });
}

}  // extern "C"
