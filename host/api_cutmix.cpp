// The C ABI of CutMix (mixup or CutMix per sample): argument validation and
// dispatch.  Every argument is checked before any output is touched.
#include "validate.hpp"

#include <cmath>

using namespace fm;

namespace {

bool in_unit(double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0; }

fastmix_status check_config(const char *func, const fastmix_mix_config *c) {
  FM_CHECK(c != nullptr, "%s: config must not be NULL", func);
  FM_CHECK(std::isfinite(c->mixup_alpha) && c->mixup_alpha >= 0.0f,
           "%s: config->mixup_alpha must be finite and >= 0 (0: no mixup), got %g", func,
           (double)c->mixup_alpha);
  FM_CHECK(std::isfinite(c->cutmix_alpha) && c->cutmix_alpha >= 0.0f,
           "%s: config->cutmix_alpha must be finite and >= 0 (0: no CutMix), got %g", func,
           (double)c->cutmix_alpha);
  const bool minmax = !(c->cutmix_min == 0.0 && c->cutmix_max == 0.0);
  FM_CHECK(!minmax ||
               (in_unit(c->cutmix_min) && in_unit(c->cutmix_max) && c->cutmix_min < c->cutmix_max),
           "%s: config->cutmix_min and cutmix_max must both be 0 (off) or satisfy 0 <= min < max "
           "<= 1, got %g and %g",
           func, c->cutmix_min, c->cutmix_max);
  FM_CHECK(c->mixup_alpha > 0.0f || c->cutmix_alpha > 0.0f || minmax,
           "%s: config enables neither mixup (mixup_alpha > 0) nor CutMix (cutmix_alpha > 0 or "
           "cutmix_min/max)",
           func);
  FM_CHECK(in_unit(c->prob), "%s: config->prob must be in [0, 1], got %g", func, (double)c->prob);
  FM_CHECK(in_unit(c->switch_prob), "%s: config->switch_prob must be in [0, 1], got %g", func,
           (double)c->switch_prob);
  const int mode = enum_int(c->mode), pairing = enum_int(c->pairing);
  FM_CHECK(mode >= FASTMIX_MIX_ELEM && mode <= FASTMIX_MIX_BATCH,
           "%s: config->mode must be FASTMIX_MIX_ELEM (0), _PAIR (1) or _BATCH (2), got %d", func,
           mode);
  FM_TRY(check_pairing(func, "config->pairing", c->pairing));
  FM_CHECK(mode != FASTMIX_MIX_PAIR || pairing == FASTMIX_PAIRING_FLIP,
           "%s: config->mode FASTMIX_MIX_PAIR needs config->pairing FASTMIX_PAIRING_FLIP (a pair "
           "is i and batch - 1 - i), got pairing %d",
           func, pairing);
  return FASTMIX_SUCCESS;
}

}  // namespace

// What fastmix_cutmix_sample checks (and every call that draws).
fastmix_status fm::check_draw(const char *func, const fastmix_device &device,
                              const fastmix_mix_config *config, int64_t batch, int64_t height,
                              int64_t width, const float *lambdas, const int64_t *partners,
                              const int32_t *boxes) {
  FM_TRY(check_device(func, device));
  FM_TRY(check_config(func, config));
  FM_TRY(check_batch(func, batch));
  FM_TRY(check_side(func, "height", height));
  FM_TRY(check_side(func, "width", width));
  FM_TRY(check_lambdas_partners(func, lambdas, partners));
  return check_array(func, "boxes", boxes);
}

namespace {

// The images of an apply: dtype, layout, sizes, stride, alignment and
// overlap.  The enums are checked through their bytes before anything loads
// them (an out-of-range enum value must not be loaded in C++).
fastmix_status check_cut_images(const char *func, const fastmix_dtype &dtype,
                                const fastmix_layout &layout, const void *x, const void *out,
                                int64_t batch, int64_t channels, int64_t height, int64_t width,
                                int64_t stride) {
  FM_TRY(check_dtype(func, dtype));
  FM_TRY(check_layout(func, "layout", layout));
  FM_CHECK(channels >= 1, "%s: channels must be >= 1, got %lld", func, (long long)channels);
  FM_TRY(check_side(func, "height", height));
  FM_TRY(check_side(func, "width", width));
  int64_t elems = 0;
  FM_CHECK(!__builtin_mul_overflow(channels, height, &elems) &&
               !__builtin_mul_overflow(elems, width, &elems),
           "%s: channels * height * width overflows int64 (%lld x %lld x %lld)", func,
           (long long)channels, (long long)height, (long long)width);
  FM_CHECK(stride >= elems, "%s: sample_stride (%lld) must be >= channels * height * width (%lld)",
           func, (long long)stride, (long long)elems);
  return check_images(func, dtype, x, out, batch, elems, stride);
}

uint64_t cut_span(const CutImages &im) {
  return image_span(
      Images{im.dtype, im.x, im.out, im.batch, im.channels * im.height * im.width, im.stride});
}

// fastmix_cutmix and its device-seed form, once the seed is checked.
fastmix_status cutmix_entry(const char *func, const fastmix_device &device,
                            const fastmix_dtype &dtype, const fastmix_mix_config *config,
                            const Seed &seed, const fastmix_layout &layout, const void *x,
                            void *out, int64_t batch, int64_t channels, int64_t height,
                            int64_t width, int64_t sample_stride, float *lambdas, int64_t *partners,
                            int32_t *boxes, void *stream) {
  FM_TRY(check_draw(func, device, config, batch, height, width, lambdas, partners, boxes));
  FM_TRY(
      check_cut_images(func, dtype, layout, x, out, batch, channels, height, width, sample_stride));
  const CutImages images{dtype, layout, x, out, batch, channels, height, width, sample_stride};
  if (seed.kind == Seed::kMemory)
    FM_TRY(check_seed_offset(func, seed.ptr, batch, lambdas, partners, x, out, cut_span(images),
                             boxes));
  const CutmixSampleArgs draw{func, *config, seed, batch, height, width, lambdas, partners, boxes};
  return run(device, cpu_cutmix, cuda_cutmix, CutmixArgs{func, draw, images}, stream);
}

fastmix_status cutmix_sample_entry(const char *func, const fastmix_device &device,
                                   const fastmix_mix_config *config, const Seed &seed,
                                   int64_t batch, int64_t height, int64_t width, float *lambdas,
                                   int64_t *partners, int32_t *boxes, void *stream) {
  FM_TRY(check_draw(func, device, config, batch, height, width, lambdas, partners, boxes));
  if (seed.kind == Seed::kMemory)
    FM_TRY(check_seed_offset(func, seed.ptr, batch, lambdas, partners, nullptr, nullptr, 0, boxes));
  return run(device, cpu_cutmix_sample, cuda_cutmix_sample,
             CutmixSampleArgs{func, *config, seed, batch, height, width, lambdas, partners, boxes},
             stream);
}

}  // namespace

