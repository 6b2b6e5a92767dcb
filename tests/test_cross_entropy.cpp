// fastmix_cross_entropy and fastmix_soft_targets on the CPU backend, against a
// float64 reference written here from the decoded inputs (no library code).
//
// Tolerances (each justified where it is used):
//  - loss: the library works in float32 (logits decoded exactly, lse with the
//    maximum subtracted); its error is a few float32 roundings of the terms
//    it adds, i.e. relative ~1e-6 of the larger of the loss and the logit
//    magnitudes.  We allow 1e-5 * (|ref| + w * (1 + max|z|)) per row.
//  - float32 gradient: 2e-5 relative (the float32 sum of up to 50000 exps
//    has a relative error of a few 1e-6, which enters every softmax value)
//    plus 1e-6 * |k| * (w1 + w2) absolute for the cancellation in
//    (w1 + w2) * p - w1 * t1 - w2 * t2 (terms of size <= |k| * (w1 + w2)).
//  - fp16/bf16 gradient: the float32 value is rounded once to the storage
//    type, so it lies within half an ulp (of the storage type) of a value
//    within the float32 tolerance above; we allow one ulp at the reference
//    plus the same absolute term (and fp16's smallest subnormal).
#include <catch2/catch.hpp>

#include <fastmix/fastmix.h>

#include "test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using fmt_test::decode;
using fmt_test::dtype_name;
using fmt_test::dtype_size;
using fmt_test::encode;
using fmt_test::kPoison;
using fmt_test::test_seed;

#include "ce_cases.hpp"

namespace {

using namespace ce_test;

double logit(const Case &c, const Inputs &in, int64_t i, int64_t j) {
  return decode(c.dtype, in.logits.data(), c.offset + i * c.stride + j);
}

struct Ref {
  std::vector<double> row_loss, row_tol, grad;  // grad: [batch][classes]
  double reduced = 0.0, reduced_tol = 0.0, k = 1.0;
  std::vector<double> row_w;
};

// The contract in float64.  z: [batch][classes] (decoded logits).
Ref reference(const Case &c, const std::vector<double> &z, const Inputs &in) {
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

std::vector<double> decode_rows(const Case &c, const Inputs &in) {
  std::vector<double> z((size_t)(c.batch * c.classes));
  for (int64_t i = 0; i < c.batch; ++i)
    for (int64_t j = 0; j < c.classes; ++j) z[(size_t)(i * c.classes + j)] = logit(c, in, i, j);
  return z;
}

double grad_tol(fastmix_dtype d, double ref, double k, double w) {
  const double abs_term =
      w == 0.0 ? 0.0 : 1e-6 * std::fabs(k) * w;  // k is inf when MEAN has no weight
  if (d == FASTMIX_FLOAT32) return 2e-5 * std::fabs(ref) + abs_term;
  return ulp(d, ref) + 2e-5 * std::fabs(ref) + abs_term;
}

struct Out {
  fastmix_status status;
  std::vector<float> loss;          // max(batch, 1) + 2 floats, poisoned before
  std::vector<unsigned char> grad;  // like the logits buffer, poisoned before
};

// Runs the library on a copy of the inputs.  inplace: grad_logits == logits.
Out run(const Case &c, const Inputs &in, bool inplace = false) {
  Out o;
  o.loss.resize((size_t)std::max<int64_t>(c.batch, 1) + 2);
  std::memset(o.loss.data(), kPoison, o.loss.size() * sizeof(float));
  o.grad = in.logits;
  if (!inplace) std::memset(o.grad.data(), kPoison, o.grad.size());
  const size_t es = dtype_size(c.dtype);
  const void *logits = inplace ? o.grad.data() + c.offset * es : in.logits.data() + c.offset * es;
  void *grad = c.grad ? o.grad.data() + c.offset * es : nullptr;
  if (c.ws) {
    // The CPU needs no workspace (its size is 0); a given one must be ignored.
    size_t bytes = 1;
    REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CPU, c.batch, c.red, &bytes) ==
            FASTMIX_SUCCESS);
    REQUIRE(bytes == 0);
    std::vector<uint64_t> ws(4, ~uint64_t{0});
    o.status = fastmix_cross_entropy_ws(
        FASTMIX_DEVICE_CPU, c.dtype, logits, c.batch, c.classes, c.stride, in.labels.data(),
        c.mix ? in.lambdas.data() : nullptr, c.mix ? in.partners.data() : nullptr, c.red, c.eps,
        c.ignore, o.loss.data(), grad, c.grad_scale, ws.data(), ws.size() * 8, nullptr);
    return o;
  }
  o.status = fastmix_cross_entropy(FASTMIX_DEVICE_CPU, c.dtype, logits, c.batch, c.classes,
                                   c.stride, in.labels.data(), c.mix ? in.lambdas.data() : nullptr,
                                   c.mix ? in.partners.data() : nullptr, c.red, c.eps, c.ignore,
                                   o.loss.data(), grad, c.grad_scale, nullptr);
  return o;
}

