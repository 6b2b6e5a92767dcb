// The CUDA backend of a build without it (FASTMIX_ENABLE_CUDA=OFF): every
// CUDA call reports, under the name of the entry point called, that there is
// no device.
#include "backend.hpp"

namespace fm {
namespace {

fastmix_status no_cuda(const char *func) {
  return fail(FASTMIX_ERROR_NO_DEVICE, "%s: this libfastmix was built without the CUDA backend",
              func);
}

}  // namespace

int cuda_device_count() { return 0; }

fastmix_status cuda_sample(const SampleArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_blend(const BlendArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_mixup(const MixupArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_loss(const LossArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_soft_targets(const SoftTargetsArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_cutmix_sample(const CutmixSampleArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_cutmix_apply(const CutmixApplyArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_cutmix(const CutmixArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_cutmix_apply_u8(const U8ApplyArgs &a, void *) { return no_cuda(a.func); }
fastmix_status cuda_cutmix_u8(const U8Args &a, void *) { return no_cuda(a.func); }

}  // namespace fm
