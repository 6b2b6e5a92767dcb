// fastmix_cross_entropy and fastmix_soft_targets on CUDA against the CPU
// backend (which tests/test_cross_entropy.cpp checks against a float64
// reference).
//
// Tolerances: both backends compute in float32 but sum in different orders
// (the GPU reduces over a warp or a block, the CPU over a vectorised loop),
// so each result carries a few float32 roundings on both sides:
//  - loss: 1e-5 * (|cpu| + w * (1 + max|z|)) per row (relative ~1e-5, plus
//    the float32 rounding of logits of magnitude max|z|), summed for MEAN/SUM.
//  - float32 gradient: 2e-5 relative plus 1e-6 * |k| * w absolute.
//  - fp16/bf16 gradient: the two float32 values may round to neighbouring
//    storage values: one ulp of the storage type plus the float32 tolerance.
//  - soft targets: the same float32 operations on both sides with the same
//    rounding (--fmad=false, -ffp-contract=off): bitwise equal.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>
#include <fastmix/fastmix.h>

#include "../test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
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

#include "../ce_cases.hpp"

namespace {

using namespace ce_test;

// A device buffer holding a copy of host bytes (or poison).
class DevBuf {
 public:
  explicit DevBuf(size_t bytes) : bytes_(bytes) {
    REQUIRE(cudaMalloc(&ptr_, bytes ? bytes : 1) == cudaSuccess);
    REQUIRE(cudaMemset(ptr_, kPoison, bytes ? bytes : 1) == cudaSuccess);
  }
  template <class T>
  explicit DevBuf(const std::vector<T> &host) : DevBuf(host.size() * sizeof(T)) {
    if (bytes_)
      REQUIRE(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DevBuf() { cudaFree(ptr_); }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  template <class T = void>
  T *get() const {
    return static_cast<T *>(ptr_);
  }
  unsigned char *bytes(size_t offset) const { return static_cast<unsigned char *>(ptr_) + offset; }
  template <class T>
  std::vector<T> download() const {
    std::vector<T> h(bytes_ / sizeof(T));
    if (bytes_) REQUIRE(cudaMemcpy(h.data(), ptr_, bytes_, cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }

 private:
  void *ptr_ = nullptr;
  size_t bytes_;
};

struct Out {
  fastmix_status status;
  std::vector<float> loss;
  std::vector<unsigned char> grad;
};

size_t loss_len(const Case &c) { return (size_t)std::max<int64_t>(c.batch, 1) + 2; }

Out run_cpu(const Case &c, const Inputs &in) {
  Out o;
  o.loss.resize(loss_len(c));
  std::memset(o.loss.data(), kPoison, o.loss.size() * 4);
  o.grad.assign(in.logits.size(), kPoison);
  const size_t es = dtype_size(c.dtype);
  o.status = fastmix_cross_entropy(
      FASTMIX_DEVICE_CPU, c.dtype, in.logits.data() + c.offset * es, c.batch, c.classes, c.stride,
      in.labels.data(), c.mix ? in.lambdas.data() : nullptr, c.mix ? in.partners.data() : nullptr,
      c.red, c.eps, c.ignore, o.loss.data(), c.grad ? o.grad.data() + c.offset * es : nullptr,
      c.grad_scale, nullptr);
  return o;
}

// inplace: grad_logits == logits; the returned grad buffer then holds the
// logits outside the rows.
Out run_cuda(const Case &c, const Inputs &in, bool inplace = false, cudaStream_t stream = nullptr) {
  Out o;
  const size_t es = dtype_size(c.dtype);
  DevBuf logits(in.logits), labels(in.labels), lambdas(in.lambdas), partners(in.partners);
  DevBuf loss(loss_len(c) * 4), grad(in.logits.size());
  unsigned char *g = inplace ? logits.bytes(c.offset * es) : grad.bytes(c.offset * es);
  size_t ws_bytes = 0;
  if (c.ws)
    REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CUDA, c.batch, c.red, &ws_bytes) ==
            FASTMIX_SUCCESS);
  DevBuf ws(ws_bytes + 8);  // poisoned scratch
  o.status =
      c.ws ? fastmix_cross_entropy_ws(FASTMIX_DEVICE_CUDA, c.dtype, logits.bytes(c.offset * es),
                                      c.batch, c.classes, c.stride, labels.get<int64_t>(),
                                      c.mix ? lambdas.get<float>() : nullptr,
                                      c.mix ? partners.get<int64_t>() : nullptr, c.red, c.eps,
                                      c.ignore, loss.get<float>(), c.grad ? g : nullptr,
                                      c.grad_scale, ws.bytes(0), ws_bytes, stream)
           : fastmix_cross_entropy(
                 FASTMIX_DEVICE_CUDA, c.dtype, logits.bytes(c.offset * es), c.batch, c.classes,
                 c.stride, labels.get<int64_t>(), c.mix ? lambdas.get<float>() : nullptr,
                 c.mix ? partners.get<int64_t>() : nullptr, c.red, c.eps, c.ignore,
                 loss.get<float>(), c.grad ? g : nullptr, c.grad_scale, stream);
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  o.loss = loss.download<float>();
  o.grad = inplace ? logits.download<unsigned char>() : grad.download<unsigned char>();
  return o;
}

// Per-row weight (w1 + w2) and max |z|, for the tolerances.
void row_scales(const Case &c, const Inputs &in, int64_t i, double *w, double *maxabs) {
  const int64_t y1 = in.labels[(size_t)i];
  const double lam = c.mix ? (double)in.lambdas[(size_t)i] : 1.0;
  *w = (y1 != c.ignore ? lam : 0.0);
  if (c.mix && in.labels[(size_t)in.partners[(size_t)i]] != c.ignore) *w += 1.0 - lam;
  *maxabs = 0.0;
  for (int64_t j = 0; j < c.classes; ++j) {
    const double z = decode(c.dtype, in.logits.data(), c.offset + i * c.stride + j);
    if (std::isfinite(z)) *maxabs = std::max(*maxabs, std::fabs(z));
  }
}

void compare(const Case &c, const Inputs &in, const Out &cpu, const Out &gpu,
             bool inplace = false) {
  CAPTURE(dtype_name(c.dtype), c.batch, c.classes, c.stride, c.mix, (int)c.red, c.eps, c.offset,
          c.grad_scale, inplace);
  REQUIRE(cpu.status == FASTMIX_SUCCESS);
  REQUIRE(gpu.status == FASTMIX_SUCCESS);
  std::vector<double> w((size_t)c.batch), mx((size_t)c.batch), tol((size_t)c.batch);
  double wsum = 0.0, tsum = 0.0;
  for (int64_t i = 0; i < c.batch; ++i) {
    row_scales(c, in, i, &w[(size_t)i], &mx[(size_t)i]);
    tol[(size_t)i] = 1e-5 * (std::fabs(cpu.loss[(size_t)i < cpu.loss.size() ? (size_t)i : 0]) +
                             w[(size_t)i] * (1.0 + mx[(size_t)i] + std::log((double)c.classes)));
    wsum += w[(size_t)i];
  }
  const size_t written = c.red == FASTMIX_REDUCTION_NONE ? (size_t)c.batch : 1;
  if (c.red == FASTMIX_REDUCTION_NONE) {
    for (int64_t i = 0; i < c.batch; ++i) {
      CAPTURE(i, cpu.loss[(size_t)i], gpu.loss[(size_t)i]);
      CHECK(close(gpu.loss[(size_t)i], cpu.loss[(size_t)i], tol[(size_t)i]));
    }
  } else {
    for (int64_t i = 0; i < c.batch; ++i)
      tsum += 1e-5 * w[(size_t)i] * (1.0 + mx[(size_t)i] + 20.0);
    const double t =
        1e-5 * std::fabs(cpu.loss[0]) + (c.red == FASTMIX_REDUCTION_MEAN ? tsum / wsum : tsum);
    CAPTURE(cpu.loss[0], gpu.loss[0], t);
    CHECK(close(gpu.loss[0], cpu.loss[0], t));
  }
  CHECK(poisoned(reinterpret_cast<const unsigned char *>(gpu.loss.data() + written),
                 (gpu.loss.size() - written) * 4));
  const double k = (double)c.grad_scale * (c.red == FASTMIX_REDUCTION_MEAN ? 1.0 / wsum : 1.0);
  const size_t es = dtype_size(c.dtype);
  int bad = 0;
  for (size_t e = 0; e < gpu.grad.size() / es; ++e) {
    const int64_t rel = (int64_t)e - c.offset;
    const bool in_row = rel >= 0 && rel / c.stride < c.batch && rel % c.stride < c.classes;
    if (!c.grad || !in_row) {
      const bool untouched =
          inplace ? std::memcmp(gpu.grad.data() + e * es, in.logits.data() + e * es, es) == 0
                  : poisoned(gpu.grad.data() + e * es, es);
      if (!untouched && ++bad < 5)
        FAIL_CHECK("element " << e << " outside the gradient rows was written");
      continue;
    }
    const int64_t i = rel / c.stride, j = rel % c.stride;
    const double want = decode(c.dtype, cpu.grad.data(), (int64_t)e);
    const double got = decode(c.dtype, gpu.grad.data(), (int64_t)e);
    const double wi = w[(size_t)i];
    const double t = 2e-5 * std::fabs(want) + (wi == 0.0 ? 0.0 : 1e-6 * std::fabs(k) * wi) +
                     (c.dtype == FASTMIX_FLOAT32 ? 0.0 : ulp(c.dtype, want));
    if (!close(got, want, t) && ++bad < 5)
      FAIL_CHECK("grad[" << i << "][" << j << "] = " << got << ", cpu " << want << " +- " << t);
  }
  CHECK(bad == 0);
}

const fastmix_dtype kDtypes[] = {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16};
const fastmix_reduction kReductions[] = {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN,
                                         FASTMIX_REDUCTION_SUM};

}  // namespace

TEST_CASE("cuda cross-entropy matches the CPU backend", "[cross_entropy][racecheck]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  for (fastmix_dtype d : kDtypes)
    for (fastmix_reduction red : kReductions)
      for (float eps : {0.0f, 0.1f})
        for (bool mix : {false, true})
          for (int64_t C : {1, 2, 7, 33, 129, 1001, 2049, 4097, 9000}) {
            Case c;
            c.dtype = d;
            c.red = red;
            c.eps = eps;
            c.mix = mix;
            c.classes = C;
            c.batch = 1 + (int64_t)(rng() % 40);
            c.stride = C + (int64_t)(rng() % 3);
            c.grad_scale = rng() % 2 ? 1.0f : 0.37f;
            c.offset = (int64_t)(rng() % 3);
            c.grad = rng() % 4 != 0;
            const Inputs in = make_inputs(c, rng, 3.0, 0.2);
            compare(c, in, run_cpu(c, in), run_cuda(c, in));
          }
}

TEST_CASE("cuda cross-entropy: large rows (shared-memory cache and streaming)", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 1);
  for (fastmix_dtype d : kDtypes)
    for (int64_t C : {49999, 120001, 262144})
      for (fastmix_reduction red : {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN}) {
        Case c;
        c.dtype = d;
        c.classes = C;
        c.stride = C + 3;
        c.batch = 5;
        c.eps = 0.1f;
        c.red = red;
        c.offset = 1;
        const Inputs in = make_inputs(c, rng, 2.0, 0.1);
        compare(c, in, run_cpu(c, in), run_cuda(c, in));
      }
}

TEST_CASE("cuda cross-entropy: many rows", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 2);
  for (fastmix_reduction red : kReductions) {
    Case c;
    c.dtype = FASTMIX_BFLOAT16;
    c.classes = 1000;
    c.stride = 1000;
    c.batch = 3000;
    c.eps = 0.1f;
    c.red = red;
    const Inputs in = make_inputs(c, rng, 3.0, 0.05);
    compare(c, in, run_cpu(c, in), run_cuda(c, in));
  }
}

