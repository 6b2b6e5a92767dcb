// Host-side helpers of the CUDA launchers (kernels/*.cu): the current device,
// pointer checks and launch-error reporting, so that every launcher checks
// devices and pointers the same way.  host/backend.hpp, the interface the
// launchers implement, is the only header of host/ that kernels/ includes.
#pragma once

#include "../host/backend.hpp"
#include "math/common.cuh"

#include <cuda_runtime.h>

#include <initializer_list>
#include <mutex>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fm {

// Threads per block of the image kernels (blend, mixup, CutMix, uint8 input).
constexpr int kThreads = 256;

// The 16-byte vector every kernel moves where alignment allows: float32 as
// float4, so that the loaded registers are the operands; the 16-bit types
// as uint4, unpacked per element.
constexpr int kVecBytes = 16;
template <class T>
struct Vec16 {
  using type = uint4;
};
template <>
struct Vec16<f32> {
  using type = float4;
};

// A failed runtime call of this fastmix call: FASTMIX_ERROR_CUDA with the
// runtime's message.  The runtime's last-error slot is read back so that the
// failure, now reported, is not found again by a later check (a sticky error,
// which breaks the context, stays whatever is done).
inline fastmix_status cuda_error(const char *func, cudaError_t err) {
  (void)cudaGetLastError();
  return fail(FASTMIX_ERROR_CUDA, "%s: %s (%s)", func, cudaGetErrorName(err),
              cudaGetErrorString(err));
}

struct Device {
  int id, sms;
  int smem_optin;     // dynamic shared memory one block may opt in to
  int smem_per_sm;    // shared memory of one SM, shared by its blocks
  int smem_reserved;  // taken from the SM's shared memory by every block
  int l2_bytes;       // the L2 cache
  // The dynamic shared memory one block may take while two fit on an SM
  // (each also costs the SM its reserved shared memory), at most what one
  // block may opt in to.
  int64_t smem_half() const {
    const int64_t half = (int64_t)smem_per_sm / 2 - smem_reserved;
    return half < smem_optin ? half : smem_optin;
  }
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
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&dev->smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                 dev->id);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&dev->smem_reserved, cudaDevAttrReservedSharedMemoryPerBlock,
                                 dev->id);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&dev->l2_bytes, cudaDevAttrL2CacheSize, dev->id);
  return err == cudaSuccess ? FASTMIX_SUCCESS : cuda_error(func, err);
}

// A pointer the current device can dereference: device memory of this device,
// managed memory, or mapped host memory.  Plain host memory is refused with a
// clear message instead of an illegal-address fault later.
inline fastmix_status check_pointer(const char *func, const char *name, const void *ptr,
                                    const Device &dev) {
  cudaPointerAttributes attr;
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  // Only cudaErrorInvalidValue speaks of the pointer; anything else (a
  // context broken by an earlier fault, say) is the runtime's own failure.
  if (err == cudaErrorInvalidValue) {
    (void)cudaGetLastError();
    return fail(FASTMIX_ERROR_INVALID_VALUE, "%s: %s is not a pointer CUDA knows (%s)", func, name,
                cudaGetErrorString(err));
  }
  if (err != cudaSuccess) return cuda_error(func, err);
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

// A pointer an entry point hands to the device, by its parameter's name;
// `optional`: the call may pass NULL (nothing is read there), which is then
// not checked.
struct DevicePtr {
  const char *name;
  const void *ptr;
  bool optional = false;
};

// The pointer checks of an entry point, in the order of its parameters: the
// first pointer the current device cannot dereference fails the call.
inline fastmix_status check_pointers(const char *func, const Device &dev,
                                     std::initializer_list<DevicePtr> ptrs) {
  for (const DevicePtr &p : ptrs)
    if (p.ptr || !p.optional) FM_TRY(check_pointer(func, p.name, p.ptr, dev));
  return FASTMIX_SUCCESS;
}

// A seed in device memory, or NULL for a seed given by value.
inline const uint64_t *seed_pointer(const Seed &s) {
  return s.kind == Seed::kMemory ? s.ptr : nullptr;
}

// How many blocks of `kernel` with `threads` threads and `smem` bytes of
// dynamic shared memory run at once on one SM (at least 1).
inline fastmix_status blocks_per_sm(const char *func, const void *kernel, int threads, size_t smem,
                                    int *blocks) {
  const cudaError_t err =
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, kernel, threads, smem);
  if (err != cudaSuccess) return cuda_error(func, err);
  if (*blocks < 1) *blocks = 1;
  return FASTMIX_SUCCESS;
}

// Lets `kernel` launch with `smem` bytes of dynamic shared memory.  Beyond the
// 48 KiB every kernel may take, the limit is raised once per kernel and
// device, always to the same value (the device's opt-in maximum less the
// kernel's static shared memory: the two together may not exceed it), so
// that a call from another thread never lowers it under a launch that needs
// more.
inline fastmix_status allow_smem(const char *func, const void *kernel, const Device &dev,
                                 int64_t smem) {
  if (smem <= 48 * 1024) return FASTMIX_SUCCESS;
  static std::mutex mutex;
  static std::set<std::pair<const void *, int>> done;
  std::lock_guard<std::mutex> lock(mutex);
  if (done.count({kernel, dev.id})) return FASTMIX_SUCCESS;
  cudaFuncAttributes attr;
  cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  if (err == cudaSuccess)
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               dev.smem_optin - (int)attr.sharedSizeBytes);
  if (err != cudaSuccess) return cuda_error(func, err);
  done.insert({kernel, dev.id});
  return FASTMIX_SUCCESS;
}

