// The C ABI of the uint8 input path: argument validation and dispatch.
// Every argument is checked before any output is touched.
#include "validate.hpp"

#include <cmath>

using namespace fm;

namespace {

// Everything but the draw; fills `im` (scale and shift included).
fastmix_status check_u8(const char *func, const fastmix_layout &in_layout, const uint8_t *x,
                        int64_t batch, int64_t channels, int64_t height, int64_t width,
                        int64_t x_stride, const float *mean, const float *std,
                        const fastmix_dtype &dtype, const fastmix_layout &out_layout, void *out,
                        int64_t out_stride, U8Images *im) {
  FM_TRY(check_layout(func, "in_layout", in_layout));
  FM_TRY(check_layout(func, "out_layout", out_layout));
  FM_TRY(check_dtype(func, dtype));
  FM_TRY(check_batch(func, batch));
  FM_CHECK(channels >= 1 && channels <= FASTMIX_MAX_NORM_CHANNELS,
           "%s: channels must be in [1, %d], got %lld", func, FASTMIX_MAX_NORM_CHANNELS,
           (long long)channels);
  FM_TRY(check_side(func, "height", height));
  FM_TRY(check_side(func, "width", width));
  int64_t elems = 0;
  FM_CHECK(!__builtin_mul_overflow(channels * height, width, &elems),
           "%s: channels * height * width overflows int64", func);
  FM_CHECK(x_stride >= elems, "%s: x_stride (%lld) must be >= channels * height * width (%lld)",
           func, (long long)x_stride, (long long)elems);
  FM_CHECK(out_stride >= elems, "%s: out_stride (%lld) must be >= channels * height * width (%lld)",
           func, (long long)out_stride, (long long)elems);
  FM_CHECK(x != nullptr, "%s: x must not be NULL", func);
  int64_t x_span = 0, out_span = 0;
  FM_TRY(check_rows(func, "out", "out_stride", dtype, out, batch, elems, out_stride, &out_span));
  FM_CHECK(batch == 0 || !__builtin_mul_overflow(batch - 1, x_stride, &x_span),
           "%s: batch * x_stride overflows the address space", func);
  if (batch > 0) x_span += elems;
  FM_CHECK(!overlaps(x, (uint64_t)x_span, out, (uint64_t)out_span),
           "%s: out overlaps x (uint8 in, %s out: there is no in place)", func,
           dtype == FASTMIX_FLOAT32 ? "float32" : "16-bit");
  FM_CHECK(mean != nullptr, "%s: mean must not be NULL", func);
  FM_CHECK(std != nullptr, "%s: std must not be NULL", func);
  for (int64_t c = 0; c < channels; ++c) {
    FM_CHECK(std::isfinite(mean[c]), "%s: mean[%lld] must be finite, got %g", func, (long long)c,
             (double)mean[c]);
    FM_CHECK(std::isfinite(std[c]) && std[c] > 0.0f, "%s: std[%lld] must be finite and > 0, got %g",
             func, (long long)c, (double)std[c]);
  }
  *im = U8Images{};
  im->in_layout = in_layout, im->out_layout = out_layout, im->x = x;
  im->batch = batch, im->channels = channels, im->height = height, im->width = width;
  im->x_stride = x_stride, im->dtype = dtype, im->out = out, im->out_stride = out_stride;
  for (int64_t c = 0; c < channels; ++c) {
    im->scale[c] = (float)(1.0 / (255.0 * (double)std[c]));
    im->shift[c] = (float)(-(double)mean[c] / (double)std[c]);
  }
  return FASTMIX_SUCCESS;
}

fastmix_status u8_entry(const char *func, const fastmix_device &device,
                        const fastmix_mix_config *config, const Seed &seed,
                        const fastmix_layout &in_layout, const uint8_t *x, int64_t batch,
                        int64_t channels, int64_t height, int64_t width, int64_t x_stride,
                        const float *mean, const float *std, const fastmix_dtype &dtype,
                        const fastmix_layout &out_layout, void *out, int64_t out_stride,
                        float *lambdas, int64_t *partners, int32_t *boxes, void *stream) {
  FM_TRY(check_draw(func, device, config, batch, height, width, lambdas, partners, boxes));
  U8Args a{};
  FM_TRY(check_u8(func, in_layout, x, batch, channels, height, width, x_stride, mean, std, dtype,
                  out_layout, out, out_stride, &a.images));
  if (seed.kind == Seed::kMemory) {
    const uint64_t x_bytes = batch == 0 ? 0
                                        : (uint64_t)(batch - 1) * (uint64_t)x_stride +
                                              (uint64_t)(channels * height * width);
    FM_TRY(check_seed_offset(func, seed.ptr, batch, lambdas, partners, x, nullptr, x_bytes, boxes));
    const uint64_t out_bytes = batch == 0 ? 0
                                          : ((uint64_t)(batch - 1) * (uint64_t)out_stride +
                                             (uint64_t)(channels * height * width)) *
                                                dtype_size(dtype);
    FM_CHECK(!overlaps(seed.ptr, 16, out, out_bytes), "%s: seed_offset overlaps out", func);
  }
  a.func = func;
  a.draw = CutmixSampleArgs{func, *config, seed, batch, height, width, lambdas, partners, boxes};
  return run(device, cpu_cutmix_u8, cuda_cutmix_u8, a, stream);
}

}  // namespace