TEST_CASE("cuda cross-entropy: in place, extreme logits, -inf mask, all ignored",
          "[cross_entropy][racecheck]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 3);
  for (fastmix_dtype d : kDtypes)
    for (fastmix_reduction red : kReductions) {
      for (int64_t C : {301, 5000, 70001}) {  // warp, block with cache, block streaming (fp32)
        Case c;
        c.dtype = d;
        c.red = red;
        c.classes = C;
        c.stride = C + 4;
        c.batch = 6;
        c.eps = 0.2f;
        c.grad_scale = 2.5f;
        c.offset = 1;
        const Inputs in = make_inputs(c, rng, 3.0, 0.2);
        compare(c, in, run_cpu(c, in), run_cuda(c, in, true), true);
      }
      {
        Case c;
        c.dtype = d;
        c.red = red;
        c.classes = 100;
        c.stride = 100;
        c.batch = 4;
        c.eps = 0.1f;
        Inputs in = make_inputs(c, rng);
        for (size_t j = 0; j < buf_elems(c); ++j)
          encode(d, in.logits.data(), (int64_t)j, rng() % 2 ? 1e4 : -1e4);
        const Out g = run_cuda(c, in);
        for (size_t i = 0; i < (red == FASTMIX_REDUCTION_NONE ? (size_t)c.batch : 1); ++i)
          CHECK(std::isfinite(g.loss[i]));
        compare(c, in, run_cpu(c, in), g);
      }
      {
        Case c;
        c.dtype = d;
        c.red = red;
        c.classes = 40;
        c.stride = 40;
        c.batch = 3;
        c.mix = false;
        Inputs in = make_inputs(c, rng);
        for (int64_t i = 0; i < c.batch; ++i)
          for (int64_t j = 0; j < c.classes; j += 3)
            if (j != in.labels[(size_t)i]) put_neg_inf(d, in.logits.data(), i * c.stride + j);
        const Out g = run_cuda(c, in);
        CHECK(std::isfinite(g.loss[0]));
        compare(c, in, run_cpu(c, in), g);
      }
      {
        Case c;
        c.dtype = d;
        c.red = red;
        c.classes = 3000;
        c.stride = 3000;
        c.batch = 7;
        Inputs in = make_inputs(c, rng);
        std::fill(in.labels.begin(), in.labels.end(), c.ignore);
        const Out g = run_cuda(c, in);
        compare(c, in, run_cpu(c, in), g);
        if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(g.loss[0]));
        if (red == FASTMIX_REDUCTION_SUM) CHECK(g.loss[0] == 0.0f);
      }
    }
}

