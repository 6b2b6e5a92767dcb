// The cases and random inputs of the cross-entropy tests, shared by the CPU
// tests (tests/test_cross_entropy.cpp, against a float64 reference) and the
// CUDA tests (tests/cuda/test_cuda_cross_entropy.cpp, against the CPU).
#pragma once

#include <fastmix/fastmix.h>

#include "test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

namespace ce_test {

using fmt_test::dtype_size;
using fmt_test::encode;
using fmt_test::kPoison;

struct Case {
  fastmix_dtype dtype = FASTMIX_FLOAT32;
  int64_t batch = 4, classes = 10, stride = 10;
  bool mix = true;
  fastmix_reduction red = FASTMIX_REDUCTION_MEAN;
  float eps = 0.0f;
  int64_t ignore = -100;
  float grad_scale = 1.0f;
  bool grad = true;
  int64_t offset = 0;  // elements between the buffer start and row 0 (misalignment)
  bool ws = false;     // call fastmix_cross_entropy_ws with a workspace of the queried size
};

struct Inputs {
  std::vector<unsigned char> logits;  // element offset + i * stride + c
  std::vector<int64_t> labels, partners;
  std::vector<float> lambdas;
};

size_t buf_elems(const Case &c) {
  return (size_t)(c.offset + (c.batch > 0 ? (c.batch - 1) * c.stride + c.classes : 0) + 3);
}

// Random inputs: logits ~ N(0, scale^2) rounded to the dtype, labels in
// [0, classes) with a fraction `ignored` set to ignore_index, a random
// permutation as partners and uniform lambdas.
Inputs make_inputs(const Case &c, std::mt19937_64 &rng, double scale = 3.0, double ignored = 0.0) {
  Inputs in;
  const size_t n = buf_elems(c);
  in.logits.assign(n * dtype_size(c.dtype), 0);
  std::normal_distribution<double> normal(0.0, scale);
  for (size_t j = 0; j < n; ++j) encode(c.dtype, in.logits.data(), (int64_t)j, normal(rng));
  std::uniform_int_distribution<int64_t> label(0, c.classes - 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int64_t i = 0; i < c.batch; ++i)
    in.labels.push_back(unit(rng) < ignored ? c.ignore : label(rng));
  in.partners.resize((size_t)c.batch);
  std::iota(in.partners.begin(), in.partners.end(), int64_t{0});
  std::shuffle(in.partners.begin(), in.partners.end(), rng);
  for (int64_t i = 0; i < c.batch; ++i) in.lambdas.push_back((float)unit(rng));
  // Empty vectors (batch 0) still need valid pointers, on the host and the device.
  if (in.labels.empty()) in.labels.push_back(0);
  if (in.partners.empty()) in.partners.push_back(0);
  if (in.lambdas.empty()) in.lambdas.push_back(0.5f);
  return in;
}

// -inf in the storage type, written by its bits (encode() is for finite values).
void put_neg_inf(fastmix_dtype d, void *base, int64_t index) {
  if (d == FASTMIX_FLOAT32) {
    const uint32_t u = 0xff800000u;
    std::memcpy(static_cast<char *>(base) + 4 * index, &u, 4);
  } else {
    const uint16_t h = d == FASTMIX_FLOAT16 ? 0xfc00u : 0xff80u;
    std::memcpy(static_cast<char *>(base) + 2 * index, &h, 2);
  }
}

// got must be NaN exactly when want is; otherwise within tol.
bool close(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isnan(got)) return false;
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= tol;
}

double ulp(fastmix_dtype d, double v) {
  const int mant = d == FASTMIX_FLOAT32 ? 23 : d == FASTMIX_FLOAT16 ? 10 : 7;
  const int emin = d == FASTMIX_FLOAT16 ? -14 : -126;
  int e = 0;
  std::frexp(std::fabs(v), &e);  // |v| = f * 2^e, f in [0.5, 1)
  return std::ldexp(1.0, std::max(e - 1, emin) - mant);
}

bool poisoned(const unsigned char *p, size_t bytes) {
  for (size_t b = 0; b < bytes; ++b)
    if (p[b] != kPoison) return false;
  return true;
}

}  // namespace ce_test
