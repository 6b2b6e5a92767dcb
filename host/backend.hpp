// The backend interface: what the entry points of the C ABI (host/api*.cpp)
// hand to a backend, and the functions each backend implements with the same
// signature, cpu_* (host/cpu_*.cpp) and cuda_* (kernels/*.cu, or
// host/cuda_stub.cpp in a build without the CUDA backend).  Not installed.
//
// This is the one header of host/ that kernels/ includes; the CPU backend in
// turn includes only the shared math of kernels/math/.  Every operation has
// one argument struct, filled by its entry point after all arguments passed
// validation.  `func` is the name of the entry point that was called: every
// message a backend records starts with it.  A backend checks only what the
// entry point cannot (the CPU: partners and labels in host memory; CUDA: the
// device, the pointers, shared memory), then works; the CPU backend ignores
// `stream`.
#pragma once

#include <fastmix/fastmix.h>

#include <stddef.h>
#include <stdint.h>

#define FM_TRY(expr)                                      \
  do {                                                    \
    const fastmix_status fm_status_ = (expr);             \
    if (fm_status_ != FASTMIX_SUCCESS) return fm_status_; \
  } while (0)

// Fails the calling function with FASTMIX_ERROR_INVALID_VALUE and the
// message (fail's format and arguments) unless cond holds.
#define FM_CHECK(cond, ...)                                             \
  do {                                                                  \
    if (!(cond)) return fail(FASTMIX_ERROR_INVALID_VALUE, __VA_ARGS__); \
  } while (0)

