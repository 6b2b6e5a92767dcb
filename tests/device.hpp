// The devices a test run covers and buffers that live on any of them, so that
// one test body checks the CPU backend and the CUDA backend alike against the
// same float64 reference.
//
// A run covers the CPU always, and CUDA when a device is present (a GPU, or
// GPGPU-Sim under tests/sim/run.sh).  FASTMIX_TEST_DEVICES=cpu, =cuda or
// =cpu,cuda narrows that list; the simulator run uses cuda alone, since the
// CPU side of every case has already run in the plain suite.
// FASTMIX_TEST_SIMULATOR=1 (set by tests/sim/run.sh) makes cases choose
// the smaller sizes the simulator can afford (about 5-30 us per GPU thread):
// smaller, not fewer, so that every kernel path still runs.
#pragma once

#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#if FASTMIX_TEST_CUDA
#include <cuda_runtime.h>
#endif

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace fmt_test {

constexpr fastmix_device kCpu = FASTMIX_DEVICE_CPU;
constexpr fastmix_device kCuda = FASTMIX_DEVICE_CUDA;

inline const char *device_name(fastmix_device d) {
  return d == FASTMIX_DEVICE_CPU ? "cpu" : "cuda";
}

inline bool on_simulator() {
  const char *s = std::getenv("FASTMIX_TEST_SIMULATOR");
  return s && std::string(s) == "1";
}

// The devices to run each case on.  Asking for CUDA where there is none is
// a failure of the run, not a quiet skip.
inline const std::vector<fastmix_device> &test_devices() {
  static const std::vector<fastmix_device> devices = [] {
    const char *env = std::getenv("FASTMIX_TEST_DEVICES");
    const std::string want = env ? env : "";
    const bool cuda_present = fastmix_cuda_device_count() > 0;
    std::vector<fastmix_device> d;
    if (want.empty() || want.find("cpu") != std::string::npos) d.push_back(FASTMIX_DEVICE_CPU);
    if ((want.empty() && cuda_present) || want.find("cuda") != std::string::npos)
      d.push_back(FASTMIX_DEVICE_CUDA);
    return d;
  }();
  return devices;
}

#if FASTMIX_TEST_CUDA
inline void cuda_check(cudaError_t e, const char *what) {
  INFO(what << ": " << cudaGetErrorName(e) << " (" << cudaGetErrorString(e) << ")");
  REQUIRE(e == cudaSuccess);
}
#define FMT_CUDA(expr) ::fmt_test::cuda_check((expr), #expr)
#endif

// The opt-in shared memory per block of the CUDA device (64 KiB on the
// simulator, 227 KiB on an H100/H200), or 227 KiB without one: the sizes at
// which the CUDA kernels change strategy.
inline size_t smem_optin() {
#if FASTMIX_TEST_CUDA
  int dev = 0, bytes = 0;
  if (fastmix_cuda_device_count() > 0 && cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess &&
      bytes > 0)
    return (size_t)bytes;
#endif
  return 227 * 1024;
}

// The smallest batch whose out-of-place blend or CutMix takes the walk along
// the partner chains on the CUDA device (kernels/walk.cuh, walk_pays: samples
// of at least 4 KiB per SM, input and output together over the L2), a few
// elements more so that the samples have scalar edges; without a CUDA
// device, the simulator's figures (30 SMs, 3,000,000 bytes of L2).
inline Shape walk_shape(fastmix_dtype d) {
  int sms = 30, l2 = 3000000;
#if FASTMIX_TEST_CUDA
  int dev = 0;
  if (fastmix_cuda_device_count() > 0 && cudaGetDevice(&dev) == cudaSuccess) {
    FMT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    FMT_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  }
#endif
  const int64_t es = (int64_t)dtype_size(d), bytes = 4096 * (int64_t)sms;
  const int64_t elems = (bytes + es - 1) / es + 5;
  const int64_t batch = (int64_t)l2 / (2 * elems * es) + 2;
  return Shape{batch, elems, elems + 3};
}

// After a fastmix call on `d`: the work has finished, and on CUDA the queue
// ran without a (sticky) error.
inline void finish(fastmix_device d) {
#if FASTMIX_TEST_CUDA
  if (d == FASTMIX_DEVICE_CUDA) {
    FMT_CUDA(cudaDeviceSynchronize());
    FMT_CUDA(cudaGetLastError());
  }
#else
  (void)d;
#endif
}

// `size` bytes on device `d` whose data() lies `misalign` bytes past a
// 256-byte boundary, every byte set to `fill` (poison, NaN in every dtype, by
// default).  Host memory for the CPU, cudaMalloc'd memory for CUDA (or
// cudaMallocManaged'd, from Buffer::managed).
class Buffer {
 public:
  Buffer(fastmix_device d, size_t size, size_t misalign = 0, unsigned char fill = kPoison)
      : Buffer(d, size, misalign, fill, false) {}
  // CUDA managed memory, poisoned.
  static Buffer managed(size_t size) { return Buffer(FASTMIX_DEVICE_CUDA, size, 0, kPoison, true); }
  ~Buffer() {
#if FASTMIX_TEST_CUDA
    if (base_) (void)cudaFree(base_);
#endif
  }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept
      : dev_(o.dev_),
        host_(std::move(o.host_)),
        base_(std::exchange(o.base_, nullptr)),
        ptr_(o.ptr_),
        size_(o.size_) {}

  fastmix_device device() const { return dev_; }
  unsigned char *data() { return ptr_; }
  template <class T>
  T *as() {
    return reinterpret_cast<T *>(ptr_);
  }
  size_t size() const { return size_; }

  void upload(const void *src) { copy_in(src, size_); }
  std::vector<unsigned char> copy() const {
    std::vector<unsigned char> h(size_);
    copy_out(h.data(), size_);
    return h;
  }
  template <class T>
  std::vector<T> copy_as() const {
    std::vector<T> h(size_ / sizeof(T));
    copy_out(h.data(), h.size() * sizeof(T));
    return h;
  }
  void set(unsigned char fill) {
    if (size_ == 0) return;
    if (dev_ == FASTMIX_DEVICE_CPU) {
      std::memset(ptr_, fill, size_);
      return;
    }
#if FASTMIX_TEST_CUDA
    FMT_CUDA(cudaMemset(ptr_, fill, size_));
    FMT_CUDA(cudaDeviceSynchronize());
#endif
  }
  void poison() { set(kPoison); }

 private:
  Buffer(fastmix_device d, size_t size, size_t misalign, unsigned char fill, bool managed)
      : dev_(d), size_(size) {
    if (d == FASTMIX_DEVICE_CPU) {
      host_ = std::vector<unsigned char>(size + misalign + 256);
      const uintptr_t base = (uintptr_t)host_.data();
      ptr_ = host_.data() + (256 - base % 256) % 256 + misalign;
    } else {
#if FASTMIX_TEST_CUDA
      void *p = nullptr;
      FMT_CUDA(managed ? cudaMallocManaged(&p, size + misalign + 256)
                       : cudaMalloc(&p, size + misalign + 256));
      base_ = p;
      ptr_ = static_cast<unsigned char *>(p) + misalign;
#else
      (void)managed;
      FAIL("CUDA buffer asked for in a test build without CUDA");
#endif
    }
    set(fill);
  }
  void copy_in(const void *src, size_t n) { transfer(ptr_, src, n, true); }
  void copy_out(void *dst, size_t n) const { transfer(dst, ptr_, n, false); }
  // n bytes from src to dst, one of them host memory and the other this
  // buffer's (to_buffer: dst is the buffer).
  void transfer(void *dst, const void *src, size_t n, bool to_buffer) const {
    if (n == 0) return;
    if (dev_ == FASTMIX_DEVICE_CPU) {
      std::memcpy(dst, src, n);
      return;
    }
#if FASTMIX_TEST_CUDA
    FMT_CUDA(cudaMemcpy(dst, src, n, to_buffer ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
#else
    (void)to_buffer;
#endif
  }

  fastmix_device dev_;
  std::vector<unsigned char> host_;
  void *base_ = nullptr;
  unsigned char *ptr_ = nullptr;
  size_t size_ = 0;
};

// A buffer on `d` holding the elements of `v` (never of size 0: a call may
// not be handed NULL, so an empty vector still gets one poisoned element).
template <class T>
Buffer to_device(fastmix_device d, const std::vector<T> &v, size_t misalign = 0) {
  Buffer b(d, (v.empty() ? 1 : v.size()) * sizeof(T), misalign);
  if (!v.empty()) b.upload(v.data());
  return b;
}

// Whether two float vectors are bitwise equal (NaN payloads included).
inline bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         first_difference(a.data(), b.data(), a.size() * sizeof(float)) == -1;
}

// Checks that lambdas and partners drawn on some device are bitwise the CPU's
// draw for the same arguments: the contract every device's draw must meet.
inline void check_is_cpu_draw(const std::vector<float> &lam, const std::vector<int64_t> &par,
                              float alpha, int fold, fastmix_pairing pairing, uint64_t seed,
                              uint64_t offset) {
  const int64_t batch = (int64_t)lam.size();
  std::vector<float> cpu_lam((size_t)batch);
  std::vector<int64_t> cpu_par((size_t)batch);
  REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, pairing, seed, offset, batch,
                         cpu_lam.data(), cpu_par.data(), nullptr) == FASTMIX_SUCCESS);
  CHECK(same_bits(lam, cpu_lam));
  CHECK(par == cpu_par);
}

}  // namespace fmt_test