// Checks the outputs of a successful call against the reference; in place,
// the elements outside the rows must still hold the inputs.
void check(const Case &c, const Inputs &in, const Out &o, const Ref &r, bool inplace = false) {
  CAPTURE(dtype_name(c.dtype), c.batch, c.classes, c.stride, c.mix, (int)c.red, c.eps, c.offset,
          c.grad_scale, inplace);
  REQUIRE(o.status == FASTMIX_SUCCESS);
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

void run_and_check(const Case &c, const Inputs &in) {
  const Ref r = reference(c, decode_rows(c, in), in);
  check(c, in, run(c, in), r);
}

const fastmix_dtype kDtypes[] = {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16};
const fastmix_reduction kReductions[] = {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN,
                                         FASTMIX_REDUCTION_SUM};

}  // namespace

TEST_CASE("cross-entropy matches a float64 reference", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  for (fastmix_dtype d : kDtypes)
    for (fastmix_reduction red : kReductions)
      for (float eps : {0.0f, 0.1f})
        for (bool mix : {false, true})
          for (int64_t C : {1, 2, 7, 33, 129, 1001, 2049}) {
            Case c;
            c.dtype = d;
            c.red = red;
            c.eps = eps;
            c.mix = mix;
            c.classes = C;
            c.batch = 1 + (int64_t)(rng() % 9);
            c.stride = C + (int64_t)(rng() % 3);  // gaps between rows, sometimes none
            c.grad_scale = rng() % 2 ? 1.0f : 0.37f;
            c.offset = (int64_t)(rng() % 3);  // 0 or misaligned by 1 or 2 elements
            const Inputs in = make_inputs(c, rng, 3.0, 0.2);
            run_and_check(c, in);
          }
}

TEST_CASE("cross-entropy with a workspace: same reference, and the workspace size",
          "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 21);
  for (fastmix_dtype d : kDtypes)
    for (fastmix_reduction red : kReductions) {
      Case c;
      c.dtype = d;
      c.red = red;
      c.eps = 0.1f;
      c.classes = 1 + (int64_t)(rng() % 300);
      c.stride = c.classes + 1;
      c.batch = 1 + (int64_t)(rng() % 9);
      c.ws = true;
      const Inputs in = make_inputs(c, rng, 3.0, 0.2);
      run_and_check(c, in);
    }
  // CUDA's size: a double and a float per row, rounded to 8; NONE and the CPU need none.
  size_t bytes = 0;
  REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, 5, FASTMIX_REDUCTION_MEAN,
                                               &bytes) == FASTMIX_SUCCESS);
  CHECK(bytes == 32);
  REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, 4, FASTMIX_REDUCTION_SUM,
                                               &bytes) == FASTMIX_SUCCESS);
  CHECK(bytes == 24);
  REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, 9, FASTMIX_REDUCTION_NONE,
                                               &bytes) == FASTMIX_SUCCESS);
  CHECK(bytes == 0);
  bytes = 7;
  CHECK(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, 9, (fastmix_reduction)3,
                                             &bytes) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("reduction") != std::string::npos);
  CHECK(bytes == 7);
  CHECK(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CPU, -1, FASTMIX_REDUCTION_MEAN,
                                             &bytes) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CPU, 1, FASTMIX_REDUCTION_MEAN,
                                             nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("bytes") != std::string::npos);
}