TEST_CASE("cuda cross-entropy: batch 0", "[cross_entropy]") {
  for (fastmix_reduction red : kReductions) {
    Case c;
    c.batch = 0;
    c.red = red;
    std::mt19937_64 rng(1);
    const Inputs in = make_inputs(c, rng);
    const Out g = run_cuda(c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(g.loss[0]));
    if (red == FASTMIX_REDUCTION_SUM) CHECK(g.loss[0] == 0.0f);
    const size_t written = red == FASTMIX_REDUCTION_NONE ? 0 : 1;
    CHECK(poisoned(reinterpret_cast<const unsigned char *>(g.loss.data() + written),
                   (g.loss.size() - written) * 4));
    CHECK(poisoned(g.grad.data(), g.grad.size()));
  }
}

TEST_CASE("cuda cross-entropy is deterministic", "[cross_entropy]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 4);
  for (int64_t C : {100, 5000, 100000})
    for (fastmix_reduction red : kReductions) {
      Case c;
      c.classes = C;
      c.stride = C;
      c.batch = C > 10000 ? 20 : 700;
      c.eps = 0.1f;
      c.red = red;
      const Inputs in = make_inputs(c, rng);
      const Out a = run_cuda(c, in), b = run_cuda(c, in);
      CHECK(std::memcmp(a.loss.data(), b.loss.data(), a.loss.size() * 4) == 0);
      CHECK(a.grad == b.grad);
    }
}

