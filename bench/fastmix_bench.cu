// fastmix-bench: every fastmix op against its byte floor, the machine's
// measured copy ceiling, and a naive multi-pass version written the way eager
// frameworks execute it, side by side in one run.
//
//   fastmix-bench [--device cpu|cuda] [--op NAME] [--quick] [--json PATH]
//
// For each case: median and min over timed repetitions after a warm-up (CUDA
// events on the GPU, a steady clock on the CPU), with the L2 flushed (GPU) or
// inputs rotated (CPU) between repetitions so that caches are not what is
// measured; the bytes the op must move at least; GB/s = those bytes over the
// median time; the ceiling measured in the same run, counting bytes read plus
// bytes written (a large device-to-device copy on the GPU; on the CPU a copy
// of each case's own bytes, timed the way the case runs: see cpu_copy) and
// the fraction of it reached.  Naive versions
// are timed on the same data and counted with the same (minimum) bytes, so
// their GB/s is an effective rate and the ratio is a plain time ratio.
#include <fastmix/fastmix.h>

#include "bench_util.hpp"

#include "../kernels/math/dtype.cuh"  // the library's one dtype_size

#include <cuda_runtime.h>
#include <omp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

const char *const bench::kProgram = "fastmix-bench";

namespace {

// ---- options and records ---------------------------------------------------
struct Options {
  bool cuda = false, quick = false;
  std::string op = "all", json;
};

struct Record {
  std::string op, device, dtype, shape, variant, mode;
  double median_us = 0, min_us = 0, bytes = 0, gbps = 0, ceiling_gbps = 0;
};

using bench::check;
using bench::check_cuda;
using bench::die;
using bench::dname;

// ---- memory and timing of one backend ---------------------------------------
struct Backend {
  bool cuda;
  void *flush = nullptr;  // GPU: a buffer twice the L2, rewritten before each repetition
  size_t flush_bytes = 0;
  cudaEvent_t e0{}, e1{};

  explicit Backend(bool use_cuda) : cuda(use_cuda) {
    if (!cuda) return;
    int dev = 0, l2 = 0;
    check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "L2 size");
    flush_bytes = 2 * (size_t)l2;
    check_cuda(cudaMalloc(&flush, flush_bytes), "cudaMalloc");
    check_cuda(cudaEventCreate(&e0), "event");
    check_cuda(cudaEventCreate(&e1), "event");
  }
  fastmix_device device() const { return cuda ? FASTMIX_DEVICE_CUDA : FASTMIX_DEVICE_CPU; }

  void *alloc(size_t bytes) {
    void *p = nullptr;
    if (cuda)
      check_cuda(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    else if (!(p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64)))
      die("alloc", "out of memory");
    return p;
  }
  void release(void *p) {
    if (cuda)
      cudaFree(p);
    else
      std::free(p);
  }
  void upload(void *dst, const void *src, size_t bytes) {
    if (cuda)
      check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
    else
      std::memcpy(dst, src, bytes);
  }

  // Median and min in microseconds of `reps` timed runs of fn(rep).
  std::pair<double, double> time(int reps, const std::function<void(int)> &fn) {
    fn(0);  // warm-up
    if (cuda) check_cuda(cudaDeviceSynchronize(), "warm-up");
    std::vector<double> us;
    for (int r = 0; r < reps; ++r) {
      if (cuda) {
        check_cuda(cudaMemsetAsync(flush, r & 0xff, flush_bytes), "flush");
        check_cuda(cudaEventRecord(e0), "event");
        fn(r + 1);
        check_cuda(cudaEventRecord(e1), "event");
        check_cuda(cudaEventSynchronize(e1), "event");
        float ms = 0;
        check_cuda(cudaEventElapsedTime(&ms, e0, e1), "event");
        us.push_back(1e3 * ms);
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        fn(r + 1);
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    }
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us.front()};
  }
};

// Random values in [-1, 1] of the storage type.
std::vector<unsigned char> random_data(fastmix_dtype d, size_t n, unsigned seed) {
  std::vector<unsigned char> v(n * fm::dtype_size(d));
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const float f = (float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (d == FASTMIX_FLOAT32)
      std::memcpy(&v[4 * i], &f, 4);
    else {
      const uint16_t h = d == FASTMIX_BFLOAT16
                             ? (uint16_t)(u >> 16)
                             : (uint16_t)(((u >> 16) & 0x8000u) |
                                          ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff));
      std::memcpy(&v[2 * i], &h, 2);
    }
  }
  return v;
}