// The workspace is checked before anything else happens, also before the
// device is looked for, so these CUDA calls are answered here without a GPU.
TEST_CASE("cross-entropy with a workspace: a bad CUDA workspace is refused first",
          "[cross_entropy]") {
  std::mt19937_64 rng(test_seed() + 22);
  Case c;
  c.batch = 3;
  const Inputs in = make_inputs(c, rng);
  std::vector<float> loss(4, 0.0f);
  std::memset(loss.data(), kPoison, loss.size() * 4);
  const std::vector<float> before = loss;
  std::vector<uint64_t> ws(8, 0);
  struct Bad {
    const char *what, *message;
    void *ptr;
    size_t bytes;
  };
  const Bad bads[] = {
      {"overlapping loss", "overlaps", loss.data(), 32},
      {"misaligned", "aligned", reinterpret_cast<char *>(ws.data()) + 4, 32},
      {"too small", "workspace_bytes", ws.data(), 16},  // 3 rows need 8 + 12 -> 24 bytes
  };
  for (const Bad &b : bads) {
    CAPTURE(b.what);
    CHECK(fastmix_cross_entropy_ws(FASTMIX_DEVICE_CUDA, c.dtype, in.logits.data(), c.batch,
                                   c.classes, c.stride, in.labels.data(), in.lambdas.data(),
                                   in.partners.data(), FASTMIX_REDUCTION_MEAN, 0.0f, -100,
                                   loss.data(), nullptr, 1.0f, b.ptr, b.bytes,
                                   nullptr) == FASTMIX_ERROR_INVALID_VALUE);
    CHECK(std::string(fastmix_last_error()).find(b.message) != std::string::npos);
    CHECK(std::memcmp(loss.data(), before.data(), loss.size() * 4) == 0);
  }
  // On the CPU the workspace is not used, so it is not checked either.
  CHECK(fastmix_cross_entropy_ws(FASTMIX_DEVICE_CPU, c.dtype, in.logits.data(), c.batch, c.classes,
                                 c.stride, in.labels.data(), in.lambdas.data(), in.partners.data(),
                                 FASTMIX_REDUCTION_MEAN, 0.0f, -100, loss.data(), nullptr, 1.0f,
                                 reinterpret_cast<char *>(ws.data()) + 4, 0,
                                 nullptr) == FASTMIX_SUCCESS);
  CHECK(std::isfinite(loss[0]));
}

TEST_CASE("cross-entropy: large and odd class counts", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 1);
  for (fastmix_dtype d : kDtypes)
    for (int64_t C : {4097, 49999}) {
      Case c;
      c.dtype = d;
      c.classes = C;
      c.stride = C + 5;
      c.batch = 3;
      c.eps = 0.1f;
      c.offset = 1;
      run_and_check(c, make_inputs(c, rng, 2.0));
    }
}

TEST_CASE("cross-entropy: in-place gradient", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 2);
  for (fastmix_dtype d : kDtypes)
    for (fastmix_reduction red : kReductions) {
      Case c;
      c.dtype = d;
      c.red = red;
      c.classes = 301;
      c.stride = 305;
      c.batch = 6;
      c.eps = 0.2f;
      c.grad_scale = 2.5f;
      const Inputs in = make_inputs(c, rng, 3.0, 0.2);
      const Ref r = reference(c, decode_rows(c, in), in);
      check(c, in, run(c, in, true), r, true);
    }
}

TEST_CASE("cross-entropy: extreme logits stay finite", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 3);
  for (fastmix_dtype d : kDtypes) {
    Case c;
    c.dtype = d;
    c.classes = 100;
    c.stride = 100;
    c.batch = 4;
    c.eps = 0.1f;
    c.red = FASTMIX_REDUCTION_NONE;
    Inputs in = make_inputs(c, rng);
    for (size_t j = 0; j < buf_elems(c); ++j)
      encode(d, in.logits.data(), (int64_t)j, rng() % 2 ? 1e4 : -1e4);
    const Out o = run(c, in);
    for (int64_t i = 0; i < c.batch; ++i) CHECK(std::isfinite(o.loss[(size_t)i]));
    check(c, in, o, reference(c, decode_rows(c, in), in));
  }
}