TEST_CASE(
    "cuda cross-entropy with a workspace: MEAN/SUM over the whole grid match the CPU, "
    "deterministically",
    "[cross_entropy][racecheck]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed + 8);
  for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_BFLOAT16})
    for (fastmix_reduction red : {FASTMIX_REDUCTION_MEAN, FASTMIX_REDUCTION_SUM})
      for (int64_t C : {1000, 70000}) {
        Case c;
        c.dtype = d;
        c.red = red;
        c.classes = C;
        c.stride = C + 3;
        c.batch = C > 10000 ? 40 : 3000;
        c.eps = 0.1f;
        c.ws = true;
        CAPTURE(dtype_name(d), (int)red, C);
        const Inputs in = make_inputs(c, rng, 3.0, 0.1);
        const Out cpu = run_cpu(c, in), a = run_cuda(c, in), b = run_cuda(c, in);
        REQUIRE(a.status == FASTMIX_SUCCESS);
        compare(c, in, cpu, a);
        CHECK(std::memcmp(a.loss.data(), b.loss.data(), a.loss.size() * 4) == 0);
        CHECK(a.grad == b.grad);
      }
}

TEST_CASE("cuda cross-entropy: a bad label or partner on the device makes its row NaN",
          "[cross_entropy]") {
  std::mt19937_64 rng(test_seed() + 5);
  for (int64_t C : {10, 5000}) {
    Case c;
    c.classes = C;
    c.stride = C;
    c.batch = 4;
    c.red = FASTMIX_REDUCTION_NONE;
    c.mix = false;
    Inputs in = make_inputs(c, rng);
    in.labels[1] = C;  // out of range, not ignore_index
    Out g = run_cuda(c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[1]));
    CHECK(std::isfinite(g.loss[0]));
    CHECK(std::isfinite(g.loss[2]));
    for (int64_t j = 0; j < C; ++j) CHECK(std::isnan(decode(c.dtype, g.grad.data(), c.stride + j)));
    c.red = FASTMIX_REDUCTION_MEAN;
    g = run_cuda(c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[0]));
    // A partner out of range.
    c.mix = true;
    c.red = FASTMIX_REDUCTION_NONE;
    in.labels[1] = 0;
    in.partners[2] = c.batch;
    g = run_cuda(c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[2]));
    CHECK(std::isfinite(g.loss[3]));
    // The next good call works.
    in.partners[2] = 0;
    compare(c, in, run_cpu(c, in), run_cuda(c, in));
  }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda cross-entropy: host pointers are refused", "[cross_entropy]") {
  std::vector<float> z(40, 0.0f), loss(1, 0.0f);
  std::vector<int64_t> labels = {0, 1, 2, 3};
  DevBuf dz(z), dl(labels), dloss(4);
  CHECK(fastmix_cross_entropy(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, z.data(), 4, 10, 10,
                              dl.get<int64_t>(), nullptr, nullptr, FASTMIX_REDUCTION_MEAN, 0.0f,
                              -100, dloss.get<float>(), nullptr, 1.0f,
                              nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("logits") != std::string::npos);
  CHECK(fastmix_cross_entropy(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, dz.get(), 4, 10, 10,
                              dl.get<int64_t>(), nullptr, nullptr, FASTMIX_REDUCTION_MEAN, 0.0f,
                              -100, loss.data(), nullptr, 1.0f,
                              nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("loss") != std::string::npos);
  CHECK(poisoned(dloss.download<unsigned char>().data(), 4));
}

TEST_CASE("cuda soft targets match the CPU backend bitwise", "[cross_entropy]") {
  std::mt19937_64 rng(test_seed() + 6);
  for (fastmix_dtype d : kDtypes)
    for (bool mix : {false, true})
      for (float eps : {0.0f, 0.1f})
        for (int64_t C : {1, 5, 1000, 10000}) {
          Case c;
          c.dtype = d;
          c.mix = mix;
          c.classes = C;
          c.stride = C + 2;
          c.batch = 9;
          c.offset = 1;
          const Inputs in = make_inputs(c, rng);
          const size_t es = dtype_size(d);
          std::vector<unsigned char> cpu(in.logits.size(), kPoison);
          REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CPU, d, in.labels.data(),
                                       mix ? in.lambdas.data() : nullptr,
                                       mix ? in.partners.data() : nullptr, c.batch, C, eps,
                                       cpu.data() + es, c.stride, nullptr) == FASTMIX_SUCCESS);
          DevBuf labels(in.labels), lambdas(in.lambdas), partners(in.partners), t(in.logits.size());
          REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CUDA, d, labels.get<int64_t>(),
                                       mix ? lambdas.get<float>() : nullptr,
                                       mix ? partners.get<int64_t>() : nullptr, c.batch, C, eps,
                                       t.bytes(es), c.stride, nullptr) == FASTMIX_SUCCESS);
          REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
          CAPTURE(dtype_name(d), mix, eps, C);
          CHECK(t.download<unsigned char>() == cpu);
        }
  // A bad label on the device: its row is NaN, the others are right.
  Case c;
  c.classes = 8;
  c.stride = 8;
  c.batch = 3;
  Inputs in = make_inputs(c, rng);
  in.labels[0] = 8;
  DevBuf labels(in.labels), t(4 * 24);
  REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, labels.get<int64_t>(), nullptr,
                               nullptr, 3, 8, 0.0f, t.get(), 8, nullptr) == FASTMIX_SUCCESS);
  const std::vector<float> h = t.download<float>();
  for (int j = 0; j < 8; ++j) CHECK(std::isnan(h[(size_t)j]));
  for (int j = 0; j < 8; ++j) CHECK(h[(size_t)(8 + j)] == (j == in.labels[1] ? 1.0f : 0.0f));
}