namespace fm {

// Records the detail of a failure for fastmix_last_error() and returns `status`.
fastmix_status fail(fastmix_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// Where a draw's seed and offset come from.
struct Seed {
  enum Kind {
    kValue,   // seed and offset as given
    kMemory,  // ptr = {seed, offset}, read when the work runs (on the CUDA
              // backend: by the kernel, so a captured graph draws afresh at
              // each replay); afterwards ptr[1] += increment (mod 2^64)
  } kind;
  uint64_t seed, offset;  // kValue
  uint64_t *ptr;          // kMemory: 8-byte aligned, clear of every other buffer
  uint64_t increment;     // kMemory
  static Seed value(uint64_t seed, uint64_t offset) {
    return Seed{kValue, seed, offset, nullptr, 0};
  }
  static Seed memory(uint64_t *ptr, uint64_t increment) {
    return Seed{kMemory, 0, 0, ptr, increment};
  }
};

// How lambdas and partners are drawn.
struct Draw {
  float alpha;
  int fold;
  fastmix_pairing pairing;
  Seed seed;
};

// A batch of samples, the input and output of a blend: `batch` rows of
// `elems` elements, `stride` elements apart; out == x (in place) or no
// overlap.
struct Images {
  fastmix_dtype dtype;
  const void *x;
  void *out;
  int64_t batch, elems, stride;
};

// fastmix_sample and fastmix_sample_device_seed.
struct SampleArgs {
  const char *func;
  Draw draw;
  int64_t batch;
  float *lambdas;
  int64_t *partners;
};

// fastmix_blend: lambdas and partners given.
struct BlendArgs {
  const char *func;
  Images images;
  const float *lambdas;
  const int64_t *partners;
};

// fastmix_mixup and fastmix_mixup_device_seed: draw, write lambdas and
// partners, blend.
struct MixupArgs {
  const char *func;
  Draw draw;
  Images images;
  float *lambdas;
  int64_t *partners;
};

// fastmix_loss, and fastmix_cross_entropy and fastmix_cross_entropy_ws (the
// cross-entropy with labels, no class weights).
struct LossArgs {
  const char *func;
  fastmix_dtype dtype;
  const void *logits;
  int64_t batch, classes, stride;
  const int64_t *labels;  // NULL when targets are given
  const float *lambdas;   // NULL together with partners: no mixup
  const int64_t *partners;
  fastmix_reduction reduction;
  float eps;
  int64_t ignore_index;
  float *loss;
  void *grad;  // NULL: no gradient
  float grad_scale;
  // CUDA, MEAN and SUM: >= ce_workspace_bytes(batch, reduction) bytes, or
  // NULL (fastmix_cross_entropy: the backend then takes its own from the
  // stream-ordered pool).  Always NULL on the CPU.
  void *workspace;
  fastmix_loss_kind kind = FASTMIX_LOSS_CROSS_ENTROPY;
  const float *class_weight = nullptr;  // NULL: all 1
  const float *pos_weight = nullptr;    // binary only; NULL: all 1
  float threshold = -1.0f;              // binary only; < 0: off
  const void *targets = nullptr;        // dense targets instead of labels
  fastmix_dtype targets_dtype = FASTMIX_FLOAT32;
  int64_t targets_stride = 0;
};

// fastmix_soft_targets.
struct SoftTargetsArgs {
  const char *func;
  fastmix_dtype dtype;
  const int64_t *labels;
  const float *lambdas;  // NULL together with partners: smoothed one-hot targets
  const int64_t *partners;
  int64_t batch, classes;
  float eps;
  void *targets;
  int64_t stride;
};

// Images with a height and width, for CutMix: `batch` images of `dtype`,
// each dense in `layout`, image i at element i * stride; out == x (in
// place) or no overlap.
struct CutImages {
  fastmix_dtype dtype;
  fastmix_layout layout;
  const void *x;
  void *out;
  int64_t batch, channels, height, width, stride;
};

// fastmix_cutmix_sample and its device-seed form.
struct CutmixSampleArgs {
  const char *func;
  fastmix_mix_config config;  // validated
  Seed seed;
  int64_t batch, height, width;
  float *lambdas;
  int64_t *partners;
  int32_t *boxes;
};

// A CutMix apply to `Images` (CutImages or U8Images): lambdas, partners and
// boxes given.
template <class Images>
struct ApplyArgs {
  const char *func;
  Images images;
  const float *lambdas;
  const int64_t *partners;
  const int32_t *boxes;
};

// A CutMix draw, then its apply to `Images`.
template <class Images>
struct DrawApplyArgs {
  const char *func;
  CutmixSampleArgs draw;  // batch, height, width those of `images`
  Images images;
};

// fastmix_cutmix_apply; fastmix_cutmix and its device-seed form.
using CutmixApplyArgs = ApplyArgs<CutImages>;
using CutmixArgs = DrawApplyArgs<CutImages>;

// uint8 images in, normalized `dtype` images out (never in place).  scale
// and shift per channel: 1 / (255 std), -mean / std, computed in double and
// rounded to float by the entry point.
struct U8Images {
  fastmix_layout in_layout, out_layout;
  const uint8_t *x;
  int64_t batch, channels, height, width, x_stride;
  fastmix_dtype dtype;
  void *out;
  int64_t out_stride;
  float scale[FASTMIX_MAX_NORM_CHANNELS], shift[FASTMIX_MAX_NORM_CHANNELS];
};

// fastmix_cutmix_apply_u8; fastmix_cutmix_u8 and its device-seed form.
using U8ApplyArgs = ApplyArgs<U8Images>;
using U8Args = DrawApplyArgs<U8Images>;

// The MEAN denominator of a loss when the shapes alone give it: batch *
// classes for the binary loss (PyTorch's mean over elements), batch for
// dense targets; 0 for the labelled cross-entropy, whose denominator is the
// summed weights of its label terms (summed by each backend).
inline double loss_shape_denominator(const LossArgs &a) {
  if (a.kind == FASTMIX_LOSS_BINARY_CROSS_ENTROPY) return (double)a.batch * (double)a.classes;
  return a.targets ? (double)a.batch : 0.0;
}

// fastmix_cross_entropy_workspace_size on CUDA: a double (the MEAN
// denominator), then one float per row (the row losses).
inline size_t ce_workspace_bytes(int64_t batch, fastmix_reduction reduction) {
  if (reduction == FASTMIX_REDUCTION_NONE) return 0;
  return ((size_t)8 + 4 * (size_t)batch + 7) & ~(size_t)7;
}

// ---- the backends: the same signatures on both sides -------------------------
fastmix_status cpu_sample(const SampleArgs &a, void *stream);
fastmix_status cpu_blend(const BlendArgs &a, void *stream);
fastmix_status cpu_mixup(const MixupArgs &a, void *stream);
fastmix_status cpu_loss(const LossArgs &a, void *stream);
fastmix_status cpu_soft_targets(const SoftTargetsArgs &a, void *stream);
fastmix_status cpu_cutmix_sample(const CutmixSampleArgs &a, void *stream);
fastmix_status cpu_cutmix_apply(const CutmixApplyArgs &a, void *stream);
fastmix_status cpu_cutmix(const CutmixArgs &a, void *stream);
fastmix_status cpu_cutmix_apply_u8(const U8ApplyArgs &a, void *stream);
fastmix_status cpu_cutmix_u8(const U8Args &a, void *stream);

// Each queues its kernels on `stream`, never allocates, never synchronizes,
// and reports launch errors.  Without the CUDA backend each returns
// FASTMIX_ERROR_NO_DEVICE.
fastmix_status cuda_sample(const SampleArgs &a, void *stream);
fastmix_status cuda_blend(const BlendArgs &a, void *stream);
fastmix_status cuda_mixup(const MixupArgs &a, void *stream);
fastmix_status cuda_loss(const LossArgs &a, void *stream);
fastmix_status cuda_soft_targets(const SoftTargetsArgs &a, void *stream);
fastmix_status cuda_cutmix_sample(const CutmixSampleArgs &a, void *stream);
fastmix_status cuda_cutmix_apply(const CutmixApplyArgs &a, void *stream);
fastmix_status cuda_cutmix(const CutmixArgs &a, void *stream);
fastmix_status cuda_cutmix_apply_u8(const U8ApplyArgs &a, void *stream);
fastmix_status cuda_cutmix_u8(const U8Args &a, void *stream);
int cuda_device_count();

// Runs the operation on the backend `device` names: the one place that picks
// the backend (device already validated).
template <class Args>
fastmix_status run(const fastmix_device &device, fastmix_status (*cpu)(const Args &, void *),
                   fastmix_status (*cuda)(const Args &, void *), const Args &args, void *stream) {
  return (device == FASTMIX_DEVICE_CUDA ? cuda : cpu)(args, stream);
}

}  // namespace fm
