// Error exits and names shared by the benchmark programs (fastmix-bench,
// fastmix-sim-profile); each defines kProgram, the name its messages carry.
#pragma once

#include <fastmix/fastmix.h>

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

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

}  // namespace bench
