// What only CUDA has in fastmix_cross_entropy and fastmix_soft_targets: the
// host cannot see labels and partners in device memory before the call
// returns, so a bad one makes its row NaN (never a fault, nothing outside the
// row), and host pointers are refused.  Everything both backends share runs
// on every device in tests/test_cross_entropy.cpp; the cases, the float64
// reference and the checks come from tests/loss_cases.hpp.
#include "cuda_util.hpp"

#include "../loss_cases.hpp"

#include <fastmix/fastmix.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace fmt_test;
using namespace loss_test;

TEST_CASE("cuda cross-entropy: a bad label or partner on the device makes its row NaN",
          "[cross_entropy]") {
  FMT_SEEDED_RNG(0xce21);
  const fastmix_device cuda = FASTMIX_DEVICE_CUDA;
  for (int64_t C : {10, 5000}) {  // a warp row and a block row
    CAPTURE(C);
    Case c = ce_case();
    c.classes = C;
    c.stride = C;
    c.batch = 4;
    c.red = FASTMIX_REDUCTION_NONE;
    c.mix = false;
    Inputs in = make_inputs(c, rng);
    in.labels[1] = C;  // out of range, not ignore_index
    Out g = run(cuda, c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[1]));
    CHECK(std::isfinite(g.loss[0]));
    CHECK(std::isfinite(g.loss[2]));
    for (int64_t j = 0; j < C; ++j) CHECK(std::isnan(decode(c.dtype, g.grad.data(), c.stride + j)));
    c.red = FASTMIX_REDUCTION_MEAN;
    g = run(cuda, c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[0]));
    c.entry = Entry::cross_entropy_ws;  // the same through the workspace path
    g = run(cuda, c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[0]));
    c.entry = Entry::cross_entropy;
    // A partner out of range.
    c.mix = true;
    c.red = FASTMIX_REDUCTION_NONE;
    in.labels[1] = 0;
    in.partners[2] = c.batch;
    g = run(cuda, c, in);
    REQUIRE(g.status == FASTMIX_SUCCESS);
    CHECK(std::isnan(g.loss[2]));
    CHECK(std::isfinite(g.loss[3]));
    // The next good call works and matches the reference.
    in.partners[2] = 0;
    run_and_check(cuda, c, in);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE(
    "cuda fastmix_loss: a bad device label or partner makes its row NaN for class weights and the "
    "binary loss",
    "[cross_entropy]") {
  FMT_SEEDED_RNG(0xce31);
  std::uniform_real_distribution<float> unif(-3.0f, 3.0f);
  const int64_t n = 4;
  for (fastmix_loss_kind kind : {FASTMIX_LOSS_CROSS_ENTROPY, FASTMIX_LOSS_BINARY_CROSS_ENTROPY})
    for (int64_t C : {10, 2069}) {  // a warp row and a block row
      CAPTURE(kind, C);
      std::vector<float> z((size_t)(n * C)), cw((size_t)C), lam(n, 0.7f);
      for (float &v : z) v = unif(rng);
      for (float &v : cw) v = 0.5f + 0.5f * std::fabs(unif(rng));
      std::vector<int64_t> labels = {1, C, 2, 3};    // row 1: out of range, not ignore_index
      std::vector<int64_t> partners = {0, 0, n, 2};  // row 2: partner out of range
      Buffer dz = to_device(kCuda, z), dcw = to_device(kCuda, cw), dlam = to_device(kCuda, lam);
      Buffer dlab = to_device(kCuda, labels), dpart = to_device(kCuda, partners);
      Buffer dloss(kCuda, 4 * n), dgrad(kCuda, 4 * n * C);
      fastmix_loss_config cfg;
      fastmix_loss_config_init(&cfg);
      cfg.kind = kind;
      cfg.reduction = FASTMIX_REDUCTION_NONE;
      cfg.label_smoothing = 0.1f;
      cfg.class_weight = dcw.as<float>();
      REQUIRE(fastmix_loss(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, dz.data(), n, C, C,
                           dlab.as<int64_t>(), dlam.as<float>(), dpart.as<int64_t>(), &cfg,
                           dloss.as<float>(), dgrad.data(), nullptr, 0,
                           nullptr) == FASTMIX_SUCCESS);
      finish(kCuda);
      const std::vector<float> loss = dloss.copy_as<float>();
      const std::vector<float> grad = dgrad.copy_as<float>();
      for (int64_t i = 0; i < n; ++i) {
        CAPTURE(i);
        const bool bad = i == 1 || i == 2;
        CHECK(std::isnan(loss[(size_t)i]) == bad);
        if (!bad) CHECK(std::isfinite(loss[(size_t)i]));
        int64_t nan_count = 0;
        for (int64_t c = 0; c < C; ++c) nan_count += std::isnan(grad[(size_t)(i * C + c)]) ? 1 : 0;
        CHECK(nan_count == (bad ? C : 0));
      }
    }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda cross-entropy: host pointers are refused", "[cross_entropy]") {
  std::vector<float> z(40, 0.0f), loss(1, 0.0f);
  std::vector<int64_t> labels = {0, 1, 2, 3};
  const fastmix_device cuda = FASTMIX_DEVICE_CUDA;
  Buffer dz = to_device(cuda, z), dl = to_device(cuda, labels), dloss(cuda, 4);
  CHECK(fastmix_cross_entropy(cuda, FASTMIX_FLOAT32, z.data(), 4, 10, 10, dl.as<int64_t>(), nullptr,
                              nullptr, FASTMIX_REDUCTION_MEAN, 0.0f, -100, dloss.as<float>(),
                              nullptr, 1.0f, nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("logits") != std::string::npos);
  CHECK(fastmix_cross_entropy(cuda, FASTMIX_FLOAT32, dz.data(), 4, 10, 10, dl.as<int64_t>(),
                              nullptr, nullptr, FASTMIX_REDUCTION_MEAN, 0.0f, -100, loss.data(),
                              nullptr, 1.0f, nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(std::string(fastmix_last_error()).find("loss") != std::string::npos);
  finish(cuda);
  CHECK(all_poison(dloss.copy()));
}

TEST_CASE("cuda soft targets: a bad label on the device makes its row NaN", "[cross_entropy]") {
  FMT_SEEDED_RNG(0xce22);
  const fastmix_device cuda = FASTMIX_DEVICE_CUDA;
  Case c = ce_case();
  c.classes = 8;
  c.stride = 8;
  c.batch = 3;
  Inputs in = make_inputs(c, rng);
  in.labels[0] = 8;
  Buffer labels = to_device(cuda, in.labels), t(cuda, 4 * 24);
  REQUIRE(fastmix_soft_targets(cuda, FASTMIX_FLOAT32, labels.as<int64_t>(), nullptr, nullptr, 3, 8,
                               0.0f, t.data(), 8, nullptr) == FASTMIX_SUCCESS);
  finish(cuda);
  const std::vector<float> h = t.copy_as<float>();
  for (int j = 0; j < 8; ++j) CHECK(std::isnan(h[(size_t)j]));
  for (int j = 0; j < 8; ++j) CHECK(h[(size_t)(8 + j)] == (j == in.labels[1] ? 1.0f : 0.0f));
  for (int j = 0; j < 8; ++j) CHECK(h[(size_t)(16 + j)] == (j == in.labels[2] ? 1.0f : 0.0f));
}
