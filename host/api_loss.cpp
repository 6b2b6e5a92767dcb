// The C ABI of the loss (fastmix_loss, and its forms fastmix_cross_entropy
// and fastmix_cross_entropy_ws) and of the soft targets: argument
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

// `name`: the parameter as the message names it.
fastmix_status check_smoothing(const char *func, float eps, const char *name = "label_smoothing") {
  FM_CHECK(eps >= 0.0f && eps <= 1.0f, "%s: %s must be in [0, 1], got %g", func, name, (double)eps);
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

// Everything the loss entry points check after the enums and the config
// fields: geometry, pointers, labels XOR targets, weights, gradient and
// workspace.  a.workspace is set only for the CUDA backend, with
// workspace_bytes its size; require_ws: a CUDA MEAN/SUM of fastmix_loss,
// which needs one.  size_func names the function that gives the size.
fastmix_status check_loss(const LossArgs &a, size_t workspace_bytes, bool require_ws,
                          const char *size_func) {
  const char *func = a.func;
  FM_TRY(check_batch(func, a.batch));
  FM_TRY(check_classes(func, a.classes, a.stride, "logits_stride"));
  int64_t span = 0, gspan = 0, tspan = 0;
  FM_TRY(check_rows(func, "logits", "logits_stride", a.dtype, a.logits, a.batch, a.classes,
                    a.stride, &span));
  if (a.targets) {
    // Dense targets replace the labels and the mixup that picks them.
    FM_CHECK(a.labels == nullptr, "%s: labels must be NULL when config->targets is given", func);
    FM_CHECK(a.lambdas == nullptr && a.partners == nullptr,
             "%s: lambdas and partners must be NULL when config->targets is given (mix the "
             "dense targets instead)",
             func);
    FM_CHECK(a.targets_stride >= a.classes,
             "%s: config->targets_stride (%lld) must be >= classes (%lld)", func,
             (long long)a.targets_stride, (long long)a.classes);
    FM_TRY(check_rows(func, "config->targets", "config->targets_stride", a.targets_dtype, a.targets,
                      a.batch, a.classes, a.targets_stride, &tspan));
  } else {
    FM_TRY(check_array(func, "labels", a.labels));
    FM_TRY(check_mix(func, a.lambdas, a.partners));
  }
  FM_TRY(check_smoothing(func, a.eps));
  FM_TRY(check_array(func, "loss", a.loss));
  FM_TRY(check_array(func, "config->class_weight", a.class_weight, /*optional=*/true));
  FM_TRY(check_array(func, "config->pos_weight", a.pos_weight, /*optional=*/true));
  const uint64_t weight_bytes = 4 * (uint64_t)a.classes;
  if (a.grad) {
    FM_TRY(check_rows(func, "grad_logits", "logits_stride", a.dtype, a.grad, a.batch, a.classes,
                      a.stride, &gspan));
    FM_CHECK(a.grad == a.logits || !overlaps(a.logits, (uint64_t)span, a.grad, (uint64_t)gspan),
             "%s: grad_logits overlaps logits without being equal to it (only grad_logits == "
             "logits, in place, is supported)",
             func);
    // The other inputs the rows read: the gradient must not overwrite them.
    FM_CHECK(!overlaps(a.grad, (uint64_t)gspan, a.targets, (uint64_t)tspan),
             "%s: grad_logits overlaps config->targets", func);
    FM_CHECK(!overlaps(a.grad, (uint64_t)gspan, a.class_weight, weight_bytes),
             "%s: grad_logits overlaps config->class_weight", func);
    FM_CHECK(!overlaps(a.grad, (uint64_t)gspan, a.pos_weight, weight_bytes),
             "%s: grad_logits overlaps config->pos_weight", func);
  }
  FM_CHECK(a.workspace || !require_ws,
           "%s: workspace must not be NULL: a CUDA MEAN or SUM reduces through a workspace of "
           "%s bytes",
           func, size_func);
  if (a.workspace) {
    const size_t need = ce_workspace_bytes(a.batch, a.reduction);
    FM_CHECK(workspace_bytes >= need,
             "%s: workspace_bytes (%zu) is below the %zu bytes that %s gives for this batch and "
             "reduction",
             func, workspace_bytes, need, size_func);
    FM_CHECK((uintptr_t)a.workspace % 8 == 0, "%s: workspace must be 8-byte aligned", func);
    const auto clear = [&](const void *p, uint64_t bytes) {
      return !overlaps(a.workspace, need, p, bytes);
    };
    const uint64_t loss_bytes = 4 * (uint64_t)(a.reduction == FASTMIX_REDUCTION_NONE ? a.batch : 1);
    const uint64_t n = (uint64_t)a.batch;
    FM_CHECK(clear(a.logits, (uint64_t)span) && clear(a.grad, (uint64_t)gspan) &&
                 clear(a.loss, loss_bytes) && clear(a.labels, 8 * n) && clear(a.lambdas, 4 * n) &&
                 clear(a.partners, 8 * n) && clear(a.targets, (uint64_t)tspan) &&
                 clear(a.class_weight, weight_bytes) && clear(a.pos_weight, weight_bytes),
             "%s: workspace overlaps another argument", func);
  }
  return FASTMIX_SUCCESS;
}

// The fields of a fastmix_loss_config that fastmix_loss_workspace_size reads
// too: the kind and the reduction, read through their bytes.
fastmix_status check_config_enums(const char *func, const fastmix_loss_config *config) {
  FM_CHECK(config != nullptr, "%s: config must not be NULL", func);
  const int kind = enum_int(config->kind);
  FM_CHECK(kind == FASTMIX_LOSS_CROSS_ENTROPY || kind == FASTMIX_LOSS_BINARY_CROSS_ENTROPY,
           "%s: config->kind must be FASTMIX_LOSS_CROSS_ENTROPY (0) or "
           "FASTMIX_LOSS_BINARY_CROSS_ENTROPY (1), got %d",
           func, kind);
  return check_reduction(func, config->reduction, "config->reduction");
}

// The rest of the config: values in range, the binary-only fields only with
// the binary kind, and the targets' dtype when there are targets.
fastmix_status check_config_values(const char *func, const fastmix_loss_config &c) {
  FM_TRY(check_smoothing(func, c.label_smoothing, "config->label_smoothing"));
  FM_CHECK(std::isfinite(c.grad_scale), "%s: config->grad_scale must be finite, got %g", func,
           (double)c.grad_scale);
  FM_CHECK(c.target_threshold < 1.0f,  // NaN fails too
           "%s: config->target_threshold must be < 0 (off) or in [0, 1), got %g", func,
           (double)c.target_threshold);
  const bool binary = enum_int(c.kind) == FASTMIX_LOSS_BINARY_CROSS_ENTROPY;
  FM_CHECK(binary || c.pos_weight == nullptr,
           "%s: config->pos_weight is for FASTMIX_LOSS_BINARY_CROSS_ENTROPY only; it must be "
           "NULL for the cross-entropy",
           func);
  FM_CHECK(binary || c.target_threshold < 0.0f,
           "%s: config->target_threshold is for FASTMIX_LOSS_BINARY_CROSS_ENTROPY only; it must "
           "be < 0 (off) for the cross-entropy, got %g",
           func, (double)c.target_threshold);
  if (c.targets) {
    const int td = enum_int(c.targets_dtype);
    FM_CHECK(td == FASTMIX_FLOAT32 || td == FASTMIX_FLOAT16 || td == FASTMIX_BFLOAT16,
             "%s: config->targets_dtype must be FASTMIX_FLOAT32 (0), FASTMIX_FLOAT16 (1) or "
             "FASTMIX_BFLOAT16 (2), got %d",
             func, td);
  }
  return FASTMIX_SUCCESS;
}

// fastmix_cross_entropy and _ws: fastmix_loss's labelled cross-entropy
// without class weights, its arguments checked under the entry point's names
// (the enums by reference, read through their bytes: a C caller may pass any
// int).
fastmix_status cross_entropy(const char *func, const fastmix_device &device,
                             const fastmix_dtype &dtype, const void *logits, int64_t batch,
                             int64_t classes, int64_t logits_stride, const int64_t *labels,
                             const float *lambdas, const int64_t *partners,
                             const fastmix_reduction &reduction, float label_smoothing,
                             int64_t ignore_index, float *loss, void *grad_logits, float grad_scale,
                             void *workspace, size_t workspace_bytes, void *stream) {
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_ce_enums(func, device, dtype, reduction));
    // The CPU uses no workspace, so it is neither checked nor passed on.
    // Without one, CUDA takes its own (cuda_loss).
    void *ws = device == FASTMIX_DEVICE_CUDA ? workspace : nullptr;
    const LossArgs a{func,   dtype,       logits,     batch,     classes,         logits_stride,
                     labels, lambdas,     partners,   reduction, label_smoothing, ignore_index,
                     loss,   grad_logits, grad_scale, ws};
    FM_TRY(check_loss(a, workspace_bytes, false, "fastmix_cross_entropy_workspace_size"));
    return run(device, cpu_loss, cuda_loss, a, stream);
  });
}