// ---- naive versions: one pass per eager operation ---------------------------
__device__ __host__ inline float ld(fastmix_dtype d, const void *p, int64_t i) {
  if (d == FASTMIX_FLOAT32) return static_cast<const float *>(p)[i];
  const uint16_t h = static_cast<const uint16_t *>(p)[i];
  uint32_t u;
  if (d == FASTMIX_BFLOAT16)
    u = (uint32_t)h << 16;
  else {
    const uint32_t e = (h >> 10) & 0x1f;
    u = ((uint32_t)(h & 0x8000) << 16) |
        (e ? ((e + 112) << 23) | ((uint32_t)(h & 0x3ff) << 13) : 0);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
__device__ __host__ inline void st(fastmix_dtype d, void *p, int64_t i, float f) {
  if (d == FASTMIX_FLOAT32) {
    static_cast<float *>(p)[i] = f;
    return;
  }
  uint32_t u;
  memcpy(&u, &f, 4);
  uint16_t h;
  if (d == FASTMIX_BFLOAT16)
    h = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  else {
    const int e = (int)((u >> 23) & 0xff) - 112;
    h = (uint16_t)(((u >> 16) & 0x8000u) |
                   (e <= 0    ? 0
                    : e >= 31 ? 0x7c00u
                              : ((uint32_t)e << 10) | ((u >> 13) & 0x3ffu)));
  }
  static_cast<uint16_t *>(p)[i] = h;
}

// The eager passes: 0 gather rows, 1 out = lam * x, 2 tmp = (1 - lam) * tmp, 3 out = out + tmp.
__global__ void naive_pass_kernel(int pass, fastmix_dtype d, const void *x, void *tmp, void *out,
                                  int64_t n, int64_t elems, const float *lam, const int64_t *part) {
  const int64_t total = n * elems;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
       k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = k / elems, j = k % elems;
    switch (pass) {
      case 0:
        st(d, tmp, k, ld(d, x, part[i] * elems + j));
        break;
      case 1:
        st(d, out, k, lam[i] * ld(d, x, k));
        break;
      case 2:
        st(d, tmp, k, (1.0f - lam[i]) * ld(d, tmp, k));
        break;
      default:
        st(d, out, k, ld(d, out, k) + ld(d, tmp, k));
        break;
    }
  }
}

// The two-pass uint8 way (timm's FastCollateMixup, then its prefetcher):
// pass 0 mixes uint8 NHWC images into uint8 (rounded), pass 1 converts,
// normalizes and transposes them to NCHW `d`.
__host__ __device__ inline void naive_u8_element(int pass, fastmix_dtype d, const uint8_t *x,
                                                 uint8_t *tmp, void *out, int64_t k, int64_t c,
                                                 int64_t hw, int64_t elems, const float *lam,
                                                 const int64_t *part) {
  const int64_t i = k / elems, j = k % elems;
  if (pass == 0) {
    const float l = lam[i];
    tmp[k] = (uint8_t)(l * x[k] + (1.0f - l) * x[part[i] * elems + j] + 0.5f);
  } else {
    const int64_t ch = j % c, p = j / c;  // NHWC in, NCHW out
    st(d, out, i * elems + ch * hw + p, (tmp[k] / 255.0f - 0.45f) / 0.225f);
  }
}

__global__ void naive_u8_kernel(int pass, fastmix_dtype d, const uint8_t *x, uint8_t *tmp,
                                void *out, int64_t n, int64_t c, int64_t hw, const float *lam,
                                const int64_t *part) {
  const int64_t elems = c * hw, total = n * elems;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
       k += (int64_t)gridDim.x * blockDim.x)
    naive_u8_element(pass, d, x, tmp, out, k, c, hw, elems, lam, part);
}

void naive_u8(bool cuda, fastmix_dtype d, const uint8_t *x, uint8_t *tmp, void *out, int64_t n,
              int64_t c, int64_t hw, const float *lam, const int64_t *part) {
  for (int pass = 0; pass < 2; ++pass) {
    if (cuda) {
      naive_u8_kernel<<<1024, 256>>>(pass, d, x, tmp, out, n, c, hw, lam, part);
      check_cuda(cudaGetLastError(), "naive kernel");
      continue;
    }
    const int64_t total = n * c * hw;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < total; ++k)
      naive_u8_element(pass, d, x, tmp, out, k, c, hw, c * hw, lam, part);
  }
}

void naive_pass(bool cuda, int pass, fastmix_dtype d, const void *x, void *tmp, void *out,
                int64_t n, int64_t elems, const float *lam, const int64_t *part) {
  if (cuda) {
    naive_pass_kernel<<<1024, 256>>>(pass, d, x, tmp, out, n, elems, lam, part);
    check_cuda(cudaGetLastError(), "naive kernel");
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = i * elems, src = part[i] * elems;
    const float l = lam[i], m = 1.0f - l;
    switch (pass) {
      case 0:
        for (int64_t j = 0; j < elems; ++j) st(d, tmp, row + j, ld(d, x, src + j));
        break;
      case 1:
        for (int64_t j = 0; j < elems; ++j) st(d, out, row + j, l * ld(d, x, row + j));
        break;
      case 2:
        for (int64_t j = 0; j < elems; ++j) st(d, tmp, row + j, m * ld(d, tmp, row + j));
        break;
      default:
        for (int64_t j = 0; j < elems; ++j)
          st(d, out, row + j, ld(d, out, row + j) + ld(d, tmp, row + j));
        break;
    }
  }
}

