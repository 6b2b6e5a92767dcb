// The CUDA runtime queries of kernels/cuda_util.cuh that are functions of
// the backend interface (host/backend.hpp).
#include "cuda_util.cuh"

#include <cuda_runtime.h>

namespace fm {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace fm
