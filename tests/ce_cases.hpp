// The cases, random inputs, float64 reference and checks of the
// cross-entropy tests, shared by tests/test_cross_entropy.cpp (one body per
// device of tests/device.hpp) and tests/cuda/test_cuda_cross_entropy.cpp (the
// semantics only CUDA has).  The reference is written here from the decoded
// inputs, with no library code.
//
// Tolerances (the same on every device; each backend works in float32 and
// sums in its own order, so neither is bitwise the other):
//  - loss: the library decodes the logits exactly and takes the lse with the
//    maximum subtracted; its error is a few float32 roundings of the terms it
//    adds, i.e. relative ~1e-6 of the larger of the loss and the logit
//    magnitudes.  We allow 1e-5 * (|ref| + w * (1 + max|z| + log C)) per row,
//    and the sum of those (over the weights for MEAN) for a reduced loss
//    (the row losses are added in float64 on both backends).
//  - float32 gradient: 2e-5 relative (the float32 sum of up to 262144 exps,
//    in blocks or trees, has a relative error of a few 1e-6, which enters
//    every softmax value) plus 1e-6 * |k| * (w1 + w2) absolute for the
//    cancellation in (w1 + w2) * p - w1 * t1 - w2 * t2 (terms of size
//    <= |k| * (w1 + w2)).
//  - fp16/bf16 gradient: the float32 value is rounded once to the storage
//    type, so it lies within half an ulp (of the storage type) of a value
//    within the float32 tolerance above; we allow one ulp at the reference
//    plus the same terms.
//  - NaN passes only where the reference is NaN.
#pragma once

#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

namespace ce_test {

using fmt_test::Buffer;
using fmt_test::decode;
using fmt_test::device_name;
using fmt_test::dtype_name;
using fmt_test::dtype_size;
using fmt_test::encode;
using fmt_test::finish;
using fmt_test::kPoison;
using fmt_test::to_device;

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
  // Elements by which the gradient buffer is shifted against the logits
  // buffer: 1 puts grad_logits and logits at different offsets from 16-byte
  // alignment (CUDA then stores the gradient element by element).
  int64_t grad_misalign = 0;
  bool ws = false;  // call fastmix_cross_entropy_ws with a workspace of the queried size
};

struct Inputs {
  std::vector<unsigned char> logits;  // element offset + i * stride + c
  std::vector<int64_t> labels, partners;
  std::vector<float> lambdas;
};

inline size_t buf_elems(const Case &c) {
  return (size_t)(c.offset + (c.batch > 0 ? (c.batch - 1) * c.stride + c.classes : 0) + 3);
}

// Random inputs: logits ~ N(0, scale^2) rounded to the dtype, labels in
// [0, classes) with a fraction `ignored` set to ignore_index, a random
// permutation as partners and uniform lambdas.
inline Inputs make_inputs(const Case &c, std::mt19937_64 &rng, double scale = 3.0,
                          double ignored = 0.0) {
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
inline void put_neg_inf(fastmix_dtype d, void *base, int64_t index) {
  if (d == FASTMIX_FLOAT32) {
    const uint32_t u = 0xff800000u;
    std::memcpy(static_cast<char *>(base) + 4 * index, &u, 4);
  } else {
    const uint16_t h = d == FASTMIX_FLOAT16 ? 0xfc00u : 0xff80u;
    std::memcpy(static_cast<char *>(base) + 2 * index, &h, 2);
  }
}

// got must be NaN exactly when want is; otherwise within tol.
inline bool close(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isnan(got)) return false;
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= tol;
}

inline double ulp(fastmix_dtype d, double v) {
  const int mant = d == FASTMIX_FLOAT32 ? 23 : d == FASTMIX_FLOAT16 ? 10 : 7;
  const int emin = d == FASTMIX_FLOAT16 ? -14 : -126;
  int e = 0;
  std::frexp(std::fabs(v), &e);  // |v| = f * 2^e, f in [0.5, 1)
  return std::ldexp(1.0, std::max(e - 1, emin) - mant);
}

