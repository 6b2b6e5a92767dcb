// The C ABI of the mixup cross-entropy and the soft targets (issue 3).
// Placeholder until the implementation lands.
#include "validate.hpp"

using namespace fm;

extern "C" {

fastmix_status fastmix_cross_entropy(fastmix_device, fastmix_dtype, const void *, int64_t, int64_t,
                                     int64_t, const int64_t *, const float *, const int64_t *,
                                     fastmix_reduction, float, int64_t, float *, void *, float,
                                     void *) {
  return fail(FASTMIX_ERROR_NOT_SUPPORTED, "fastmix_cross_entropy: not implemented yet");
}

fastmix_status fastmix_soft_targets(fastmix_device, fastmix_dtype, const int64_t *, const float *,
                                    const int64_t *, int64_t, int64_t, float, void *, int64_t,
                                    void *) {
  return fail(FASTMIX_ERROR_NOT_SUPPORTED, "fastmix_soft_targets: not implemented yet");
}

}  // extern "C"
