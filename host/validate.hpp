// Argument checks shared by the entry points of the C ABI (host/api*.cpp),
// made before any backend runs.  Each returns FASTMIX_SUCCESS or records a
// message naming the parameter and returns the error status.
#pragma once

#include "backend.hpp"

#include "../kernels/math/dtype.cuh"

#include <cmath>
#include <cstring>
#include <exception>
#include <new>

namespace fm {
// Runs an entry point; an escaping C++ exception becomes a status, never a
// crash of the caller.
template <class F>
fastmix_status guarded(const char *func, F &&body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(FASTMIX_ERROR_INTERNAL, "%s: out of host memory", func);
  } catch (const std::exception &e) {
    return fail(FASTMIX_ERROR_INTERNAL, "%s: %s", func, e.what());
  } catch (...) {
    return fail(FASTMIX_ERROR_INTERNAL, "%s: unknown exception", func);
  }
}

// The int a C caller passed for an enum parameter.  C allows any int there;
// in C++ loading an enum object whose value lies outside the enumeration's
// range is undefined (UBSan: -fsanitize=enum, found by tests/fuzz), so enum
// parameters are checked through a copy of their bytes.
template <class E>
inline int enum_int(const E &e) {
  static_assert(sizeof(E) == sizeof(int), "fastmix's C enums are ints");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

inline fastmix_status check_device(const char *func, const fastmix_device &device) {
  const int d = enum_int(device);
  FM_CHECK(d == FASTMIX_DEVICE_CPU || d == FASTMIX_DEVICE_CUDA,
           "%s: device must be FASTMIX_DEVICE_CPU (0) or FASTMIX_DEVICE_CUDA (1), got %d", func, d);
  return FASTMIX_SUCCESS;
}

inline fastmix_status check_dtype(const char *func, const fastmix_dtype &dtype) {
  const int d = enum_int(dtype);
  FM_CHECK(d == FASTMIX_FLOAT32 || d == FASTMIX_FLOAT16 || d == FASTMIX_BFLOAT16,
           "%s: dtype must be FASTMIX_FLOAT32 (0), FASTMIX_FLOAT16 (1) or FASTMIX_BFLOAT16 (2), "
           "got %d",
           func, d);
  return FASTMIX_SUCCESS;
}

inline fastmix_status check_batch(const char *func, int64_t batch) {
  FM_CHECK(batch >= 0 && batch <= FASTMIX_MAX_BATCH, "%s: batch must be in [0, %lld], got %lld",
           func, (long long)FASTMIX_MAX_BATCH, (long long)batch);
  return FASTMIX_SUCCESS;
}

// An image height or width: 1 to 2^31 - 1 (CutMix boxes are int32).
inline fastmix_status check_side(const char *func, const char *name, int64_t v) {
  FM_CHECK(v >= 1 && v <= INT32_MAX, "%s: %s must be in [1, %d], got %lld", func, name, INT32_MAX,
           (long long)v);
  return FASTMIX_SUCCESS;
}

inline fastmix_status check_layout(const char *func, const char *name,
                                   const fastmix_layout &layout) {
  const int v = enum_int(layout);
  FM_CHECK(v == FASTMIX_LAYOUT_NCHW || v == FASTMIX_LAYOUT_NHWC,
           "%s: %s must be FASTMIX_LAYOUT_NCHW (0) or FASTMIX_LAYOUT_NHWC (1), got %d", func, name,
           v);
  return FASTMIX_SUCCESS;
}

inline fastmix_status check_pairing(const char *func, const char *name,
                                    const fastmix_pairing &pairing) {
  const int p = enum_int(pairing);
  FM_CHECK(p >= FASTMIX_PAIRING_PERMUTATION && p <= FASTMIX_PAIRING_ROLL,
           "%s: %s must be FASTMIX_PAIRING_PERMUTATION (0), _CYCLE (1), _FLIP (2) or _ROLL (3), "
           "got %d",
           func, name, p);
  return FASTMIX_SUCCESS;
}

inline fastmix_status check_sampler(const char *func, float alpha, const fastmix_pairing &pairing) {
  FM_CHECK(std::isfinite(alpha) && alpha > 0.0f, "%s: alpha must be finite and > 0, got %g", func,
           (double)alpha);
  return check_pairing(func, "pairing", pairing);
}

// Whether the byte ranges [a, a + na) and [b, b + nb) share a byte (a NULL
// or empty range shares none).
inline bool overlaps(const void *a, uint64_t na, const void *b, uint64_t nb) {
  const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return a && b && na > 0 && nb > 0 && x < y + nb && y < x + na;
}

// A [batch][stride] array of `dtype` with `cols` elements used per row: not
// NULL, aligned to its element size, and its byte span ((batch - 1) * stride
// + cols) * size (0 when batch == 0) representable.
inline fastmix_status check_rows(const char *func, const char *name, const char *stride_name,
                                 fastmix_dtype dtype, const void *ptr, int64_t batch, int64_t cols,
                                 int64_t stride, int64_t *span) {
  FM_CHECK(ptr != nullptr, "%s: %s must not be NULL", func, name);
  const uintptr_t size = dtype_size(dtype);
  FM_CHECK((uintptr_t)ptr % size == 0, "%s: %s must be aligned to its element size (%u bytes)",
           func, name, (unsigned)size);
  *span = 0;
  if (batch == 0) return FASTMIX_SUCCESS;
  int64_t s = 0;
  FM_CHECK(!__builtin_mul_overflow(batch - 1, stride, &s) && !__builtin_add_overflow(s, cols, &s) &&
               !__builtin_mul_overflow(s, (int64_t)size, &s),
           "%s: batch * %s overflows the address space (batch %lld, %s %lld)", func, stride_name,
           (long long)batch, stride_name, (long long)stride);
  *span = s;
  return FASTMIX_SUCCESS;
}

// The geometry of a batch of samples: sizes, stride, alignment, overflow and
// the overlap of x and out (only out == x is allowed).
inline fastmix_status check_images(const char *func, fastmix_dtype dtype, const void *x,
                                   const void *out, int64_t batch, int64_t elems, int64_t stride) {
  FM_CHECK(x != nullptr, "%s: x must not be NULL", func);
  FM_CHECK(out != nullptr, "%s: out must not be NULL", func);
  FM_CHECK(elems >= 0, "%s: sample_elems must be >= 0, got %lld", func, (long long)elems);
  FM_CHECK(stride >= elems, "%s: sample_stride (%lld) must be >= sample_elems (%lld)", func,
           (long long)stride, (long long)elems);
  const int64_t rows = elems == 0 ? 0 : batch;  // empty samples span nothing
  int64_t span = 0;
  FM_TRY(check_rows(func, "x", "sample_stride", dtype, x, rows, elems, stride, &span));
  FM_TRY(check_rows(func, "out", "sample_stride", dtype, out, rows, elems, stride, &span));
  FM_CHECK(x == out || !overlaps(x, (uint64_t)span, out, (uint64_t)span),
           "%s: out overlaps x without being equal to it (only out == x, in place, is supported)",
           func);
  return FASTMIX_SUCCESS;
}

// An array of T that a call reads or writes: aligned to its element size,
// and not NULL unless `optional`.  A misaligned pointer would fault a CUDA
// kernel and poison the caller's CUDA context, so both backends refuse it.
template <class T>
inline fastmix_status check_array(const char *func, const char *name, const T *ptr,
                                  bool optional = false) {
  FM_CHECK(optional || ptr != nullptr, "%s: %s must not be NULL", func, name);
  FM_CHECK((uintptr_t)ptr % alignof(T) == 0,
           "%s: %s must be aligned to its element size (%u bytes)", func, name,
           (unsigned)alignof(T));
  return FASTMIX_SUCCESS;
}

// lambdas and partners, which sampling writes and blending reads.
inline fastmix_status check_lambdas_partners(const char *func, const float *lambdas,
                                             const int64_t *partners) {
  FM_TRY(check_array(func, "lambdas", lambdas));
  return check_array(func, "partners", partners);
}

// Everything fastmix_sample checks (the mixup calls check it too).
inline fastmix_status check_sample_args(const char *func, const fastmix_device &device, float alpha,
                                        const fastmix_pairing &pairing, int64_t batch,
                                        const float *lambdas, const int64_t *partners) {
  FM_TRY(check_device(func, device));
  FM_TRY(check_sampler(func, alpha, pairing));
  FM_TRY(check_batch(func, batch));
  return check_lambdas_partners(func, lambdas, partners);
}

// `name`: the parameter as the message names it (a field of a config, say).
inline fastmix_status check_reduction(const char *func, const fastmix_reduction &reduction,
                                      const char *name = "reduction") {
  const int red = enum_int(reduction);
  FM_CHECK(red == FASTMIX_REDUCTION_NONE || red == FASTMIX_REDUCTION_MEAN ||
               red == FASTMIX_REDUCTION_SUM,
           "%s: %s must be FASTMIX_REDUCTION_NONE (0), _MEAN (1) or _SUM (2), got %d", func, name,
           red);
  return FASTMIX_SUCCESS;
}

// Bytes from the first element of a blend's images to the end of the last.
inline uint64_t image_span(const Images &im) {
  if (im.batch == 0 || im.elems == 0) return 0;
  return ((uint64_t)(im.batch - 1) * (uint64_t)im.stride + (uint64_t)im.elems) *
         dtype_size(im.dtype);
}

// seed_offset: present, 8-byte aligned, and clear of lambdas, partners,
// boxes (NULL: none) and the `span` bytes of x and out (NULL: none).
inline fastmix_status check_seed_offset(const char *func, const uint64_t *seed_offset,
                                        int64_t batch, const float *lambdas,
                                        const int64_t *partners, const void *x, const void *out,
                                        uint64_t span, const int32_t *boxes = nullptr) {
  FM_CHECK(seed_offset != nullptr, "%s: seed_offset must not be NULL", func);
  FM_CHECK((uintptr_t)seed_offset % 8 == 0, "%s: seed_offset must be 8-byte aligned", func);
  const uint64_t n = (uint64_t)batch, so = 2 * sizeof(uint64_t);
  FM_CHECK(!overlaps(seed_offset, so, lambdas, n * sizeof(float)),
           "%s: seed_offset overlaps lambdas", func);
  FM_CHECK(!overlaps(seed_offset, so, partners, n * sizeof(int64_t)),
           "%s: seed_offset overlaps partners", func);
  FM_CHECK(!overlaps(seed_offset, so, boxes, 4 * n * sizeof(int32_t)),
           "%s: seed_offset overlaps boxes", func);
  FM_CHECK(!overlaps(seed_offset, so, x, span), "%s: seed_offset overlaps x", func);
  FM_CHECK(!overlaps(seed_offset, so, out, span), "%s: seed_offset overlaps out", func);
  return FASTMIX_SUCCESS;
}

// The arguments of a CutMix draw: device, config, batch, height, width,
// lambdas, partners and boxes (host/api_cutmix.cpp).
fastmix_status check_draw(const char *func, const fastmix_device &device,
                          const fastmix_mix_config *config, int64_t batch, int64_t height,
                          int64_t width, const float *lambdas, const int64_t *partners,
                          const int32_t *boxes);

}  // namespace fm