inline bool poisoned(const unsigned char *p, size_t bytes) {
  for (size_t b = 0; b < bytes; ++b)
    if (p[b] != kPoison) return false;
  return true;
}

// ---- the float64 reference ---------------------------------------------------
inline double logit(const Case &c, const Inputs &in, int64_t i, int64_t j) {
  return decode(c.dtype, in.logits.data(), c.offset + i * c.stride + j);
}

struct Ref {
  std::vector<double> row_loss, row_tol, grad;  // grad: [batch][classes]
  double reduced = 0.0, reduced_tol = 0.0, k = 1.0;
  std::vector<double> row_w;
};

// The contract in float64.  z: [batch][classes] (decoded logits).
inline Ref reference(const Case &c, const std::vector<double> &z, const Inputs &in) {
  Ref r;
  const int64_t n = c.batch, C = c.classes;
  const double eps = c.eps;
  double wsum = 0.0, lsum = 0.0, tsum = 0.0;
  std::vector<double> w1v, w2v;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y1 = in.labels[(size_t)i];
    const double lam = c.mix ? (double)in.lambdas[(size_t)i] : 1.0;
    const double w1 = y1 != c.ignore ? lam : 0.0;
    const int64_t y2 = c.mix ? in.labels[(size_t)in.partners[(size_t)i]] : c.ignore;
    const double w2 = c.mix && y2 != c.ignore ? 1.0 - lam : 0.0;
    const double *zr = z.data() + i * C;
    double m = -INFINITY, maxabs = 0.0, sum = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      m = std::max(m, zr[j]);
      if (std::isfinite(zr[j])) maxabs = std::max(maxabs, std::fabs(zr[j]));
    }
    double s = 0.0;
    for (int64_t j = 0; j < C; ++j) s += std::exp(zr[j] - m);
    for (int64_t j = 0; j < C; ++j) sum += zr[j];
    const double lse = m + std::log(s), mean = sum / (double)C;
    auto ce = [&](int64_t y) {
      return (1.0 - eps) * (lse - zr[y]) + (eps != 0.0 ? eps * (lse - mean) : 0.0);
    };
    double loss = 0.0;
    if (w1 != 0.0) loss += w1 * ce(y1);
    if (w2 != 0.0) loss += w2 * ce(y2);
    r.row_loss.push_back(loss);
    r.row_tol.push_back(1e-5 *
                        (std::fabs(loss) + (w1 + w2) * (1.0 + maxabs + std::log((double)C))));
    r.row_w.push_back(w1 + w2);
    w1v.push_back(w1);
    w2v.push_back(w2);
    wsum += w1 + w2;
    lsum += loss;
    tsum += r.row_tol.back();
  }
  r.reduced = c.red == FASTMIX_REDUCTION_MEAN ? lsum / wsum : lsum;
  r.reduced_tol = c.red == FASTMIX_REDUCTION_MEAN ? tsum / wsum : tsum;
  r.k = (double)c.grad_scale * (c.red == FASTMIX_REDUCTION_MEAN ? 1.0 / wsum : 1.0);
  r.grad.assign((size_t)(n * C), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double w1 = w1v[(size_t)i], w2 = w2v[(size_t)i];
    if (w1 == 0.0 && w2 == 0.0) continue;  // ignored row: zeros
    const int64_t y1 = in.labels[(size_t)i];
    const int64_t y2 = c.mix ? in.labels[(size_t)in.partners[(size_t)i]] : -1;
    const double *zr = z.data() + i * C;
    double m = -INFINITY;
    for (int64_t j = 0; j < C; ++j) m = std::max(m, zr[j]);
    double s = 0.0;
    for (int64_t j = 0; j < C; ++j) s += std::exp(zr[j] - m);
    for (int64_t j = 0; j < C; ++j) {
      const double p = std::exp(zr[j] - m) / s;
      const double t1 = (j == y1 ? 1.0 - eps : 0.0) + eps / (double)C;
      const double t2 = (j == y2 ? 1.0 - eps : 0.0) + eps / (double)C;
      r.grad[(size_t)(i * C + j)] = r.k * ((w1 + w2) * p - w1 * t1 - w2 * t2);
    }
  }
  return r;
}