extern "C" {

fastmix_status fastmix_cutmix_apply_u8(fastmix_device device, fastmix_layout in_layout,
                                       const uint8_t *x, int64_t batch, int64_t channels,
                                       int64_t height, int64_t width, int64_t x_stride,
                                       const float *mean, const float *std, fastmix_dtype dtype,
                                       fastmix_layout out_layout, void *out, int64_t out_stride,
                                       const float *lambdas, const int64_t *partners,
                                       const int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix_apply_u8";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    U8ApplyArgs a{};
    FM_TRY(check_u8(func, in_layout, x, batch, channels, height, width, x_stride, mean, std, dtype,
                    out_layout, out, out_stride, &a.images));
    FM_TRY(check_lambdas_partners(func, lambdas, partners));
    FM_TRY(check_array(func, "boxes", boxes));
    a.func = func, a.lambdas = lambdas, a.partners = partners, a.boxes = boxes;
    return run(device, cpu_cutmix_apply_u8, cuda_cutmix_apply_u8, a, stream);
  });
}

fastmix_status fastmix_cutmix_u8(fastmix_device device, const fastmix_mix_config *config,
                                 uint64_t seed, uint64_t offset, fastmix_layout in_layout,
                                 const uint8_t *x, int64_t batch, int64_t channels, int64_t height,
                                 int64_t width, int64_t x_stride, const float *mean,
                                 const float *std, fastmix_dtype dtype, fastmix_layout out_layout,
                                 void *out, int64_t out_stride, float *lambdas, int64_t *partners,
                                 int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix_u8";
  return guarded(func, [&]() -> fastmix_status {
    return u8_entry(func, device, config, Seed::value(seed, offset), in_layout, x, batch, channels,
                    height, width, x_stride, mean, std, dtype, out_layout, out, out_stride, lambdas,
                    partners, boxes, stream);
  });
}

fastmix_status fastmix_cutmix_u8_device_seed(
    fastmix_device device, const fastmix_mix_config *config, uint64_t *seed_offset,
    uint64_t offset_increment, fastmix_layout in_layout, const uint8_t *x, int64_t batch,
    int64_t channels, int64_t height, int64_t width, int64_t x_stride, const float *mean,
    const float *std, fastmix_dtype dtype, fastmix_layout out_layout, void *out, int64_t out_stride,
    float *lambdas, int64_t *partners, int32_t *boxes, void *stream) {
  static const char *func = "fastmix_cutmix_u8_device_seed";
  return guarded(func, [&]() -> fastmix_status {
    return u8_entry(func, device, config, Seed::memory(seed_offset, offset_increment), in_layout, x,
                    batch, channels, height, width, x_stride, mean, std, dtype, out_layout, out,
                    out_stride, lambdas, partners, boxes, stream);
  });
}

}  // extern "C"
