// What the benchmark programs share (fastmix-bench, fastmix-sim-profile,
// fastmix-sim-timing): error exits, names, input values, device buffers and
// the mixing config they time; each defines kProgram, the name its messages
// carry.
#pragma once

#include <fastmix/fastmix.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bench {

extern const char *const kProgram;

[[noreturn]] inline void die(const char *what, const char *detail) {
  std::fprintf(stderr, "%s: %s: %s\n", kProgram, what, detail);
  std::exit(1);
}

inline void check(fastmix_status s, const char *what) {
  if (s != FASTMIX_SUCCESS) die(what, fastmix_last_error());
}

inline void check_cuda(cudaError_t e, const char *what) {
  if (e != cudaSuccess) die(what, cudaGetErrorString(e));
}

inline const char *dname(fastmix_dtype d) {
  return d == FASTMIX_FLOAT32 ? "float32" : d == FASTMIX_FLOAT16 ? "float16" : "bfloat16";
}

inline size_t dsize(fastmix_dtype d) { return d == FASTMIX_FLOAT32 ? 4 : 2; }

// n finite values in [lo, hi) in the storage type, none near 0 (normal in
// float16 too); a float16/bfloat16 value is the float's truncation: only the
// range matters for timing and instruction counts.
inline std::vector<unsigned char> values(fastmix_dtype d, size_t n, float lo, float hi,
                                         uint32_t seed) {
  std::vector<unsigned char> v(n * dsize(d));
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    float f = lo + (hi - lo) * (float)(s >> 8) * (1.0f / 16777216.0f);
    if (f > -1.0f / 1024 && f < 1.0f / 1024) f = 1.0f / 1024;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (d == FASTMIX_FLOAT32) {
      std::memcpy(&v[4 * i], &f, 4);
      continue;
    }
    const uint16_t h = d == FASTMIX_BFLOAT16 ? (uint16_t)(u >> 16)
                                             : (uint16_t)(((u >> 16) & 0x8000u) |
                                                          ((((u >> 23) & 0xffu) - 112u) << 10) |
                                                          ((u >> 13) & 0x3ffu));
    std::memcpy(&v[2 * i], &h, 2);
  }
  return v;
}

inline void *device_alloc(size_t bytes) {
  void *p = nullptr;
  check_cuda(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}

template <class T>
T *upload(const std::vector<T> &host) {
  void *p = device_alloc(host.size() * sizeof(T));
  check_cuda(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return static_cast<T *>(p);
}

// timm's defaults: mixup (mixup_alpha 0.8) or CutMix (1.0), half and half,
// per sample, flipped pairs, the lambda corrected to the clipped box.
inline fastmix_mix_config timm_mix_config(float mixup_alpha = 0.8f) {
  fastmix_mix_config m{};
  m.mixup_alpha = mixup_alpha;
  m.cutmix_alpha = 1.0f;
  m.prob = 1.0f;
  m.switch_prob = 0.5f;
  m.mode = FASTMIX_MIX_ELEM;
  m.pairing = FASTMIX_PAIRING_FLIP;
  m.correct_lam = 1;
  return m;
}

}  // namespace bench