TEST_CASE("cross-entropy: a -inf logit as a mask", "[cross_entropy]") {
  for (fastmix_dtype d : kDtypes) {
    Case c;
    c.dtype = d;
    c.classes = 5;
    c.stride = 5;
    c.batch = 2;
    c.mix = false;
    c.red = FASTMIX_REDUCTION_SUM;
    Inputs in;
    in.logits.assign(buf_elems(c) * dtype_size(d), 0);
    const double z[10] = {1.0, -INFINITY, 0.5, 2.0, -1.0, -INFINITY, 0.0, 0.25, 3.0, -INFINITY};
    for (int j = 0; j < 10; ++j) {
      if (std::isinf(z[j]))
        put_neg_inf(d, in.logits.data(), j);
      else
        encode(d, in.logits.data(), j, z[j]);
    }
    in.labels = {3, 2};
    const Out o = run(c, in);
    REQUIRE(o.status == FASTMIX_SUCCESS);
    CHECK(std::isfinite(o.loss[0]));
    check(c, in, o, reference(c, decode_rows(c, in), in));
    CHECK(decode(d, o.grad.data(), 1) == 0.0);  // softmax of -inf is exactly 0
  }
}

TEST_CASE("cross-entropy: ignore_index", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 4);
  for (fastmix_reduction red : kReductions)
    for (bool mix : {false, true}) {
      Case c;
      c.red = red;
      c.mix = mix;
      c.classes = 17;
      c.stride = 19;
      c.batch = 5;
      c.ignore = 3;  // an ignore_index inside [0, classes)
      c.eps = 0.05f;
      Inputs in = make_inputs(c, rng, 3.0, 0.4);
      run_and_check(c, in);
      // Every row ignored: MEAN is NaN (0 / 0, as PyTorch), SUM 0, NONE
      // zeros; the gradient is all zeros.
      std::fill(in.labels.begin(), in.labels.end(), c.ignore);
      const Out o = run(c, in);
      check(c, in, o, reference(c, decode_rows(c, in), in));
      if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(o.loss[0]));
      if (red == FASTMIX_REDUCTION_SUM) CHECK(o.loss[0] == 0.0f);
    }
}

TEST_CASE("cross-entropy: batch 0", "[cross_entropy]") {
  for (fastmix_reduction red : kReductions) {
    Case c;
    c.batch = 0;
    c.red = red;
    Inputs in;
    in.logits.assign(buf_elems(c) * 4, 0);
    in.labels = {0};
    in.lambdas = {0.5f};
    in.partners = {0};
    const Out o = run(c, in);
    REQUIRE(o.status == FASTMIX_SUCCESS);
    if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(o.loss[0]));
    if (red == FASTMIX_REDUCTION_SUM) CHECK(o.loss[0] == 0.0f);
    const size_t written = red == FASTMIX_REDUCTION_NONE ? 0 : 1;
    CHECK(poisoned(reinterpret_cast<const unsigned char *>(o.loss.data() + written),
                   (o.loss.size() - written) * 4));
    CHECK(poisoned(o.grad.data(), o.grad.size()));
  }
}

TEST_CASE("cross-entropy: deterministic", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 5);
  Case c;
  c.batch = 300;
  c.classes = 257;
  c.stride = 257;
  c.eps = 0.1f;
  const Inputs in = make_inputs(c, rng);
  const Out a = run(c, in), b = run(c, in);
  CHECK(std::memcmp(a.loss.data(), b.loss.data(), sizeof(float)) == 0);
  CHECK(a.grad == b.grad);
  check(c, in, a, reference(c, decode_rows(c, in), in));
}

