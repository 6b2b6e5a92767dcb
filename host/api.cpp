// The C ABI: argument validation, error reporting and dispatch to the CPU
// backend or the CUDA launchers.  Every entry point checks all of its
// arguments before it touches any output, so a failed call writes nothing.
#include "validate.hpp"

#include <cstdarg>
#include <cstdio>

namespace fm {

namespace {
thread_local char g_last_error[512] = "";
}

fastmix_status fail(fastmix_status status, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(g_last_error, sizeof g_last_error, fmt, args);
  va_end(args);
  return status;
}

namespace {

// fastmix_mixup and its device-seed form: the images checked after the
// draw's arguments, a seed in memory then against every buffer, and the
// run.  The enums by reference: a C caller may pass any int, so they are
// read through their bytes by the checks, never loaded as the enum type.
fastmix_status mixup_entry(const char *func, const fastmix_device &device,
                           const fastmix_dtype &dtype, float alpha, int fold,
                           const fastmix_pairing &pairing, const Seed &seed, const void *x,
                           void *out, int64_t batch, int64_t sample_elems, int64_t sample_stride,
                           float *lambdas, int64_t *partners, void *stream) {
  FM_TRY(check_sample_args(func, device, alpha, pairing, batch, lambdas, partners));
  FM_TRY(check_dtype(func, dtype));
  FM_TRY(check_images(func, dtype, x, out, batch, sample_elems, sample_stride));
  const Images images{dtype, x, out, batch, sample_elems, sample_stride};
  if (seed.kind == Seed::kMemory)
    FM_TRY(check_seed_offset(func, seed.ptr, batch, lambdas, partners, x, out, image_span(images)));
  const Draw draw{alpha, fold, pairing, seed};
  return run(device, cpu_mixup, cuda_mixup, MixupArgs{func, draw, images, lambdas, partners},
             stream);
}

}  // namespace

}  // namespace fm

using namespace fm;

extern "C" {

const char *fastmix_status_string(fastmix_status status) {
  switch (
      enum_int(status)) {  // any int from C: not a load of the enum (UB in C++ when out of range)
    case FASTMIX_SUCCESS:
      return "FASTMIX_SUCCESS: no error";
    case FASTMIX_ERROR_INVALID_VALUE:
      return "FASTMIX_ERROR_INVALID_VALUE: an argument is invalid";
    case FASTMIX_ERROR_NOT_SUPPORTED:
      return "FASTMIX_ERROR_NOT_SUPPORTED: not supported by this backend";
    case FASTMIX_ERROR_NO_DEVICE:
      return "FASTMIX_ERROR_NO_DEVICE: no usable CUDA device";
    case FASTMIX_ERROR_CUDA:
      return "FASTMIX_ERROR_CUDA: the CUDA runtime reported an error";
    case FASTMIX_ERROR_LABEL_OUT_OF_RANGE:
      return "FASTMIX_ERROR_LABEL_OUT_OF_RANGE: a label is outside [0, classes)";
    case FASTMIX_ERROR_INTERNAL:
      return "FASTMIX_ERROR_INTERNAL: internal error in fastmix";
  }
  return "unknown fastmix_status";
}

const char *fastmix_last_error(void) { return g_last_error; }

int fastmix_version(void) { return FASTMIX_VERSION; }

int fastmix_cuda_device_count(void) { return cuda_device_count(); }

fastmix_status fastmix_sample(fastmix_device device, float alpha, int fold, fastmix_pairing pairing,
                              uint64_t seed, uint64_t offset, int64_t batch, float *lambdas,
                              int64_t *partners, void *stream) {
  static const char *func = "fastmix_sample";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_sample_args(func, device, alpha, pairing, batch, lambdas, partners));
    const Draw draw{alpha, fold, pairing, Seed::value(seed, offset)};
    return run(device, cpu_sample, cuda_sample, SampleArgs{func, draw, batch, lambdas, partners},
               stream);
  });
}

fastmix_status fastmix_blend(fastmix_device device, fastmix_dtype dtype, const void *x, void *out,
                             int64_t batch, int64_t sample_elems, int64_t sample_stride,
                             const float *lambdas, const int64_t *partners, void *stream) {
  static const char *func = "fastmix_blend";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_device(func, device));
    FM_TRY(check_dtype(func, dtype));
    FM_TRY(check_batch(func, batch));
    FM_TRY(check_images(func, dtype, x, out, batch, sample_elems, sample_stride));
    FM_TRY(check_lambdas_partners(func, lambdas, partners));
    const Images images{dtype, x, out, batch, sample_elems, sample_stride};
    return run(device, cpu_blend, cuda_blend, BlendArgs{func, images, lambdas, partners}, stream);
  });
}

fastmix_status fastmix_mixup(fastmix_device device, fastmix_dtype dtype, float alpha, int fold,
                             fastmix_pairing pairing, uint64_t seed, uint64_t offset, const void *x,
                             void *out, int64_t batch, int64_t sample_elems, int64_t sample_stride,
                             float *lambdas, int64_t *partners, void *stream) {
  static const char *func = "fastmix_mixup";
  return guarded(func, [&]() -> fastmix_status {
    return mixup_entry(func, device, dtype, alpha, fold, pairing, Seed::value(seed, offset), x, out,
                       batch, sample_elems, sample_stride, lambdas, partners, stream);
  });
}

}  // extern "C"

// ---- seed and offset read from memory when the work runs ----------------------
extern "C" {

fastmix_status fastmix_sample_device_seed(fastmix_device device, float alpha, int fold,
                                          fastmix_pairing pairing, uint64_t *seed_offset,
                                          uint64_t offset_increment, int64_t batch, float *lambdas,
                                          int64_t *partners, void *stream) {
  static const char *func = "fastmix_sample_device_seed";
  return guarded(func, [&]() -> fastmix_status {
    FM_TRY(check_sample_args(func, device, alpha, pairing, batch, lambdas, partners));
    FM_TRY(check_seed_offset(func, seed_offset, batch, lambdas, partners, nullptr, nullptr, 0));
    const Draw draw{alpha, fold, pairing, Seed::memory(seed_offset, offset_increment)};
    return run(device, cpu_sample, cuda_sample, SampleArgs{func, draw, batch, lambdas, partners},
               stream);
  });
}

fastmix_status fastmix_mixup_device_seed(fastmix_device device, fastmix_dtype dtype, float alpha,
                                         int fold, fastmix_pairing pairing, uint64_t *seed_offset,
                                         uint64_t offset_increment, const void *x, void *out,
                                         int64_t batch, int64_t sample_elems, int64_t sample_stride,
                                         float *lambdas, int64_t *partners, void *stream) {
  static const char *func = "fastmix_mixup_device_seed";
  return guarded(func, [&]() -> fastmix_status {
    return mixup_entry(func, device, dtype, alpha, fold, pairing,
                       Seed::memory(seed_offset, offset_increment), x, out, batch, sample_elems,
                       sample_stride, lambdas, partners, stream);
  });
}

}  // extern "C"