extern "C" {

fastmix_status fastmix_cutmix_sample(fastmix_device device, const fastmix_mix_config *config,
                                     uint64_t seed, uint64_t offset, int64_t batch, int64_t height,
                                     int64_t width, float *lambdas, int64_t *partners,
                                     int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix_sample";
  return guarded(func, [&]() -> fastmix_status {
    return cutmix_sample_entry(func, device, config, Seed::value(seed, offset), batch, height,
                               width, lambdas, partners, boxes, stream);
  });
}

fastmix_status fastmix_cutmix_sample_device_seed(fastmix_device device,
                                                 const fastmix_mix_config *config,
                                                 uint64_t *seed_offset, uint64_t offset_increment,
                                                 int64_t batch, int64_t height, int64_t width,
                                                 float *lambdas, int64_t *partners, int32_t *boxes,
                                                 void *stream) {
  static const char *func = "fastmix_cutmix_sample_device_seed";
  return guarded(func, [&]() -> fastmix_status {
    return cutmix_sample_entry(func, device, config, Seed::memory(seed_offset, offset_increment),
                               batch, height, width, lambdas, partners, boxes, stream);
  });
}

fastmix_status fastmix_cutmix_apply(fastmix_device device, fastmix_dtype dtype,
                                    fastmix_layout layout, const void *x, void *out, int64_t batch,
                                    int64_t channels, int64_t height, int64_t width,
                                    int64_t sample_stride, const float *lambdas,
                                    const int64_t *partners, const int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix_apply";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_batch(func, batch));
    FM_TRY(check_cut_images(func, dtype, layout, x, out, batch, channels, height, width,
                            sample_stride));
    FM_TRY(check_lambdas_partners(func, lambdas, partners));
    FM_TRY(check_array(func, "boxes", boxes));
    const CutImages images{dtype, layout, x, out, batch, channels, height, width, sample_stride};
    return run(device, cpu_cutmix_apply, cuda_cutmix_apply,
               CutmixApplyArgs{func, images, lambdas, partners, boxes}, stream);
  });
}

fastmix_status fastmix_cutmix(fastmix_device device, fastmix_dtype dtype,
                              const fastmix_mix_config *config, uint64_t seed, uint64_t offset,
                              fastmix_layout layout, const void *x, void *out, int64_t batch,
                              int64_t channels, int64_t height, int64_t width,
                              int64_t sample_stride, float *lambdas, int64_t *partners,
                              int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix";
  return guarded(func, [&]() -> fastmix_status {
    return cutmix_entry(func, device, dtype, config, Seed::value(seed, offset), layout, x, out,
                        batch, channels, height, width, sample_stride, lambdas, partners, boxes,
                        stream);
  });
}

fastmix_status fastmix_cutmix_device_seed(fastmix_device device, fastmix_dtype dtype,
                                          const fastmix_mix_config *config, uint64_t *seed_offset,
                                          uint64_t offset_increment, fastmix_layout layout,
                                          const void *x, void *out, int64_t batch, int64_t channels,
                                          int64_t height, int64_t width, int64_t sample_stride,
                                          float *lambdas, int64_t *partners, int32_t *boxes,
                                          void *stream) {
  static const char *func = "fastmix_cutmix_device_seed";
  return guarded(func, [&]() -> fastmix_status {
    return cutmix_entry(func, device, dtype, config, Seed::memory(seed_offset, offset_increment),
                        layout, x, out, batch, channels, height, width, sample_stride, lambdas,
                        partners, boxes, stream);
  });
}

}  // extern "C"