// How many blocks of `kernel` (`threads` threads, `smem` bytes of dynamic
// shared memory, allowed beyond 48 KiB) are resident at once on `dev`: one
// wave.
template <class Kernel>
fastmix_status wave_blocks(const char *func, const Device &dev, Kernel kernel, int threads,
                           int64_t smem, int64_t *wave) {
  const void *k = reinterpret_cast<const void *>(kernel);
  FM_TRY(allow_smem(func, k, dev, smem));
  int per_sm = 0;
  FM_TRY(blocks_per_sm(func, k, threads, (size_t)smem, &per_sm));
  *wave = (int64_t)dev.sms * per_sm;
  return FASTMIX_SUCCESS;
}

// The grid of a kernel whose blocks stride over `items` work items: one
// block per item, at most one wave (wave_blocks), so that every block is in
// flight from the start.
template <class Kernel>
fastmix_status one_wave(const char *func, const Device &dev, Kernel kernel, int threads,
                        int64_t smem, int64_t items, unsigned *grid) {
  int64_t wave = 0;
  FM_TRY(wave_blocks(func, dev, kernel, threads, smem, &wave));
  *grid = (unsigned)(items < wave ? items : wave);
  return FASTMIX_SUCCESS;
}

// The grid of a draw kernel with one thread per sample of n in a
// grid-stride loop: at most 16 blocks of kThreads per SM.
inline unsigned draw_grid(const Device &dev, int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads, most = (int64_t)dev.sms * 16;
  return (unsigned)(blocks < most ? blocks : most);
}

template <class Tuple, size_t... I>
fastmix_status launch_tuple(const char *func, const void *kernel, unsigned grid, unsigned block,
                            size_t smem, cudaStream_t stream, Tuple &params,
                            std::index_sequence<I...>) {
  void *args[] = {static_cast<void *>(&std::get<I>(params))...};
  const cudaError_t err = cudaLaunchKernel(kernel, dim3(grid), dim3(block), args, smem, stream);
  return err == cudaSuccess ? FASTMIX_SUCCESS : cuda_error(func, err);
}

// kernel<<<grid, block, smem, stream>>>(args...), reporting the launch's own
// error: cudaLaunchKernel returns it, so an error that an earlier runtime call
// left in the last-error slot (the caller's) is neither taken for the
// launch's nor cleared.
template <class... P, class... A>
fastmix_status launch(const char *func, void (*kernel)(P...), unsigned grid, unsigned block,
                      size_t smem, cudaStream_t stream, const A &...args) {
  static_assert(sizeof...(P) == sizeof...(A), "one argument per kernel parameter");
  std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(args)...);
  return launch_tuple(func, reinterpret_cast<const void *>(kernel), grid, block, smem, stream,
                      params, std::index_sequence_for<P...>{});
}

// The increment of the device-seed calls: queued after the drawing kernel on
// the same stream, so stream order (also inside a graph) makes it race-free.
// (A template, so that a file that never launches it compiles no copy.)
template <int = 0>
__global__ void advance_offset_kernel(uint64_t *seed_offset, uint64_t increment) {
  seed_offset[1] += increment;
}

// After a draw from a seed in memory: the increment, queued on the same
// stream so that it runs after the drawing kernel has read the offset.
inline fastmix_status advance_offset(const char *func, const Seed &seed, cudaStream_t stream) {
  if (seed.kind != Seed::kMemory || seed.increment == 0) return FASTMIX_SUCCESS;
  return launch(func, advance_offset_kernel<>, 1, 1, 0, stream, seed.ptr, seed.increment);
}

// The CutMix draw kernel's launcher (kernels/cutmix.cu), which the uint8
// input path (kernels/input.cu) draws with too.
fastmix_status launch_cutmix_draw(const CutmixSampleArgs &a, const Device &dev,
                                  cudaStream_t stream);

// The pointers of a CutMix apply (fastmix_cutmix_apply and _apply_u8, and
// the fused forms with the draw's seed_offset, NULL for a seed by value).
inline fastmix_status check_apply_pointers(const char *func, const Device &dev, const void *x,
                                           const void *out, const float *lambdas,
                                           const int64_t *partners, const int32_t *boxes,
                                           const uint64_t *seed_offset = nullptr) {
  return check_pointers(func, dev,
                        {{"seed_offset", seed_offset, true},
                         {"x", x},
                         {"out", out},
                         {"lambdas", lambdas},
                         {"partners", partners},
                         {"boxes", boxes}});
}

// A CutMix draw and then an apply of it to images x -> out (fastmix_cutmix,
// fastmix_cutmix_u8 and their device-seed forms): the pointers of both
// checked first, then the draw, apply(dev, stream) and the seed's advance.
template <class Apply>
fastmix_status cutmix_draw_then(const char *func, const CutmixSampleArgs &d, const void *x,
                                const void *out, void *stream, const Apply &apply) {
  Device dev;
  FM_TRY(current_device(func, &dev));
  FM_TRY(check_apply_pointers(func, dev, x, out, d.lambdas, d.partners, d.boxes,
                              seed_pointer(d.seed)));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  FM_TRY(launch_cutmix_draw(d, dev, s));
  FM_TRY(apply(dev, s));
  return advance_offset(func, d.seed, s);
}

}  // namespace fm