inline std::vector<double> decode_rows(const Case &c, const Inputs &in) {
  std::vector<double> z((size_t)(c.batch * c.classes));
  for (int64_t i = 0; i < c.batch; ++i)
    for (int64_t j = 0; j < c.classes; ++j) z[(size_t)(i * c.classes + j)] = logit(c, in, i, j);
  return z;
}

inline double grad_tol(fastmix_dtype d, double ref, double k, double w) {
  const double abs_term =
      w == 0.0 ? 0.0 : 1e-6 * std::fabs(k) * w;  // k is inf when MEAN has no weight
  if (d == FASTMIX_FLOAT32) return 2e-5 * std::fabs(ref) + abs_term;
  return ulp(d, ref) + 2e-5 * std::fabs(ref) + abs_term;
}

// ---- running the library ---------------------------------------------------------
struct Out {
  fastmix_device dev = FASTMIX_DEVICE_CPU;
  fastmix_status status = FASTMIX_ERROR_INTERNAL;
  std::vector<float> loss;          // max(batch, 1) + 2 floats, poisoned before
  std::vector<unsigned char> grad;  // like the logits buffer, poisoned before (in place: it)
  bool inputs_intact = true;        // labels, lambdas, partners (and logits out of place)
};

inline size_t loss_len(const Case &c) { return (size_t)std::max<int64_t>(c.batch, 1) + 2; }

// Runs the library on device `dev` with copies of the inputs in buffers of
// that device (logits and gradient 256-byte aligned plus the case's offsets;
// outputs poisoned).  inplace: grad_logits == logits.  With c.ws the workspace
// has the size fastmix_cross_entropy_workspace_size asks for on `dev` (the
// CPU asks for none; a given one must be ignored) and is poisoned.
inline Out run(fastmix_device dev, const Case &c, const Inputs &in, bool inplace = false) {
  Out o;
  o.dev = dev;
  const size_t es = dtype_size(c.dtype);
  Buffer logits = to_device(dev, in.logits), labels = to_device(dev, in.labels),
         lambdas = to_device(dev, in.lambdas), partners = to_device(dev, in.partners);
  Buffer loss(dev, loss_len(c) * sizeof(float));
  Buffer grad(dev, inplace ? 0 : in.logits.size(), (size_t)c.grad_misalign * es);
  const void *z = logits.data() + (size_t)c.offset * es;
  void *g = !c.grad   ? nullptr
            : inplace ? logits.data() + (size_t)c.offset * es
                      : grad.data() + (size_t)c.offset * es;
  const float *lam = c.mix ? lambdas.as<float>() : nullptr;
  const int64_t *par = c.mix ? partners.as<int64_t>() : nullptr;
  if (c.ws) {
    size_t bytes = 1;
    REQUIRE(fastmix_cross_entropy_workspace_size(dev, c.batch, c.red, &bytes) == FASTMIX_SUCCESS);
    if (dev == FASTMIX_DEVICE_CPU) REQUIRE(bytes == 0);
    const size_t ws_bytes = bytes ? bytes : 32;
    Buffer ws(dev, ws_bytes);
    o.status = fastmix_cross_entropy_ws(
        dev, c.dtype, z, c.batch, c.classes, c.stride, labels.as<int64_t>(), lam, par, c.red, c.eps,
        c.ignore, loss.as<float>(), g, c.grad_scale, ws.data(), ws_bytes, nullptr);
    finish(dev);  // before ws goes
  } else {
    o.status = fastmix_cross_entropy(dev, c.dtype, z, c.batch, c.classes, c.stride,
                                     labels.as<int64_t>(), lam, par, c.red, c.eps, c.ignore,
                                     loss.as<float>(), g, c.grad_scale, nullptr);
    finish(dev);
  }
  o.loss = loss.copy_as<float>();
  o.grad = inplace ? logits.copy() : grad.copy();
  auto same = [](const Buffer &b, const void *host, size_t bytes) {
    if (bytes == 0) return true;  // an empty input: its data() may be NULL
    const std::vector<unsigned char> now = b.copy();
    return std::memcmp(now.data(), host, bytes) == 0;
  };
  o.inputs_intact = same(labels, in.labels.data(), in.labels.size() * 8) &&
                    same(lambdas, in.lambdas.data(), in.lambdas.size() * 4) &&
                    same(partners, in.partners.data(), in.partners.size() * 8) &&
                    (inplace || same(logits, in.logits.data(), in.logits.size()));
  return o;
}