TEST_CASE("cross-entropy: gradient matches a finite difference", "[cross_entropy]") {
  // The library's analytic gradient against a central difference of the
  // float64 reference loss (so the reference's gradient formula is checked
  // too).  h = 1e-5 gives a truncation error ~h^2 * |f'''| ~ 1e-10 and a
  // cancellation error ~1e-16 / h ~ 1e-11, far below the float32 error of
  // the library's gradient (~1e-7 relative), so 1e-5 relative + 1e-6 * |k|
  // absolute holds.
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 6);
  for (fastmix_reduction red : kReductions)
    for (float eps : {0.0f, 0.3f}) {
      Case c;
      c.red = red;
      c.eps = eps;
      c.classes = 6;
      c.stride = 6;
      c.batch = 3;
      c.grad_scale = 1.5f;
      const Inputs in = make_inputs(c, rng, 2.0, 0.0);
      const Out o = run(c, in);
      REQUIRE(o.status == FASTMIX_SUCCESS);
      std::vector<double> z = decode_rows(c, in);
      const double k = reference(c, z, in).k;
      auto total = [&](const std::vector<double> &zz) {
        const Ref r = reference(c, zz, in);
        double l = red == FASTMIX_REDUCTION_NONE
                       ? std::accumulate(r.row_loss.begin(), r.row_loss.end(), 0.0)
                       : r.reduced;
        return (double)c.grad_scale * l;
      };
      const double h = 1e-5;
      for (size_t e = 0; e < z.size(); ++e) {
        const double z0 = z[e];
        z[e] = z0 + h;
        const double up = total(z);
        z[e] = z0 - h;
        const double down = total(z);
        z[e] = z0;
        const double fd = (up - down) / (2 * h);
        const double got = decode(c.dtype, o.grad.data(), (int64_t)e);
        CAPTURE(e, got, fd, (int)red, eps);
        CHECK(close(got, fd, 1e-5 * std::fabs(fd) + 1e-6 * std::fabs(k)));
      }
    }
}

