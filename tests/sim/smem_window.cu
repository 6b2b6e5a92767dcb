// A block with more than 96 KiB of dynamic shared memory, written and read
// through generic pointers, the way fastmix's loss kernel caches a long row
// of logits.  GPGPU-Sim maps each SM's shared memory into the generic
// address space through a window of 96 KiB (Volta's most), and a generic
// access past it stopped the simulator (generic_to_shared: assertion
// `isspace_shared(smid, addr)' failed); tests/sim/patches/shared-window.patch
// widens the window to 228 KiB.  bench/sim_timing.sh runs this first on its
// cycle model (164 KiB of shared memory per SM, the A100's), where the
// launchers give a block up to the A100's 163 KiB; the functional model of
// the simulated suite has 64 KiB per SM and cannot launch such a block.
// Prints "smem_window: passed" and exits 0, or says what differed.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

constexpr int kThreads = 256;
constexpr int kBytes = 120 * 1024;
constexpr int kWords = kBytes / 4;

// The shared array as a generic pointer the compiler cannot trace back to
// shared memory, so that its accesses stay generic (ld/st without .shared).
__device__ __forceinline__ unsigned *generic(unsigned *shared) {
  unsigned *g;
  asm volatile("cvta.shared.u64 %0, %1;"
               : "=l"(g)
               : "l"((uint64_t)__cvta_generic_to_shared(shared)));
  return g;
}

__global__ void window_kernel(unsigned *out) {
  extern __shared__ unsigned words[];
  unsigned *const w = generic(words);
  for (int i = threadIdx.x; i < kWords; i += kThreads) w[i] = 2654435761u * (unsigned)i;
  __syncthreads();
  // Each thread reads its neighbour's words back: the last ones lie past
  // 96 KiB.
  for (int i = threadIdx.x; i < kWords; i += kThreads) {
    const int j = i + 1 < kWords ? i + 1 : 0;
    out[i] = w[j];
  }
}

}  // namespace

int main() {
  unsigned *out = nullptr;
  if (cudaMalloc(&out, kBytes) != cudaSuccess) return std::printf("smem_window: cudaMalloc\n"), 1;
  cudaFuncSetAttribute(window_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
  window_kernel<<<1, kThreads, kBytes>>>(out);
  const cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) return std::printf("smem_window: %s\n", cudaGetErrorString(err)), 1;
  std::vector<unsigned> host(kWords);
  cudaMemcpy(host.data(), out, kBytes, cudaMemcpyDeviceToHost);
  for (int i = 0; i < kWords; ++i) {
    const int j = i + 1 < kWords ? i + 1 : 0;
    if (host[i] != 2654435761u * (unsigned)j)
      return std::printf("smem_window: word %d is %u, not %u\n", i, host[i],
                         2654435761u * (unsigned)j),
             1;
  }
  std::printf("smem_window: passed\n");
  return 0;
}
