/* Preloaded into the simulated test processes (tests/sim/case.sh): stand-ins
 * for two runtime calls that GPGPU-Sim gets wrong.
 *
 * GPGPU-Sim's cudaLaunchKernel ignores its grid, block, shared-memory and
 * stream arguments: it launches with the configuration that a <<<...>>>
 * launch pushed just before (__cudaPushCallConfiguration), and a direct call
 * aborts the process with "empty launch stack".  fastmix launches through
 * cudaLaunchKernel (to receive the launch's own error), so this stand-in
 * pushes the call's configuration first, as a <<<...>>> launch would.
 *
 * Its cudaDeviceGetAttribute aborts the process on attributes it does not
 * know, among them cudaDevAttrReservedSharedMemoryPerBlock.  A block on the
 * simulator gets all the shared memory it asks for, none set aside for the
 * system (sm_80 hardware sets aside 1 KiB per block; the simulator does not
 * model it): 0. */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <dlfcn.h>

typedef unsigned (*push_fn)(dim3, dim3, size_t, cudaStream_t);
typedef cudaError_t (*launch_fn)(const void *, dim3, dim3, void **, size_t, cudaStream_t);

cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block, void **args,
                             size_t shared_mem, cudaStream_t stream) {
  push_fn push = (push_fn)dlsym(RTLD_NEXT, "__cudaPushCallConfiguration");
  launch_fn launch = (launch_fn)dlsym(RTLD_NEXT, "cudaLaunchKernel");
  if (!push || !launch) return cudaErrorNotSupported;
  push(grid, block, shared_mem, stream);
  return launch(func, grid, block, args, shared_mem, stream);
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
  typedef cudaError_t (*attr_fn)(int *, enum cudaDeviceAttr, int);
  attr_fn real = (attr_fn)dlsym(RTLD_NEXT, "cudaDeviceGetAttribute");
  if (attr == cudaDevAttrReservedSharedMemoryPerBlock) {
    *value = 0;
    return cudaSuccess;
  }
  return real ? real(value, attr, device) : cudaErrorNotSupported;
}
