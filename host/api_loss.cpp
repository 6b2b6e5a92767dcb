// The C ABI of the mixup cross-entropy and the soft targets: argument
// validation, then dispatch to the CPU backend (host/cpu_cross_entropy.cpp)
// or the CUDA launchers (kernels/cross_entropy.cu).  Every argument is
// checked before any output is written (on the CPU, every label and partner
// too, by the backend).
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
  FM_TRY(check_array(func, "lambdas", lambdas, /*optional=*/true));
  return check_array(func, "partners", partners, /*optional=*/true);
}

fastmix_status check_smoothing(const char *func, float eps) {
  FM_CHECK(eps >= 0.0f && eps <= 1.0f, "%s: label_smoothing must be in [0, 1], got %g", func,
           (double)eps);
  return FASTMIX_SUCCESS;
}

// The enum arguments of the cross-entropy, read through their bytes before
// they are copied into the argument struct (a C caller may pass any int).
fastmix_status check_ce_enums(const char *func, const fastmix_device &device,
                              const fastmix_dtype &dtype, const fastmix_reduction &reduction) {
  FM_TRY(check_device(func, device));
  FM_TRY(check_dtype(func, dtype));
  return check_reduction(func, reduction);
}

// Everything else fastmix_cross_entropy and _ws check.  a.workspace is set
// only for the CUDA backend, with workspace_bytes its size.
fastmix_status check_cross_entropy(const LossArgs &a, size_t workspace_bytes) {
  const char *func = a.func;
  FM_TRY(check_batch(func, a.batch));
  FM_TRY(check_classes(func, a.classes, a.stride, "logits_stride"));
  int64_t span = 0, gspan = 0;
  FM_TRY(check_rows(func, "logits", "logits_stride", a.dtype, a.logits, a.batch, a.classes,
                    a.stride, &span));
  FM_TRY(check_array(func, "labels", a.labels));
  FM_TRY(check_mix(func, a.lambdas, a.partners));
  FM_TRY(check_smoothing(func, a.eps));
  FM_TRY(check_array(func, "loss", a.loss));
  if (a.grad) {
    FM_TRY(check_rows(func, "grad_logits", "logits_stride", a.dtype, a.grad, a.batch, a.classes,
                      a.stride, &gspan));
    FM_CHECK(a.grad == a.logits || !overlaps(a.logits, (uint64_t)span, a.grad, (uint64_t)gspan),
             "%s: grad_logits overlaps logits without being equal to it (only grad_logits == "
             "logits, in place, is supported)",
             func);
  }
  if (a.workspace) {
    const size_t need = ce_workspace_bytes(a.batch, a.reduction);
    FM_CHECK(workspace_bytes >= need,
             "%s: workspace_bytes (%zu) is below the %zu bytes that "
             "fastmix_cross_entropy_workspace_size gives for this batch and reduction",
             func, workspace_bytes, need);
    FM_CHECK((uintptr_t)a.workspace % 8 == 0, "%s: workspace must be 8-byte aligned", func);
    const auto clear = [&](const void *p, int64_t bytes) {
      return !overlaps(a.workspace, need, p, (uint64_t)bytes);
    };
    const int64_t loss_bytes = 4 * (a.reduction == FASTMIX_REDUCTION_NONE ? a.batch : 1);
    FM_CHECK(clear(a.logits, span) && clear(a.grad, gspan) && clear(a.loss, loss_bytes) &&
                 clear(a.labels, 8 * a.batch) && clear(a.lambdas, 4 * a.batch) &&
                 clear(a.partners, 8 * a.batch),
             "%s: workspace overlaps another argument", func);
  }
  return FASTMIX_SUCCESS;
}

}  // namespace

extern "C" {

fastmix_status fastmix_cross_entropy(fastmix_device device, fastmix_dtype dtype, const void *logits,
                                     int64_t batch, int64_t classes, int64_t logits_stride,
                                     const int64_t *labels, const float *lambdas,
                                     const int64_t *partners, fastmix_reduction reduction,
                                     float label_smoothing, int64_t ignore_index, float *loss,
                                     void *grad_logits, float grad_scale, void *stream) {
  static const char *func = "fastmix_cross_entropy";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_ce_enums(func, device, dtype, reduction));
    const LossArgs a{func,     dtype,         logits,          batch,
                             classes,  logits_stride, labels,          lambdas,
                             partners, reduction,     label_smoothing, ignore_index,
                             loss,     grad_logits,   grad_scale,      nullptr};
    FM_TRY(check_cross_entropy(a, 0));
    return run(device, cpu_loss, cuda_loss, a, stream);
  });
}

fastmix_status fastmix_cross_entropy_ws(
    fastmix_device device, fastmix_dtype dtype, const void *logits, int64_t batch, int64_t classes,
    int64_t logits_stride, const int64_t *labels, const float *lambdas, const int64_t *partners,
    fastmix_reduction reduction, float label_smoothing, int64_t ignore_index, float *loss,
    void *grad_logits, float grad_scale, void *workspace, size_t workspace_bytes, void *stream) {
  static const char *func = "fastmix_cross_entropy_ws";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_ce_enums(func, device, dtype, reduction));
    // The CPU uses no workspace, so it is neither checked nor passed on.
    void *ws = device == FASTMIX_DEVICE_CUDA ? workspace : nullptr;
    const LossArgs a{func,     dtype,         logits,          batch,
                             classes,  logits_stride, labels,          lambdas,
                             partners, reduction,     label_smoothing, ignore_index,
                             loss,     grad_logits,   grad_scale,      ws};
    FM_TRY(check_cross_entropy(a, workspace_bytes));
    return run(device, cpu_loss, cuda_loss, a, stream);
  });
}

fastmix_status fastmix_cross_entropy_workspace_size(fastmix_device device, int64_t batch,
                                                    fastmix_reduction reduction, size_t *bytes) {
  static const char *func = "fastmix_cross_entropy_workspace_size";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_batch(func, batch));
    FM_TRY(check_reduction(func, reduction));
    FM_CHECK(bytes != nullptr, "%s: bytes must not be NULL", func);
    *bytes = device == FASTMIX_DEVICE_CUDA ? ce_workspace_bytes(batch, reduction) : 0;
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
    FM_TRY(check_array(func, "labels", labels));
    FM_TRY(check_mix(func, lambdas, partners));
    FM_TRY(check_classes(func, classes, targets_stride, "targets_stride"));
    FM_TRY(check_smoothing(func, label_smoothing));
    int64_t span = 0;
    FM_TRY(check_rows(func, "targets", "targets_stride", dtype, targets, batch, classes,
                      targets_stride, &span));
    const SoftTargetsArgs a{func,  dtype,   labels,          lambdas, partners,
                            batch, classes, label_smoothing, targets, targets_stride};
    return run(device, cpu_soft_targets, cuda_soft_targets, a, stream);
  });
}

}  // extern "C"