// Eager cross-entropy, as autograd runs lam * nll(log_softmax(z), y1) +
// (1 - lam) * nll(log_softmax(z), y2) with a mean and its backward:
//   pass 0: logp = z - lse(z)                       (read z, write logp)
//   pass 1: g = 0; g[y1] -= w1 s; g[y2] -= w2 s     (write g)
//   pass 2: grad = g - exp(logp) * sum(g)           (read g and logp, write grad)
// The loss itself gathers two logp per row (negligible traffic).
__device__ __host__ inline void naive_ce_row(int pass, fastmix_dtype d, const void *z, void *logp,
                                             void *g, void *grad, int64_t i, int64_t classes,
                                             const int64_t *labels, const float *lam,
                                             const int64_t *part, float s) {
  const int64_t row = i * classes;
  if (pass == 0) {
    float m = -INFINITY, sum = 0;
    for (int64_t c = 0; c < classes; ++c) m = fmaxf(m, ld(d, z, row + c));
    for (int64_t c = 0; c < classes; ++c) sum += expf(ld(d, z, row + c) - m);
    const float lse = m + logf(sum);
    for (int64_t c = 0; c < classes; ++c)
      st(FASTMIX_FLOAT32, logp, row + c, ld(d, z, row + c) - lse);
  } else if (pass == 1) {
    for (int64_t c = 0; c < classes; ++c) st(FASTMIX_FLOAT32, g, row + c, 0.0f);
    const float l = lam[i];
    st(FASTMIX_FLOAT32, g, row + labels[i], ld(FASTMIX_FLOAT32, g, row + labels[i]) - l * s);
    const int64_t y2 = labels[part[i]];
    st(FASTMIX_FLOAT32, g, row + y2, ld(FASTMIX_FLOAT32, g, row + y2) - (1.0f - l) * s);
  } else {
    float gs = 0;
    for (int64_t c = 0; c < classes; ++c) gs += ld(FASTMIX_FLOAT32, g, row + c);
    for (int64_t c = 0; c < classes; ++c)
      st(d, grad, row + c,
         ld(FASTMIX_FLOAT32, g, row + c) - expf(ld(FASTMIX_FLOAT32, logp, row + c)) * gs);
  }
}

__global__ void naive_ce_kernel(int pass, fastmix_dtype d, const void *z, void *logp, void *g,
                                void *grad, int64_t n, int64_t classes, const int64_t *labels,
                                const float *lam, const int64_t *part, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    naive_ce_row(pass, d, z, logp, g, grad, i, classes, labels, lam, part, s);
}

// timm's CutMix: x_orig = x.clone(), then per sample
// x[i][:, y0:y1, x0:x1] = x_orig[p][:, y0:y1, x0:x1] (boxes of the host draw).
void naive_cutmix(bool cuda, const void *x, void *tmp, void *out, int64_t n, int64_t c, int64_t h,
                  int64_t w, size_t es, const std::vector<int64_t> &par,
                  const std::vector<int32_t> &box) {
  const size_t bytes = (size_t)(n * c * h * w) * es, row = (size_t)w * es;
  if (cuda) {
    check_cuda(cudaMemcpyAsync(tmp, x, bytes, cudaMemcpyDeviceToDevice), "clone");
    if (out != x) check_cuda(cudaMemcpyAsync(out, x, bytes, cudaMemcpyDeviceToDevice), "copy");
  } else {
    std::memcpy(tmp, x, bytes);
    if (out != x) std::memcpy(out, x, bytes);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int32_t *b = &box[(size_t)i * 4];
    if (b[0] < 0 || b[2] <= b[0] || b[3] <= b[1]) continue;
    const size_t wbytes = (size_t)(b[3] - b[1]) * es;
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t at = ((size_t)((i * c + ch) * h + b[0])) * row + (size_t)b[1] * es;
      const size_t from =
          ((size_t)((par[(size_t)i] * c + ch) * h + b[0])) * row + (size_t)b[1] * es;
      if (cuda) {
        check_cuda(cudaMemcpy2DAsync(static_cast<char *>(out) + at, row,
                                     static_cast<const char *>(tmp) + from, row, wbytes,
                                     (size_t)(b[2] - b[0]), cudaMemcpyDeviceToDevice),
                   "box copy");
      } else {
        for (int32_t y = b[0]; y < b[2]; ++y)
          std::memcpy(static_cast<char *>(out) + at + (size_t)(y - b[0]) * row,
                      static_cast<const char *>(tmp) + from + (size_t)(y - b[0]) * row, wbytes);
      }
    }
  }
}