// fastmix_loss_workspace_size under the name of the entry point that asks.
fastmix_status loss_workspace_size(const char *func, const fastmix_device &device, int64_t batch,
                                   const fastmix_loss_config *config, size_t *bytes) {
  FM_TRY(check_device(func, device));
  FM_TRY(check_batch(func, batch));
  FM_TRY(check_config_enums(func, config));
  FM_CHECK(bytes != nullptr, "%s: bytes must not be NULL", func);
  *bytes = device == FASTMIX_DEVICE_CUDA ? ce_workspace_bytes(batch, config->reduction) : 0;
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
  return cross_entropy("fastmix_cross_entropy", device, dtype, logits, batch, classes,
                       logits_stride, labels, lambdas, partners, reduction, label_smoothing,
                       ignore_index, loss, grad_logits, grad_scale, nullptr, 0, stream);
}

fastmix_status fastmix_cross_entropy_ws(
    fastmix_device device, fastmix_dtype dtype, const void *logits, int64_t batch, int64_t classes,
    int64_t logits_stride, const int64_t *labels, const float *lambdas, const int64_t *partners,
    fastmix_reduction reduction, float label_smoothing, int64_t ignore_index, float *loss,
    void *grad_logits, float grad_scale, void *workspace, size_t workspace_bytes, void *stream) {
  return cross_entropy("fastmix_cross_entropy_ws", device, dtype, logits, batch, classes,
                       logits_stride, labels, lambdas, partners, reduction, label_smoothing,
                       ignore_index, loss, grad_logits, grad_scale, workspace, workspace_bytes,
                       stream);
}

