// The storage type of each fastmix_dtype, written once: dispatch_dtype is the
// switch over the dtypes on the host (CPU backend and CUDA launchers alike),
// and dtype_size is derived from it.  A new storage type is one struct in
// common.cuh and one case here, and one in load_target of
// kernels/cross_entropy.cu, the device-side switch that reads dense loss
// targets of any type without a kernel per pair of logits and targets types.
#pragma once

#include "common.cuh"

#include <fastmix/fastmix.h>

#include <stddef.h>

namespace fm {

// Calls f(T{}) with T the storage type (f32, f16, bf16) of `dtype` and returns
// what f returns; f is usually a generic lambda, `[&](auto t) { using T =
// decltype(t); ... }`.  dtype must be valid (the entry points check it first).
template <class F>
decltype(auto) dispatch_dtype(fastmix_dtype dtype, F &&f) {
  switch (dtype) {
    case FASTMIX_FLOAT16:
      return f(f16{});
    case FASTMIX_BFLOAT16:
      return f(bf16{});
    case FASTMIX_FLOAT32:
      break;
  }
  return f(f32{});
}

// Bytes per element of `dtype`.
inline size_t dtype_size(fastmix_dtype dtype) {
  return dispatch_dtype(dtype, [](auto t) { return sizeof(typename decltype(t)::raw); });
}

}  // namespace fm