void naive_ce(bool cuda, fastmix_dtype d, const void *z, void *logp, void *g, void *grad, int64_t n,
              int64_t classes, const int64_t *labels, const float *lam, const int64_t *part) {
  const float s = 1.0f / (float)n;
  for (int pass = 0; pass < 3; ++pass) {
    if (cuda) {
      // One thread per row: the way a naive row-wise kernel is written.
      naive_ce_kernel<<<(unsigned)((n + 127) / 128), 128>>>(pass, d, z, logp, g, grad, n, classes,
                                                            labels, lam, part, s);
      check_cuda(cudaGetLastError(), "naive kernel");
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i)
        naive_ce_row(pass, d, z, logp, g, grad, i, classes, labels, lam, part, s);
    }
  }
}

// ---- the ceiling --------------------------------------------------------------
// The CPU copy the ceilings time: `bytes` from src to dst (dst == src: in
// place) the way the blend moves them, so that blend time / copy time
// compares like with like:
//  - the same threads: all OpenMP threads, a static split of the range, as
//    the blend's `omp for schedule(static)`, and like the library's CPU
//    loops (host/cpu_mixup.cpp, host/cpu_cross_entropy.cpp) only when the
//    case has more than kParallelGrain elements, one thread below;
//  - ordinary 16-byte loads and stores in a loop, as the blend's vector
//    loops; not memcpy, which for large blocks switches to non-temporal
//    stores (or `rep movsb`) that need not read the destination's lines
//    first, as every store of the blend does, and which ran 25-35% slower
//    than this loop on the 2-core EPYC of docs/performance.md;
//  - in place, each 16 KiB piece goes through a per-thread buffer that stays
//    in L1, so the batch is read once and written once, as the in-place blend
//    (which copies a strip aside first) does.
// The callers time it on the case's own buffers after the case has run, so
// the pages are faulted in and written, and the input copies rotate as the
// case's do.
void copy_span(unsigned char *dst, const unsigned char *src, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i),
                     _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i)));
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

constexpr int64_t kParallelGrain = 1 << 15;  // the library's CPU threshold, in elements

void cpu_copy(const void *src, void *dst, size_t bytes, int64_t elements) {
  constexpr size_t kPiece = 16 << 10;
  const int64_t pieces = (int64_t)((bytes + kPiece - 1) / kPiece);
  const unsigned char *s = static_cast<const unsigned char *>(src);
  unsigned char *d = static_cast<unsigned char *>(dst);
  auto piece = [&](int64_t k, unsigned char *buf) {
    const size_t off = (size_t)k * kPiece, n = std::min(kPiece, bytes - off);
    if (s == d) {
      copy_span(buf, s + off, n);
      copy_span(d + off, buf, n);
    } else {
      copy_span(d + off, s + off, n);
    }
  };
  if (elements <= kParallelGrain) {
    alignas(64) unsigned char buf[kPiece];
    for (int64_t k = 0; k < pieces; ++k) piece(k, buf);
    return;
  }
#pragma omp parallel
  {
    alignas(64) unsigned char buf[kPiece];
#pragma omp for schedule(static)
    for (int64_t k = 0; k < pieces; ++k) piece(k, buf);
  }
}

// GB/s (bytes read + bytes written) of a copy of `bytes` (`elements`
// elements of the case) from srcs[rep % size] into dst (dst == nullptr: each
// source in place), with the case's repetitions.  CPU only.
double cpu_copy_rate(Backend &be, int reps, const std::vector<void *> &srcs, void *dst,
                     size_t bytes, int64_t elements) {
  auto t = be.time(reps, [&](int r) {
    void *s = srcs[(size_t)r % srcs.size()];
    cpu_copy(s, dst ? dst : s, bytes, elements);
  });
  return 2.0 * (double)bytes / (t.first * 1e-6) / 1e9;
}

// The run's headline ceiling: a device-to-device cudaMemcpy of 1 GiB on the
// GPU, cpu_copy of 256 MiB between two written buffers on the CPU.
double measure_ceiling(Backend &be, bool quick) {
  const size_t bytes = (be.cuda ? (size_t)1 << 30 : (size_t)256 << 20) >> (quick ? 1 : 0);
  void *a = be.alloc(bytes), *b = be.alloc(bytes);
  std::vector<unsigned char> init(bytes, 1);
  be.upload(a, init.data(), bytes);
  be.upload(b, init.data(), bytes);
  double gbps;
  if (be.cuda) {
    auto t = be.time(quick ? 5 : 20, [&](int) {
      check_cuda(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice), "copy");
    });
    gbps = 2.0 * (double)bytes / (t.first * 1e-6) / 1e9;
  } else {
    gbps = cpu_copy_rate(be, quick ? 5 : 20, {a}, b, bytes, (int64_t)bytes);
  }
  be.release(a);
  be.release(b);
  return gbps;
}

// ---- cases --------------------------------------------------------------------
struct Bench {
  Options opt;
  Backend &be;
  double ceiling;
  std::vector<Record> records;
  int reps() const { return opt.quick ? 3 : (be.cuda ? 50 : 15); }