// ---- errors -------------------------------------------------------------------
namespace {

// An enum holding a value outside its enumerators, as a C caller can pass.
template <class E>
E bad_enum(int v) {
  static_assert(sizeof(E) == sizeof(int), "enum size");
  E e;
  std::memcpy(&e, &v, sizeof e);
  return e;
}

// Calls with one argument changed at a time; the outputs must stay poisoned.
void expect_error(const char *name, fastmix_status want, const char *needle, fastmix_device device,
                  fastmix_dtype dtype, const void *logits, int64_t batch, int64_t classes,
                  int64_t stride, const int64_t *labels, const float *lambdas,
                  const int64_t *partners, fastmix_reduction red, float eps, float *loss,
                  void *grad) {
  CAPTURE(name);
  const fastmix_status st =
      fastmix_cross_entropy(device, dtype, logits, batch, classes, stride, labels, lambdas,
                            partners, red, eps, -100, loss, grad, 1.0f, nullptr);
  CHECK(st == want);
  CAPTURE(fastmix_last_error());
  CHECK(std::string(fastmix_last_error()).find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("cross-entropy: bad arguments write nothing", "[cross_entropy]") {
  const int64_t n = 4, C = 8;
  std::vector<float> logits((size_t)(n * C + 8), 0.5f);
  std::vector<unsigned char> grad_buf((n * C + 8) * 4);
  std::vector<unsigned char> loss_buf(4 * (n + 1));
  std::vector<int64_t> labels = {0, 1, 2, 3}, partners = {1, 0, 3, 2};
  std::vector<float> lambdas = {0.5f, 0.6f, 0.7f, 0.8f};
  float *loss = reinterpret_cast<float *>(loss_buf.data());
  float *grad = reinterpret_cast<float *>(grad_buf.data());
  const float *z = logits.data();
  const auto M = FASTMIX_REDUCTION_MEAN;
  const auto INV = FASTMIX_ERROR_INVALID_VALUE;
  const auto CPU = FASTMIX_DEVICE_CPU;
  const auto F32 = FASTMIX_FLOAT32;
  std::memset(loss_buf.data(), kPoison, loss_buf.size());
  std::memset(grad_buf.data(), kPoison, grad_buf.size());

  // A good call first: the harness itself works.
  {
    std::vector<float> l(1);
    std::vector<float> g((size_t)(n * C));
    REQUIRE(fastmix_cross_entropy(CPU, F32, z, n, C, C, labels.data(), lambdas.data(),
                                  partners.data(), M, 0.0f, -100, l.data(), g.data(), 1.0f,
                                  nullptr) == FASTMIX_SUCCESS);
  }
  const int64_t *L = labels.data(), *P = partners.data();
  const float *W = lambdas.data();
  expect_error("device", INV, "device", bad_enum<fastmix_device>(7), F32, z, n, C, C, L, W, P, M, 0,
               loss, grad);
  expect_error("dtype", INV, "dtype", CPU, bad_enum<fastmix_dtype>(9), z, n, C, C, L, W, P, M, 0,
               loss, grad);
  expect_error("batch", INV, "batch", CPU, F32, z, -1, C, C, L, W, P, M, 0, loss, grad);
  expect_error("classes", INV, "classes", CPU, F32, z, n, 0, C, L, W, P, M, 0, loss, grad);
  expect_error("stride", INV, "logits_stride", CPU, F32, z, n, C, C - 1, L, W, P, M, 0, loss, grad);
  expect_error("logits NULL", INV, "logits", CPU, F32, nullptr, n, C, C, L, W, P, M, 0, loss, grad);
  expect_error("labels NULL", INV, "labels", CPU, F32, z, n, C, C, nullptr, W, P, M, 0, loss, grad);
  expect_error("lambdas only", INV, "partners", CPU, F32, z, n, C, C, L, W, nullptr, M, 0, loss,
               grad);
  expect_error("partners only", INV, "lambdas", CPU, F32, z, n, C, C, L, nullptr, P, M, 0, loss,
               grad);
  expect_error("reduction", INV, "reduction", CPU, F32, z, n, C, C, L, W, P,
               bad_enum<fastmix_reduction>(5), 0, loss, grad);
  expect_error("eps < 0", INV, "label_smoothing", CPU, F32, z, n, C, C, L, W, P, M, -0.1f, loss,
               grad);
  expect_error("eps > 1", INV, "label_smoothing", CPU, F32, z, n, C, C, L, W, P, M, 1.5f, loss,
               grad);
  expect_error("eps NaN", INV, "label_smoothing", CPU, F32, z, n, C, C, L, W, P, M, NAN, loss,
               grad);
  expect_error("loss NULL", INV, "loss", CPU, F32, z, n, C, C, L, W, P, M, 0, nullptr, grad);
  expect_error("logits misaligned", INV, "logits", CPU, F32,
               reinterpret_cast<const unsigned char *>(z) + 1, n, C, C, L, W, P, M, 0, loss, grad);
  expect_error("grad misaligned", INV, "grad_logits", CPU, F32, z, n, C, C, L, W, P, M, 0, loss,
               grad_buf.data() + 2);
  expect_error("grad overlaps", INV, "overlaps", CPU, F32, z, n, C, C, L, W, P, M, 0, loss,
               logits.data() + 3);
  expect_error("fp16 misaligned", INV, "logits", CPU, FASTMIX_FLOAT16,
               reinterpret_cast<const unsigned char *>(z) + 1, n, C, C, L, W, P, M, 0, loss, grad);
  {
    std::vector<int64_t> bad_p = {1, 0, 4, 2};
    expect_error("partner >= batch", INV, "partners[2]", CPU, F32, z, n, C, C, L, W, bad_p.data(),
                 M, 0, loss, grad);
    bad_p[1] = -1;
    expect_error("partner < 0", INV, "partners[1]", CPU, F32, z, n, C, C, L, W, bad_p.data(), M, 0,
                 loss, grad);
  }
  {
    std::vector<int64_t> bad_l = {0, 1, C, 3};
    expect_error("label == classes", FASTMIX_ERROR_LABEL_OUT_OF_RANGE, "labels[2]", CPU, F32, z, n,
                 C, C, bad_l.data(), W, P, M, 0, loss, grad);
    bad_l = {0, -5, 2, 3};  // -5 is not ignore_index (-100)
    expect_error("label < 0", FASTMIX_ERROR_LABEL_OUT_OF_RANGE, "labels[1]", CPU, F32, z, n, C, C,
                 bad_l.data(), nullptr, nullptr, FASTMIX_REDUCTION_NONE, 0, loss, grad);
  }
  CHECK(poisoned(loss_buf.data(), loss_buf.size()));
  CHECK(poisoned(grad_buf.data(), grad_buf.size()));
}

// ---- soft targets -----------------------------------------------------------------
TEST_CASE("soft targets match the formula", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 7);
  for (fastmix_dtype d : kDtypes)
    for (bool mix : {false, true})
      for (float eps : {0.0f, 0.1f})
        for (int64_t C : {1, 5, 1000}) {
          Case c;
          c.dtype = d;
          c.mix = mix;
          c.classes = C;
          c.stride = C + 2;
          c.batch = 5;
          c.offset = 1;
          const Inputs in = make_inputs(c, rng);
          std::vector<unsigned char> t(in.logits.size(), kPoison);
          const size_t es = dtype_size(d);
          REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CPU, d, in.labels.data(),
                                       mix ? in.lambdas.data() : nullptr,
                                       mix ? in.partners.data() : nullptr, c.batch, C, eps,
                                       t.data() + es, c.stride, nullptr) == FASTMIX_SUCCESS);
          int bad = 0;
          for (size_t e = 0; e < t.size() / es; ++e) {
            const int64_t rel = (int64_t)e - 1;
            if (rel < 0 || rel / c.stride >= c.batch || rel % c.stride >= C) {
              if (!poisoned(t.data() + e * es, es)) ++bad;
              continue;
            }
            const int64_t i = rel / c.stride, j = rel % c.stride;
            const double lam = mix ? (double)in.lambdas[(size_t)i] : 1.0;
            const int64_t y2 = mix ? in.labels[(size_t)in.partners[(size_t)i]] : -1;
            const double want = (1.0 - eps) * ((j == in.labels[(size_t)i] ? lam : 0.0) +
                                               (j == y2 ? 1.0 - lam : 0.0)) +
                                (double)eps / (double)C;
            // One rounding to the storage type of a float32 value within a
            // few float32 ulps of `want`.
            const double tol =
                (d == FASTMIX_FLOAT32 ? 4e-7 * std::fabs(want) : ulp(d, want)) + 1e-9;
            if (!close(decode(d, t.data(), (int64_t)e), want, tol)) ++bad;
          }
          CAPTURE(dtype_name(d), mix, eps, C);
          CHECK(bad == 0);
        }
}

