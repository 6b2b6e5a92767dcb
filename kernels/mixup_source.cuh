// Where lambda and partner of a sample come from, for the mixup kernels
// (the rows kernel, the staged kernel and the draw): read from arrays
// (GivenSource), drawn from a seed given by value (DrawSource), or drawn from
// a seed read from device memory when the kernel runs (DeviceSeedSource).
// (The CutMix apply kernels read theirs with math/geometry.cuh's CutDraws.)
#pragma once

#include "math/geometry.cuh"
#include "math/sampler.cuh"

#include <stdint.h>

namespace fm {
// Definitions in an anonymous namespace, as in the .cu files: every .cu
// that includes this header compiles its own kernels (internal linkage), so
// no two translation units register the same kernel.
namespace {

struct Sample {
  float lam;
  int64_t partner;  // kBadPartner: out of range, the sample's output becomes NaN
};

struct GivenSource {
  const float *lambdas;
  const int64_t *partners;
  __device__ Sample get(int64_t i, int64_t n) const {
    const int64_t p = partners[i];
    return {lambdas[i], (p >= 0 && p < n) ? p : kBadPartner};
  }
  __device__ void publish(int64_t, const Sample &) const {}
  __device__ GivenSource resolve() const { return *this; }
  __device__ int64_t partner_of(int64_t i, int64_t n) const {
    const int64_t p = partners[i];
    return (p >= 0 && p < n) ? p : kBadPartner;
  }
};

struct DrawSource {
  BetaParams beta;
  Pairing pairing;
  uint64_t seed, offset;
  float *lambdas;
  int64_t *partners;
  __device__ Sample get(int64_t i, int64_t) const {
    return {beta_lambda(beta, seed, offset, (uint64_t)i), partner(pairing, (uint64_t)i)};
  }
  __device__ void publish(int64_t i, const Sample &s) const {
    lambdas[i] = s.lam;
    partners[i] = s.partner;
  }
  __device__ DrawSource resolve() const { return *this; }
  __device__ int64_t partner_of(int64_t i, int64_t) const { return partner(pairing, (uint64_t)i); }
};

// Seed and offset read from device memory when the kernel runs (so a
// captured graph draws afresh at each replay).  Every thread reads them and
// keys the pairing itself at kernel start (make_pairing is the host's code),
// so the draw is bitwise that of DrawSource with the same values.  The kernel
// only reads seed_offset; the increment is a separate kernel queued after it.
struct DeviceSeedSource {
  BetaParams beta;  // depends on alpha and fold only: computed on the host
  int kind;
  uint64_t n;
  const uint64_t *seed_offset;
  float *lambdas;
  int64_t *partners;
  __device__ DrawSource resolve() const {
    const uint64_t seed = seed_offset[0], offset = seed_offset[1];
    return DrawSource{beta, make_pairing(kind, seed, offset, n), seed, offset, lambdas, partners};
  }
};

// The kernel's source as it reads it: the parameter itself, or its copy
// resolved into shared memory.
template <class Source>
__device__ __forceinline__ const Source &select_source(const Source &src, const Source &) {
  return src;
}
template <class Source, class Resolved>
__device__ __forceinline__ const Resolved &select_source(const Source &, const Resolved &shared) {
  return shared;
}

}  // namespace
}  // namespace fm
