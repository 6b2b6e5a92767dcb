// Shared building blocks of every fastmix kernel and its CPU twin.
//
// Everything here is __host__ __device__: the CPU backend (compiled by the host
// C++ compiler) and the CUDA kernels (compiled by nvcc) include the same code,
// so what CI proves on the CPU is what the GPU runs.  Arithmetic that must be
// bitwise identical on both sides uses only IEEE-exact operations (+ - * /,
// sqrt, floor, bit operations); the build turns off floating-point
// contraction (-ffp-contract=off, --fmad=false) so that no compiler fuses a
// multiply and an add behind our back.
#pragma once

#include <stdint.h>
#include <string.h>

// cuRAND's Philox4x32-10, usable on the host as well as on the device.  The
// CUDA headers it pulls in also define __host__/__device__ for host compilers.
#ifndef QUALIFIERS
#define QUALIFIERS static __forceinline__ __host__ __device__
#endif
#include <curand_kernel.h>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define FM_HD __host__ __device__ __forceinline__
#else
#define FM_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define FM_UNROLL _Pragma("unroll")
#else
#define FM_UNROLL
#endif

namespace fm {

FM_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

FM_HD float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

FM_HD float quiet_nan() { return f32_from_bits(0x7fc00000u); }

// ---------------------------------------------------------------------------
// Storage types.  Each has a raw 16- or 32-bit representation and converts to
// and from float32 with round-to-nearest-even.  On the device the hardware
// conversions are used; on the host the same rounding is done with integer
// operations (results agree for every non-NaN input; NaN stays NaN).
// ---------------------------------------------------------------------------
struct f32 {
  using raw = float;
  static FM_HD float load(raw r) { return r; }
  static FM_HD raw store(float f) { return f; }
};

struct f16 {
  using raw = uint16_t;
  static FM_HD float load(raw h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u) return f32_from_bits(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    if (em >= 0x0400u) return f32_from_bits(sign | ((em << 13) + (112u << 23)));
    const float v = (float)em * 5.9604644775390625e-08f;  // em * 2^-24, exact
    return sign ? -v : v;
#endif
  }
  static FM_HD raw store(float f) {
#if defined(__CUDA_ARCH__)
    return __half_as_ushort(__float2half_rn(f));
#else
    uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to infinity
    if (x < 0x38800000u) {
      // Below 2^-14: a subnormal half.  Adding 0.5 puts the half's ulp (2^-24)
      // at the float's last place, so the FPU rounds to nearest even for us.
      const float r = f32_from_bits(x) + 0.5f;
      return (uint16_t)(sign | (f32_bits(r) - 0x3f000000u));
    }
    const uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000fffu + odd;  // rebias the exponent (-112 << 23) and round
    return (uint16_t)(sign | (x >> 13));
#endif
  }
};

// The float32 bits x rounded to bfloat16, nearest even, in the upper 16 bits
// of the result (the lower 16 are garbage); a NaN stays a NaN, made quiet.
// Integer arithmetic, no branches: the CPU's conversion, and the GPU's where
// there is no conversion instruction (PTX before sm_80), where cuda_bf16.h's
// software path takes about three times the instructions.
FM_HD uint32_t bf16_round_bits(uint32_t x) {
  return (x & 0x7fffffffu) > 0x7f800000u ? x | 0x00400000u : x + 0x7fffu + ((x >> 16) & 1u);
}

struct bf16 {
  using raw = uint16_t;
  static FM_HD float load(raw h) { return f32_from_bits((uint32_t)h << 16); }
  static FM_HD raw store(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
    return (uint16_t)(bf16_round_bits(f32_bits(f)) >> 16);
#endif
  }
};

// The blend of one element, in float32: lam * a + mu * b with mu = 1 - lam
// computed once per sample.  Two products and a sum, never fused, so that the
// CPU and the GPU round identically; lam == 1 gives exactly a (for finite b).
FM_HD float blend(float lam, float mu, float a, float b) { return lam * a + mu * b; }

// ---------------------------------------------------------------------------
// The exp polynomial of both of our own exps (fm::exp_nonpos in sampler.cuh,
// the CPU's vectorisable fm::exp_vec): Cody-Waite reduction of x by k ln 2,
// with ln 2 split so that k * kLn2Hi is exact for |k| < 2^12, then the
// degree-7 Taylor polynomial of exp on the reduced argument (|r| <= ~0.35).
// The caller scales by 2^k in its own way.
// ---------------------------------------------------------------------------
constexpr float kLn2Hi = 0.693145751953125f;  // few mantissa bits: k * kLn2Hi is exact
constexpr float kLn2Lo = 1.42860677e-06f;

FM_HD float ln2_reduce(float x, float kf) { return (x - kf * kLn2Hi) - kf * kLn2Lo; }

FM_HD float exp_poly(float r) {
  float p = 1.98412698e-04f;    // 1/5040
  p = p * r + 1.38888889e-03f;  // 1/720
  p = p * r + 8.33333377e-03f;  // 1/120
  p = p * r + 4.16666679e-02f;  // 1/24
  p = p * r + 1.66666672e-01f;  // 1/6
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p;
}

}  // namespace fm
