// The CUDA launchers of a build without the CUDA backend
// (FASTMIX_ENABLE_CUDA=OFF): every CUDA call reports that there is no device.
#include "internal.hpp"

namespace fm {

int cuda_device_count() { return 0; }

fastmix_status cuda_sample(float, int, fastmix_pairing, uint64_t, uint64_t, int64_t, float *,
                           int64_t *, void *) {
  return fail(FASTMIX_ERROR_NO_DEVICE,
              "fastmix_sample: this libfastmix was built without the CUDA backend");
}

fastmix_status cuda_blend(fastmix_dtype, const void *, void *, int64_t, int64_t, int64_t, float *,
                          int64_t *, const MixupDraw *draw, void *) {
  return fail(FASTMIX_ERROR_NO_DEVICE, "%s: this libfastmix was built without the CUDA backend",
              draw ? "fastmix_mixup" : "fastmix_blend");
}

fastmix_status cuda_cross_entropy(const CeArgs &, void *) {
  return fail(FASTMIX_ERROR_NO_DEVICE,
              "fastmix_cross_entropy: this libfastmix was built without the CUDA backend");
}

fastmix_status cuda_soft_targets(fastmix_dtype, const int64_t *, const float *, const int64_t *,
                                 int64_t, int64_t, float, void *, int64_t, void *) {
  return fail(FASTMIX_ERROR_NO_DEVICE,
              "fastmix_soft_targets: this libfastmix was built without the CUDA backend");
}

fastmix_status cuda_draw_device_seed(fastmix_dtype, float, int, fastmix_pairing, uint64_t *,
                                     uint64_t, const void *x, void *, int64_t, int64_t, int64_t,
                                     float *, int64_t *, void *) {
  return fail(FASTMIX_ERROR_NO_DEVICE, "%s: this libfastmix was built without the CUDA backend",
              x ? "fastmix_mixup_device_seed" : "fastmix_sample_device_seed");
}

}  // namespace fm
