// Host-side helpers of the CUDA launchers (kernels/*.cu): the current device,
// pointer checks and launch-error reporting, so that every launcher checks
// devices and pointers the same way.  host/backend.hpp, the interface the
// launchers implement, is the only header of host/ that kernels/ includes.
#pragma once

#include "../host/backend.hpp"

#include <cuda_runtime.h>

namespace fm {

inline fastmix_status cuda_error(const char *func, cudaError_t err) {
  return fail(FASTMIX_ERROR_CUDA, "%s: %s (%s)", func, cudaGetErrorName(err),
              cudaGetErrorString(err));
}

struct Device {
  int id, sms, smem_optin;
};

inline fastmix_status current_device(const char *func, Device *dev) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return fail(FASTMIX_ERROR_NO_DEVICE,
                "%s: FASTMIX_DEVICE_CUDA asked for, but no usable CUDA device is present", func);
  }
  cudaError_t err = cudaGetDevice(&dev->id);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&dev->sms, cudaDevAttrMultiProcessorCount, dev->id);
  if (err == cudaSuccess)
    err =
        cudaDeviceGetAttribute(&dev->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev->id);
  return err == cudaSuccess ? FASTMIX_SUCCESS : cuda_error(func, err);
}

// A pointer the current device can dereference: device memory of this device,
// managed memory, or mapped host memory.  Plain host memory is refused with a
// clear message instead of an illegal-address fault later.
inline fastmix_status check_pointer(const char *func, const char *name, const void *ptr,
                                    const Device &dev) {
  cudaPointerAttributes attr;
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return fail(FASTMIX_ERROR_INVALID_VALUE, "%s: %s is not a pointer CUDA knows (%s)", func, name,
                cudaGetErrorString(err));
  }
  if (attr.type == cudaMemoryTypeUnregistered ||
      (attr.type == cudaMemoryTypeHost && attr.devicePointer == nullptr))
    return fail(FASTMIX_ERROR_INVALID_VALUE,
                "%s: %s points to host memory, but FASTMIX_DEVICE_CUDA needs device memory", func,
                name);
  if (attr.type == cudaMemoryTypeDevice && attr.device != dev.id)
    return fail(FASTMIX_ERROR_INVALID_VALUE,
                "%s: %s lives on CUDA device %d, but the current device is %d", func, name,
                attr.device, dev.id);
  return FASTMIX_SUCCESS;
}

inline fastmix_status launched(const char *func) {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? FASTMIX_SUCCESS : cuda_error(func, err);
}

}  // namespace fm
