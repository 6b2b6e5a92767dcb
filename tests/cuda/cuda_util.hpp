// Device buffers and CUDA error checks for the CUDA tests.
#pragma once

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include "../device.hpp"

#include <fastmix/fastmix.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace fmt_test {

// Device memory (or managed memory) whose data() lies `misalign` bytes past
// cudaMalloc's 256-byte alignment; poisoned (0xff, NaN in every dtype) on
// creation.
class DeviceBytes {
 public:
  explicit DeviceBytes(size_t size, size_t misalign = 0, bool managed = false) : size_(size) {
    void *p = nullptr;
    FMT_CUDA(managed ? cudaMallocManaged(&p, size + 256) : cudaMalloc(&p, size + 256));
    base_ = p;
    ptr_ = static_cast<unsigned char *>(p) + misalign;
    poison();
  }
  ~DeviceBytes() {
    if (base_) (void)cudaFree(base_);
  }
  DeviceBytes(const DeviceBytes &) = delete;
  DeviceBytes &operator=(const DeviceBytes &) = delete;
  DeviceBytes(DeviceBytes &&o) noexcept
      : base_(std::exchange(o.base_, nullptr)), ptr_(o.ptr_), size_(o.size_) {}

  unsigned char *data() { return ptr_; }
  size_t size() const { return size_; }
  template <class T>
  T *as() {
    return reinterpret_cast<T *>(ptr_);
  }
  void poison() {
    FMT_CUDA(cudaMemset(ptr_, kPoison, size_));
    FMT_CUDA(cudaDeviceSynchronize());
  }
  void upload(const void *src) { FMT_CUDA(cudaMemcpy(ptr_, src, size_, cudaMemcpyHostToDevice)); }
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> h(size_);
    FMT_CUDA(cudaMemcpy(h.data(), ptr_, size_, cudaMemcpyDeviceToHost));
    return h;
  }
  template <class T>
  std::vector<T> download_as() const {
    std::vector<T> h(size_ / sizeof(T));
    FMT_CUDA(cudaMemcpy(h.data(), ptr_, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  void *base_ = nullptr;
  unsigned char *ptr_ = nullptr;
  size_t size_ = 0;
};

template <class T>
DeviceBytes to_device(const std::vector<T> &v) {
  DeviceBytes d(v.size() * sizeof(T));
  if (!v.empty()) d.upload(v.data());
  return d;
}

// After a fastmix call on the GPU: the queue ran without a (sticky) error.
inline void sync_ok() { finish(FASTMIX_DEVICE_CUDA); }

// Captures `call` on `stream` into an executable graph; REQUIREs success.
inline cudaGraphExec_t capture(cudaStream_t stream, const std::function<fastmix_status()> &call) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  FMT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const fastmix_status st = call();
  const std::string msg = fastmix_last_error();
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  INFO("during capture: " << msg);
  REQUIRE(st == FASTMIX_SUCCESS);
  FMT_CUDA(end);
  FMT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  FMT_CUDA(cudaGraphDestroy(graph));
  return exec;
}

}  // namespace fmt_test