TEST_CASE("soft targets: bad arguments write nothing", "[cross_entropy]") {
  const int64_t n = 3, C = 4;
  std::vector<unsigned char> t(4 * n * C);
  std::memset(t.data(), kPoison, t.size());
  std::vector<int64_t> labels = {0, 1, 2}, partners = {2, 0, 1};
  std::vector<float> lambdas = {0.5f, 0.6f, 0.7f};
  auto call = [&](const int64_t *L, const float *W, const int64_t *P, int64_t classes,
                  int64_t stride, float eps, void *out) {
    return fastmix_soft_targets(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, L, W, P, n, classes, eps, out,
                                stride, nullptr);
  };
  auto has = [](const char *needle) {
    return std::string(fastmix_last_error()).find(needle) != std::string::npos;
  };
  std::vector<int64_t> bad_l = {0, 4, 1};
  CHECK(call(bad_l.data(), nullptr, nullptr, C, C, 0, t.data()) ==
        FASTMIX_ERROR_LABEL_OUT_OF_RANGE);
  CHECK(has("labels[1]"));
  std::vector<int64_t> bad_p = {0, 3, 1};
  CHECK(call(labels.data(), lambdas.data(), bad_p.data(), C, C, 0, t.data()) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("partners[1]"));
  CHECK(call(labels.data(), lambdas.data(), nullptr, C, C, 0, t.data()) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("partners"));
  CHECK(call(nullptr, nullptr, nullptr, C, C, 0, t.data()) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("labels"));
  CHECK(call(labels.data(), nullptr, nullptr, 0, C, 0, t.data()) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("classes"));
  CHECK(call(labels.data(), nullptr, nullptr, C, C - 1, 0, t.data()) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("targets_stride"));
  CHECK(call(labels.data(), nullptr, nullptr, C, C, 2.0f, t.data()) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("label_smoothing"));
  CHECK(call(labels.data(), nullptr, nullptr, C, C, 0, nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("targets"));
  CHECK(call(labels.data(), nullptr, nullptr, C, C, 0, t.data() + 1) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("targets"));
  CHECK(poisoned(t.data(), t.size()));
}