  // case_ceiling: the CPU copy ceiling of this case's buffers (0: the run's).
  void add(const std::string &op, const std::string &dtype, const std::string &shape,
           const std::string &variant, const std::string &mode, double bytes,
           std::pair<double, double> t, double case_ceiling = 0) {
    const double c = case_ceiling > 0 ? case_ceiling : ceiling;
    Record r{op, be.cuda ? "cuda" : "cpu", dtype, shape, variant, mode, t.first, t.second, bytes, 0,
             c};
    r.gbps = bytes / (t.first * 1e-6) / 1e9;
    records.push_back(r);
    std::printf("%-14s %-9s %-18s %-13s %-8s %11.1f %11.1f %9.1f %9.1f %6.1f%%", op.c_str(),
                dtype.c_str(), shape.c_str(), mode.c_str(), variant.c_str(), r.median_us, r.min_us,
                r.gbps, c, 100.0 * r.gbps / c);
    for (auto it = records.rbegin(); variant == "naive" && it != records.rend(); ++it)
      if (it->variant == "fastmix" && it->op == op && it->dtype == dtype && it->shape == shape &&
          it->mode == mode) {
        std::printf("   fastmix %.2fx faster", r.median_us / it->median_us);
        break;
      }
    std::printf("\n");
    std::fflush(stdout);
  }

  void sample() {
    for (int64_t n : {256, 4096, 65536}) {
      float *lam = static_cast<float *>(be.alloc(4 * n));
      int64_t *part = static_cast<int64_t *>(be.alloc(8 * n));
      auto t = be.time(reps(), [&](int r) {
        check(fastmix_sample(be.device(), 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, 1, (uint64_t)r, n,
                             lam, part, nullptr),
              "fastmix_sample");
      });
      add("sample", "float32", std::to_string(n), "fastmix", "-", 12.0 * (double)n, t);
      be.release(lam);
      be.release(part);
    }
  }

  // blend (given lambdas and partners) or mixup (drawn in the call)
  void blend(bool fused) {
    struct Shape {
      int64_t n, c, h, w;
    };
    std::vector<Shape> shapes = {{256, 3, 32, 32}, {256, 3, 224, 224}, {64, 3, 512, 512}};
    const fastmix_dtype dtypes[] = {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16};
    for (const Shape &s : shapes)
      for (fastmix_dtype d : dtypes) {
        const int64_t elems = s.c * s.h * s.w, total = s.n * elems;
        const size_t bytes = (size_t)total * fm::dtype_size(d);
        // CPU: rotate over enough input copies that one run's data is out of cache.
        const int copies = !be.cuda && bytes < ((size_t)64 << 20) ? 4 : 1;
        std::vector<void *> xs;
        for (int k = 0; k < copies; ++k) {
          xs.push_back(be.alloc(bytes));
          auto init = random_data(d, (size_t)total, 7u + (unsigned)k);
          be.upload(xs.back(), init.data(), bytes);
        }
        void *out = be.alloc(bytes), *tmp = be.alloc(bytes);
        float *lam = static_cast<float *>(be.alloc(4 * s.n));
        int64_t *part = static_cast<int64_t *>(be.alloc(8 * s.n));
        check(fastmix_sample(be.device(), 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, 3, 0, s.n, lam,
                             part, nullptr),
              "sample");
        const std::string shape = std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                                  std::to_string(s.h) + "x" + std::to_string(s.w);
        const double floor_bytes = 2.0 * (double)bytes + 12.0 * (double)s.n;
        for (int inplace = 0; inplace < 2; ++inplace) {
          auto t = be.time(reps(), [&](int r) {
            void *x = xs[(size_t)r % xs.size()];
            void *o = inplace ? x : out;
            if (fused)
              check(fastmix_mixup(be.device(), d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, 3,
                                  (uint64_t)r, x, o, s.n, elems, elems, lam, part, nullptr),
                    "fastmix_mixup");
            else
              check(fastmix_blend(be.device(), d, x, o, s.n, elems, elems, lam, part, nullptr),
                    "fastmix_blend");
          });
          // CPU: the copy ceiling of the same buffers and bytes, right after the
          // case (its pages warm), with the same input rotation.
          const double copy =
              be.cuda ? 0 : cpu_copy_rate(be, reps(), xs, inplace ? nullptr : out, bytes, total);
          add(fused ? "mixup" : "blend", dname(d), shape, "fastmix",
              inplace ? "in-place" : "out-of-place", floor_bytes, t, copy);
          // Eager: gather partners into a copy, multiply, multiply, add (4 passes; in place
          // adds nothing, the result lands in out either way).
          auto tn = be.time(reps(), [&](int r) {
            void *x = xs[(size_t)r % xs.size()];
            if (fused)
              check(fastmix_sample(be.device(), 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, 3,
                                   (uint64_t)r, s.n, lam, part, nullptr),
                    "sample");
            for (int pass = 0; pass < 4; ++pass)
              naive_pass(be.cuda, pass, d, x, tmp, out, s.n, elems, lam, part);
          });
          add(fused ? "mixup" : "blend", dname(d), shape, "naive",
              inplace ? "in-place" : "out-of-place", floor_bytes, tn, copy);
        }
        for (void *x : xs) be.release(x);
        be.release(out);
        be.release(tmp);
        be.release(lam);
        be.release(part);
      }
  }