fastmix_status fastmix_cross_entropy_workspace_size(fastmix_device device, int64_t batch,
                                                    fastmix_reduction reduction, size_t *bytes) {
  static const char *func = "fastmix_cross_entropy_workspace_size";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_reduction(func, reduction));
    fastmix_loss_config c;
    fastmix_loss_config_init(&c);
    c.reduction = reduction;
    return loss_workspace_size(func, device, batch, &c, bytes);
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

void fastmix_loss_config_init(fastmix_loss_config *config) {
  if (!config) return;
  *config = fastmix_loss_config{};
  config->kind = FASTMIX_LOSS_CROSS_ENTROPY;
  config->reduction = FASTMIX_REDUCTION_MEAN;
  config->label_smoothing = 0.0f;
  config->grad_scale = 1.0f;
  config->ignore_index = -100;  // PyTorch's default
  config->class_weight = nullptr;
  config->pos_weight = nullptr;
  config->target_threshold = -1.0f;
  config->targets = nullptr;
  config->targets_dtype = FASTMIX_FLOAT32;
  config->targets_stride = 0;
}

fastmix_status fastmix_loss_workspace_size(fastmix_device device, int64_t batch,
                                           const fastmix_loss_config *config, size_t *bytes) {
  static const char *func = "fastmix_loss_workspace_size";
  return guarded(func, [&]() -> fastmix_status {
    return loss_workspace_size(func, device, batch, config, bytes);
  });
}

fastmix_status fastmix_loss(fastmix_device device, fastmix_dtype dtype, const void *logits,
                            int64_t batch, int64_t classes, int64_t logits_stride,
                            const int64_t *labels, const float *lambdas, const int64_t *partners,
                            const fastmix_loss_config *config, float *loss, void *grad_logits,
                            void *workspace, size_t workspace_bytes, void *stream) {
  static const char *func = "fastmix_loss";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_dtype(func, dtype));
    FM_TRY(check_config_enums(func, config));
    const fastmix_loss_config c = *config;  // read once: the caller's struct may change later
    FM_TRY(check_config_values(func, c));
    const bool cuda = device == FASTMIX_DEVICE_CUDA;
    LossArgs a{func,
               dtype,
               logits,
               batch,
               classes,
               logits_stride,
               labels,
               lambdas,
               partners,
               c.reduction,
               c.label_smoothing,
               c.ignore_index,
               loss,
               grad_logits,
               c.grad_scale,
               cuda ? workspace : nullptr};
    a.kind = c.kind;
    a.class_weight = c.class_weight;
    a.pos_weight = c.pos_weight;
    a.threshold = c.target_threshold < 0.0f ? -1.0f : c.target_threshold;
    a.targets = c.targets;
    a.targets_dtype = c.targets ? c.targets_dtype : FASTMIX_FLOAT32;
    a.targets_stride = c.targets ? c.targets_stride : 0;
    // The CPU uses no workspace; CUDA reduces MEAN and SUM through one.
    FM_TRY(check_loss(a, workspace_bytes, cuda && c.reduction != FASTMIX_REDUCTION_NONE,
                      "fastmix_loss_workspace_size"));
    return run(device, cpu_loss, cuda_loss, a, stream);
  });
}

}  // extern "C"