// Checks the outputs of a successful call against the reference; in place,
// the elements outside the rows must still hold the inputs.
inline void check(const Case &c, const Inputs &in, const Out &o, const Ref &r,
                  bool inplace = false) {
  CAPTURE(device_name(o.dev), dtype_name(c.dtype), c.batch, c.classes, c.stride, c.mix, (int)c.red,
          c.eps, c.offset, c.grad_misalign, c.grad, c.grad_scale, c.ws, inplace);
  INFO("fastmix_last_error(): " << fastmix_last_error());
  REQUIRE(o.status == FASTMIX_SUCCESS);
  CHECK(o.inputs_intact);
  const size_t written = c.red == FASTMIX_REDUCTION_NONE ? (size_t)c.batch : 1;
  if (c.red == FASTMIX_REDUCTION_NONE) {
    for (int64_t i = 0; i < c.batch; ++i) {
      CAPTURE(i, o.loss[(size_t)i], r.row_loss[(size_t)i]);
      CHECK(close(o.loss[(size_t)i], r.row_loss[(size_t)i], r.row_tol[(size_t)i]));
    }
  } else {
    CAPTURE(o.loss[0], r.reduced, r.reduced_tol);
    CHECK(close(o.loss[0], r.reduced, r.reduced_tol));
  }
  CHECK(poisoned(reinterpret_cast<const unsigned char *>(o.loss.data() + written),
                 (o.loss.size() - written) * sizeof(float)));
  const size_t es = dtype_size(c.dtype);
  const size_t n = o.grad.size() / es;
  int bad = 0;
  for (size_t e = 0; e < n; ++e) {
    const int64_t rel = (int64_t)e - c.offset;
    const bool in_row = rel >= 0 && rel / c.stride < c.batch && rel % c.stride < c.classes;
    if (!c.grad || !in_row) {
      const bool untouched =
          inplace ? std::memcmp(o.grad.data() + e * es, in.logits.data() + e * es, es) == 0
                  : poisoned(o.grad.data() + e * es, es);
      if (!untouched && ++bad < 5)
        FAIL_CHECK("element " << e << " outside the gradient rows was written");
      continue;
    }
    const int64_t i = rel / c.stride, j = rel % c.stride;
    const double want = r.grad[(size_t)(i * c.classes + j)];
    const double got = decode(c.dtype, o.grad.data(), (int64_t)e);
    const double tol = grad_tol(c.dtype, want, r.k, r.row_w[(size_t)i]);
    if (!close(got, want, tol) && ++bad < 5)
      FAIL_CHECK("grad[" << i << "][" << j << "] = " << got << ", want " << want << " +- " << tol);
  }
  CHECK(bad == 0);
}

// One call on `dev` with fresh buffers, checked against the reference.
inline Out run_and_check(fastmix_device dev, const Case &c, const Inputs &in,
                         bool inplace = false) {
  const Ref r = reference(c, decode_rows(c, in), in);
  Out o = run(dev, c, in, inplace);
  check(c, in, o, r, inplace);
  return o;
}

constexpr fastmix_dtype kDtypes[] = {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16};
constexpr fastmix_reduction kReductions[] = {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN,
                                             FASTMIX_REDUCTION_SUM};

}  // namespace ce_test