  void cross_entropy() {
    struct Shape {
      int64_t n, c;
    };
    const std::vector<Shape> shapes = {
        {256, 10}, {256, 1000}, {4096, 1000}, {4096, 32000}, {1024, 128256}};
    for (const Shape &sh : shapes)
      for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_BFLOAT16}) {
        const int64_t total = sh.n * sh.c;
        const size_t bytes = (size_t)total * fm::dtype_size(d);
        void *z = be.alloc(bytes), *grad = be.alloc(bytes);
        void *logp = be.alloc((size_t)total * 4), *g = be.alloc((size_t)total * 4);
        auto init = random_data(d, (size_t)total, 11u);
        be.upload(z, init.data(), bytes);
        std::vector<int64_t> hl((size_t)sh.n);
        for (int64_t i = 0; i < sh.n; ++i) hl[(size_t)i] = (i * 7919) % sh.c;
        int64_t *labels = static_cast<int64_t *>(be.alloc(8 * sh.n)),
                *part = static_cast<int64_t *>(be.alloc(8 * sh.n));
        float *lam = static_cast<float *>(be.alloc(4 * sh.n)),
              *loss = static_cast<float *>(be.alloc(4 * sh.n));
        be.upload(labels, hl.data(), 8 * (size_t)sh.n);
        check(fastmix_sample(be.device(), 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, 5, 0, sh.n, lam,
                             part, nullptr),
              "sample");
        const std::string shape = std::to_string(sh.n) + "x" + std::to_string(sh.c);
        const double floor_bytes = 2.0 * (double)bytes + 24.0 * (double)sh.n;
        // MEAN without and with a workspace (one block vs the whole GPU on CUDA;
        // the same code on the CPU), and NONE.
        size_t ws_bytes = 0;
        check(fastmix_cross_entropy_workspace_size(be.device(), sh.n, FASTMIX_REDUCTION_MEAN,
                                                   &ws_bytes),
              "ws size");
        void *ws = ws_bytes ? be.alloc(ws_bytes) : nullptr;
        const struct {
          fastmix_reduction red;
          bool ws;
          const char *mode;
        } modes[] = {{FASTMIX_REDUCTION_MEAN, false, "mean+grad"},
                     {FASTMIX_REDUCTION_MEAN, true, "mean+grad,ws"},
                     {FASTMIX_REDUCTION_NONE, false, "none+grad"}};
        double copy = 0;  // CPU: the copy ceiling of logits -> gradient, after the first mode
        for (const auto &m : modes) {
          auto t = be.time(reps(), [&](int) {
            check(fastmix_cross_entropy_ws(be.device(), d, z, sh.n, sh.c, sh.c, labels, lam, part,
                                           m.red, 0.0f, -100, loss, grad, 1.0f, m.ws ? ws : nullptr,
                                           m.ws ? ws_bytes : 0, nullptr),
                  "fastmix_cross_entropy_ws");
          });
          if (!be.cuda && copy == 0) copy = cpu_copy_rate(be, reps(), {z}, grad, bytes, total);
          add("cross_entropy", dname(d), shape, "fastmix", m.mode, floor_bytes, t, copy);
        }
        if (ws) be.release(ws);
        auto tn = be.time(reps(), [&](int) {
          naive_ce(be.cuda, d, z, logp, g, grad, sh.n, sh.c, labels, lam, part);
        });
        add("cross_entropy", dname(d), shape, "naive", "mean+grad", floor_bytes, tn, copy);
        for (void *p : {z, grad, logp, g, (void *)labels, (void *)part, (void *)lam, (void *)loss})
          be.release(p);
      }
  }

  // CutMix alone and mixed with mixup (timm's defaults: switch_prob 0.5), in
  // and out of place, against the floor and against timm's way: a clone of
  // the batch, then one copy per sample of the partner's box (per channel
  // row on the CPU, one 2-D copy per channel on CUDA).
  void cutmix() {
    struct Shape {
      int64_t n, c, h, w;
    };
    const std::vector<Shape> shapes = {{256, 3, 32, 32}, {256, 3, 224, 224}};
    for (const Shape &s : shapes)
      for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_BFLOAT16})
        for (int mixed = 0; mixed < 2; ++mixed) {
          const fastmix_mix_config cfg = bench::timm_mix_config(mixed ? 0.8f : 0.0f);
          const int64_t elems = s.c * s.h * s.w, total = s.n * elems;
          const size_t es = fm::dtype_size(d), bytes = (size_t)total * es;
          void *x = be.alloc(bytes), *out = be.alloc(bytes), *tmp = be.alloc(bytes);
          auto init = random_data(d, (size_t)total, 13u);
          be.upload(x, init.data(), bytes);
          float *lam = static_cast<float *>(be.alloc(4 * s.n));
          int64_t *part = static_cast<int64_t *>(be.alloc(8 * s.n));
          int32_t *box = static_cast<int32_t *>(be.alloc(16 * s.n));
          // The draw of repetition 0 on the host (the same bits as the
          // device's) gives the floor: out of place, the batch read and written
          // plus the partners' box pixels; in place, mixup samples read and
          // written, CutMix samples' boxes read from the partner and written.
          std::vector<float> hl((size_t)s.n);
          std::vector<int64_t> hp((size_t)s.n);
          std::vector<int32_t> hb((size_t)s.n * 4);
          check(fastmix_cutmix_sample(FASTMIX_DEVICE_CPU, &cfg, 3, 0, s.n, s.h, s.w, hl.data(),
                                      hp.data(), hb.data(), nullptr),
                "fastmix_cutmix_sample");
          double box_bytes = 0, mix_bytes = 0;
          for (int64_t i = 0; i < s.n; ++i) {
            const int32_t *b = &hb[(size_t)i * 4];
            if (b[0] < 0)
              mix_bytes += (double)elems * (double)es;
            else
              box_bytes += (double)(b[2] - b[0]) * (double)(b[3] - b[1]) * (double)s.c * (double)es;
          }
          const std::string shape = std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                                    std::to_string(s.h) + "x" + std::to_string(s.w);
          const char *op = mixed ? "cutmix+mixup" : "cutmix";
          for (int inplace = 0; inplace < 2; ++inplace) {
            const double floor_bytes =
                (inplace ? 2.0 * (mix_bytes + box_bytes) : 2.0 * (double)bytes + box_bytes) +
                24.0 * (double)s.n;
            auto t = be.time(reps(), [&](int) {
              // The same draw every repetition, so that the floor above holds.
              check(fastmix_cutmix(be.device(), d, &cfg, 3, 0, FASTMIX_LAYOUT_NCHW, x,
                                   inplace ? x : out, s.n, s.c, s.h, s.w, elems, lam, part, box,
                                   nullptr),
                    "fastmix_cutmix");
            });
            add(op, dname(d), shape, "fastmix", inplace ? "in-place" : "out-of-place", floor_bytes,
                t);
            if (mixed) continue;  // timm's per-sample loop: CutMix alone
            auto tn = be.time(reps(), [&](int) {
              check(fastmix_cutmix_sample(be.device(), &cfg, 3, 0, s.n, s.h, s.w, lam, part, box,
                                          nullptr),
                    "fastmix_cutmix_sample");
              naive_cutmix(be.cuda, x, tmp, inplace ? x : out, s.n, s.c, s.h, s.w, es, hp, hb);
            });
            add(op, dname(d), shape, "naive", inplace ? "in-place" : "out-of-place", floor_bytes,
                tn);
          }
          for (void *p : {x, out, tmp, (void *)lam, (void *)part, (void *)box}) be.release(p);
        }
  }

  // uint8 NHWC in, mixup, normalized NCHW out: the one pass against the
  // two-pass way (uint8 mix, then convert and normalize).
  void input() {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    struct Shape {
      int64_t n, c, h, w;
    };
    for (const Shape &s : std::vector<Shape>{{256, 3, 224, 224}})
      for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16}) {
        fastmix_mix_config cfg{};
        cfg.mixup_alpha = 0.4f, cfg.prob = 1.0f, cfg.mode = FASTMIX_MIX_ELEM;
        cfg.pairing = FASTMIX_PAIRING_PERMUTATION;
        const int64_t elems = s.c * s.h * s.w, total = s.n * elems;
        const size_t es = fm::dtype_size(d);
        std::vector<unsigned char> hx((size_t)total);
        for (size_t k = 0; k < hx.size(); ++k) hx[k] = (unsigned char)(k * 2654435761u >> 24);
        uint8_t *x = static_cast<uint8_t *>(be.alloc((size_t)total));
        uint8_t *tmp = static_cast<uint8_t *>(be.alloc((size_t)total));
        be.upload(x, hx.data(), (size_t)total);
        void *out = be.alloc((size_t)total * es);
        float *lam = static_cast<float *>(be.alloc(4 * s.n));
        int64_t *part = static_cast<int64_t *>(be.alloc(8 * s.n));
        int32_t *box = static_cast<int32_t *>(be.alloc(16 * s.n));
        const double floor_bytes = (double)total * (1.0 + (double)es) + 24.0 * (double)s.n;
        const std::string shape = std::to_string(s.n) + "x" + std::to_string(s.h) + "x" +
                                  std::to_string(s.w) + "x" + std::to_string(s.c);
        auto t = be.time(reps(), [&](int r) {
          check(fastmix_cutmix_u8(be.device(), &cfg, 3, (uint64_t)r, FASTMIX_LAYOUT_NHWC, x, s.n,
                                  s.c, s.h, s.w, elems, mean, stdv, d, FASTMIX_LAYOUT_NCHW, out,
                                  elems, lam, part, box, nullptr),
                "fastmix_cutmix_u8");
        });
        add("u8->mixup", dname(d), shape, "fastmix", "nhwc->nchw", floor_bytes, t);
        auto tn = be.time(reps(), [&](int r) {
          check(fastmix_sample(be.device(), 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 3, (uint64_t)r,
                               s.n, lam, part, nullptr),
                "fastmix_sample");
          naive_u8(be.cuda, d, x, tmp, out, s.n, s.c, s.h * s.w, lam, part);
        });
        add("u8->mixup", dname(d), shape, "naive", "nhwc->nchw", floor_bytes, tn);
        for (void *p : {(void *)x, (void *)tmp, out, (void *)lam, (void *)part, (void *)box})
          be.release(p);
      }
  }

  void run() {
    std::printf("%-14s %-9s %-18s %-13s %-8s %11s %11s %9s %9s %7s\n", "op", "dtype", "shape",
                "mode", "variant", "median_us", "min_us", "GB/s", "copy GB/s", "of copy");
    if (opt.op == "all" || opt.op == "sample") sample();
    if (opt.op == "all" || opt.op == "blend") blend(false);
    if (opt.op == "all" || opt.op == "mixup") blend(true);
    if (opt.op == "all" || opt.op == "cutmix") cutmix();
    if (opt.op == "all" || opt.op == "input") input();
    if (opt.op == "all" || opt.op == "cross_entropy") cross_entropy();
  }

  void write_json(const std::string &path) const {
    FILE *f = std::fopen(path.c_str(), "w");
    if (!f) die("cannot write", path.c_str());
    std::fprintf(f, "[\n");
    for (size_t i = 0; i < records.size(); ++i) {
      const Record &r = records[i];
      std::fprintf(f,
                   "  {\"op\": \"%s\", \"device\": \"%s\", \"dtype\": \"%s\", \"shape\": \"%s\", "
                   "\"variant\": \"%s\", "
                   "\"mode\": \"%s\", \"median_us\": %.3f, \"min_us\": %.3f, \"bytes\": %.0f, "
                   "\"gbps\": %.3f, "
                   "\"ceiling_gbps\": %.3f}%s\n",
                   r.op.c_str(), r.device.c_str(), r.dtype.c_str(), r.shape.c_str(),
                   r.variant.c_str(), r.mode.c_str(), r.median_us, r.min_us, r.bytes, r.gbps,
                   r.ceiling_gbps, i + 1 < records.size() ? "," : "");
    }
    std::fprintf(f, "]\n");
    std::fclose(f);
  }
};

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for", a.c_str());
      return argv[++i];
    };
    if (a == "--device") {
      const std::string v = value();
      if (v != "cpu" && v != "cuda") die("--device must be cpu or cuda, got", v.c_str());
      opt.cuda = v == "cuda";
    } else if (a == "--op")
      opt.op = value();
    else if (a == "--quick")
      opt.quick = true;
    else if (a == "--json")
      opt.json = value();
    else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: fastmix-bench [--device cpu|cuda] [--op "
          "all|sample|blend|mixup|cutmix|input|cross_entropy] "
          "[--quick] [--json PATH]\n");
      return 0;
    } else
      die("unknown argument", a.c_str());
  }
  if (opt.op != "all" && opt.op != "sample" && opt.op != "blend" && opt.op != "mixup" &&
      opt.op != "cutmix" && opt.op != "input" && opt.op != "cross_entropy")
    die("unknown --op", opt.op.c_str());
  if (opt.cuda && fastmix_cuda_device_count() == 0)
    die("--device cuda", "no CUDA device is present");

  Backend be(opt.cuda);
  std::string name = "CPU, " + std::to_string(omp_get_max_threads()) + " threads";
  if (opt.cuda) {
    cudaDeviceProp prop;
    int dev = 0;
    check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
    check_cuda(cudaGetDeviceProperties(&prop, dev), "properties");
    name = prop.name;
  }
  const double ceiling = measure_ceiling(be, opt.quick);
  std::printf("fastmix-bench %d on %s; ceiling (%s, read + write) %.1f GB/s%s\n", fastmix_version(),
              name.c_str(),
              opt.cuda ? "device-to-device copy of 1 GiB" : "copy of 256 MiB, all threads", ceiling,
              opt.cuda ? "" : "; each case: a copy of its own buffers and bytes (\"copy GB/s\")");
  Bench b{opt, be, ceiling, {}};
  b.run();
  if (!opt.json.empty()) b.write_json(opt.json);
  return 0;
}
