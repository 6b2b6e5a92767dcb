// fastmix_cross_entropy, fastmix_cross_entropy_ws and fastmix_soft_targets on
// every device, against the float64 reference of tests/loss_cases.hpp (the
// one of fastmix_loss, written there from the decoded inputs with no library
// code; the tolerances are explained at its top).  Every call
// gets fresh random inputs and poisoned outputs; the cases take odd class
// counts, strides with gaps and pointers off 16-byte alignment.
//
// The paths of the CUDA loss kernel (kernels/cross_entropy.cu) and the sizes
// that take them, which the case names refer to:
//  - warp per row: a row of at most 256 16-byte vectors (classes <= 1027
//    fp32, <= 2055 fp16/bf16); block per row (256 threads) above;
//  - with a gradient, the rows a block works on at once are cached in shared
//    memory when they fit its opt-in size, else streamed (read a second
//    time): a block row streams from about 16k fp32 / 32k fp16 classes on the
//    simulator (64 KiB), 58k / 116k on an H100/H200 (227 KiB); 16 warp rows
//    of 256 vectors (1027 fp32, 2049 fp16 classes) fill 64 KiB, so they
//    stream on the simulator;
//  - NONE: the rows over a grid of up to one wave of blocks; MEAN/SUM without
//    a workspace: one block walks every row; with a workspace
//    (fastmix_cross_entropy_ws): the rows over the grid into the workspace,
//    then one block sums them (MEAN: another block first sums the weights).
// On the simulator (about 5-30 us per GPU thread) the cases take fewer and
// smaller sizes, still one on each side of every threshold.
#include <catch2/catch.hpp>

#include "device.hpp"
#include "loss_cases.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace fmt_test;
using namespace loss_test;

namespace {

// A class count whose row alone is longer than the opt-in shared memory, so
// that CUDA streams it (odd, so that the row has a scalar tail).
int64_t streamed_classes(fastmix_dtype d) { return (int64_t)(smem_optin() / dtype_size(d)) + 1001; }

}  // namespace

TEST_CASE(
    "cross-entropy matches a float64 reference: every dtype, reduction (MEAN/SUM in one block), "
    "smoothing, plain and two-term, with and without grad, warp and block per row",
    "[cross_entropy][devices][racecheck]") {
  FMT_SEEDED_RNG(0xce01);
  const bool sim = on_simulator();
  // Warp per row up to 1027 fp32 / 2055 fp16 classes (1027: the longest
  // fp32 warp row; 2049: a fp16 warp row of 256 vectors), block per row
  // above (2049 fp32, 4097, 9000), rows shorter than one 16-byte vector
  // (1, 2, 7).
  const std::vector<int64_t> classes =
      sim ? std::vector<int64_t>{1, 7, 1001, 1027, 2049, 4097}
          : std::vector<int64_t>{1, 2, 7, 33, 129, 1001, 1027, 2049, 4097, 9000};
  const int64_t max_batch = sim ? 5 : 40;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions)
        for (float eps : {0.0f, 0.1f})
          for (bool mix : {false, true})
            for (int64_t C : classes) {
              Case c = ce_case(d, red, 0, C, C);  // randomize(): the batch and stride
              c.mix = mix;
              randomize(c, rng, max_batch);
              c.eps = eps;
              run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2));
            }
}

TEST_CASE(
    "cross-entropy: long rows, block per row, cached in shared memory and streamed (longer than "
    "the opt-in shared memory)",
    "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce02);
  const bool sim = on_simulator();
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes) {
      // 4097: a cached block row in every dtype; streamed_classes(): streamed.
      std::vector<int64_t> classes = {4097, 49999, 120001, 262144, streamed_classes(d)};
      if (sim) classes = {4097, streamed_classes(d)};
      for (int64_t C : classes)
        for (fastmix_reduction red : {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN})
          for (bool grad : {true, false}) {
            Case c = ce_case(d, red, sim ? 2 : 5, C, C + 3);
            c.eps = 0.1f;
            c.offset = 1;
            c.grad = grad;  // without a gradient nothing is cached: one length is enough
            if (!grad && C != classes.back()) continue;
            run_and_check(dev, c, make_inputs(c, rng, 2.0, 0.1));
          }
    }
}

TEST_CASE("cross-entropy: many rows (NONE over many blocks, the MEAN/SUM block walking every row)",
          "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce03);
  const bool sim = on_simulator();
  struct Size {
    fastmix_dtype dtype;
    int64_t classes, batch;
  };
  // Warp rows go 16 to a block of 512 threads (kTeamThreads), block rows one
  // to a block of 256 (kBlockThreads): on the simulator these sizes are 32
  // blocks of rows either way, more than its 30 SMs, and the MEAN/SUM block
  // walks every row in 32 turns.
  const std::vector<Size> sizes =
      sim ? std::vector<Size>{{FASTMIX_BFLOAT16, 100, 500}, {FASTMIX_FLOAT32, 2049, 32}}
          : std::vector<Size>{{FASTMIX_BFLOAT16, 1000, 3000}, {FASTMIX_FLOAT32, 2049, 700}};
  for (fastmix_device dev : test_devices())
    for (const Size &s : sizes)
      for (fastmix_reduction red : kReductions) {
        Case c = ce_case(s.dtype, red, s.batch, s.classes, s.classes);
        c.eps = 0.1f;
        run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.05));
      }
}

TEST_CASE(
    "cross-entropy with a workspace (MEAN/SUM rows over the grid, then a summing block): every "
    "dtype and reduction, warp and block per row",
    "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce04);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions)
        for (bool block_rows : {false, true}) {
          Case c = ce_case();
          c.dtype = d;
          c.red = red;
          c.eps = 0.1f;
          // warp rows: 1..300 classes; block rows: 2100..2999
          c.classes = block_rows ? 2100 + (int64_t)(rng() % 900) : 1 + (int64_t)(rng() % 300);
          c.stride = c.classes + 1;
          c.batch = 1 + (int64_t)(rng() % 9);
          c.offset = (int64_t)(rng() % 2);
          c.grad = rng() % 4 != 0;
          c.entry = Entry::cross_entropy_ws;
          run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2));
        }
}

TEST_CASE(
    "cross-entropy with a workspace: many rows and streamed rows match the reference, "
    "bitwise the same from run to run",
    "[cross_entropy][devices][racecheck]") {
  FMT_SEEDED_RNG(0xce05);
  const bool sim = on_simulator();
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_BFLOAT16})
      for (fastmix_reduction red : {FASTMIX_REDUCTION_MEAN, FASTMIX_REDUCTION_SUM}) {
        // Many warp rows (more than the summing block's 512 threads, and on
        // the simulator 33 blocks of 16 warp rows, more than its 30 SMs), and
        // a few long rows (70000: block rows, streamed in fp32 everywhere;
        // streamed_classes(): streamed).  The simulator takes the many short
        // rows in fp32 only: the summing kernel does not depend on the dtype,
        // and the per-row kernel runs in bf16 with the long rows.
        std::vector<std::pair<int64_t, int64_t>> sizes = {
            {1000, 3000}, {70000, 40}, {streamed_classes(d), 5}};
        if (sim) sizes = {{streamed_classes(d), 2}};
        if (sim && d == FASTMIX_FLOAT32) sizes.insert(sizes.begin(), {33, 520});
        for (const auto &s : sizes) {
          Case c = ce_case(d, red, s.second, s.first, s.first + 3);
          c.eps = 0.1f;
          c.entry = Entry::cross_entropy_ws;
          check_deterministic(dev, c, make_inputs(c, rng, 3.0, 0.1));
        }
      }
}

TEST_CASE("cross-entropy: in-place gradient (warp rows, cached and streamed block rows)",
          "[cross_entropy][devices][racecheck]") {
  FMT_SEEDED_RNG(0xce06);
  const bool sim = on_simulator();
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions) {
        // 301: warp rows; 5000: cached block rows; 70001 (streamed in fp32
        // on a GPU) and streamed_classes(): streamed block rows.
        std::vector<int64_t> classes = {301, 5000, 70001, streamed_classes(d)};
        if (sim) classes = {301, 5000, streamed_classes(d)};
        for (int64_t C : classes) {
          Case c = ce_case(d, red, sim && C > 5000 ? 2 : 6, C, C + 4);
          c.eps = 0.2f;
          c.grad_scale = 2.5f;
          c.offset = 1;
          run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2), true);
        }
      }
}

TEST_CASE("cross-entropy: extreme logits stay finite", "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce07);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions) {
        Case c = ce_case(d, red, 4, 100, 100);
        c.eps = 0.1f;
        Inputs in = make_inputs(c, rng);
        for (size_t j = 0; j < buf_elems(c); ++j)
          encode(d, in.logits.data(), (int64_t)j, rng() % 2 ? 1e4 : -1e4);
        const Out o = run_and_check(dev, c, in);
        for (size_t i = 0; i < (red == FASTMIX_REDUCTION_NONE ? (size_t)c.batch : 1); ++i)
          CHECK(std::isfinite(o.loss[i]));
      }
}

TEST_CASE("cross-entropy: -inf logits as a mask", "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce08);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions) {
        {
          Case c = ce_case(d, red, 2, 5, 5);
          c.mix = false;
          Inputs in;
          in.logits.assign(buf_elems(c) * dtype_size(d), 0);
          const double z[10] = {1.0,       -INFINITY, 0.5,  2.0, -1.0,
                                -INFINITY, 0.0,       0.25, 3.0, -INFINITY};
          for (int j = 0; j < 10; ++j) {
            if (std::isinf(z[j]))
              put_neg_inf(d, in.logits.data(), j);
            else
              encode(d, in.logits.data(), j, z[j]);
          }
          in.labels = {3, 2};
          const Out o = run_and_check(dev, c, in);
          CHECK(std::isfinite(o.loss[0]));
          CHECK(decode(d, o.grad.data(), 1) == 0.0);  // softmax of -inf is exactly 0
        }
        {
          // Every third class masked but the label, in a row of 16-byte vectors.
          Case c = ce_case(d, red, 3, 40, 40);
          c.mix = false;
          Inputs in = make_inputs(c, rng);
          for (int64_t i = 0; i < c.batch; ++i)
            for (int64_t j = 0; j < c.classes; j += 3)
              if (j != in.labels[(size_t)i]) put_neg_inf(d, in.logits.data(), i * c.stride + j);
          const Out o = run_and_check(dev, c, in);
          CHECK(std::isfinite(o.loss[0]));
        }
      }
}

TEST_CASE("cross-entropy: ignore_index, and every row ignored (warp and block rows)",
          "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce09);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_reduction red : kReductions)
        for (bool mix : {false, true})
          for (int64_t C : {17, 3000}) {
            Case c = ce_case(d, red, C > 1000 ? 7 : 5, C, C + 2);
            c.mix = mix;
            c.ignore = 3;  // an ignore_index inside [0, classes)
            c.eps = 0.05f;
            Inputs in = make_inputs(c, rng, 3.0, 0.4);
            run_and_check(dev, c, in);
            // Every row ignored: MEAN is NaN (0 / 0, as PyTorch), SUM 0, NONE
            // zeros; the gradient is all zeros.
            std::fill(in.labels.begin(), in.labels.end(), c.ignore);
            const Out o = run_and_check(dev, c, in);
            if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(o.loss[0]));
            if (red == FASTMIX_REDUCTION_SUM) CHECK(o.loss[0] == 0.0f);
          }
}

TEST_CASE("cross-entropy: batch 0 writes only the reduced loss: NaN for MEAN, 0 for SUM",
          "[cross_entropy][devices]") {
  for (fastmix_device dev : test_devices())
    for (fastmix_reduction red : kReductions)
      for (bool ws : {false, true}) {
        INFO(device_name(dev) << " reduction " << (int)red << (ws ? " with" : " without")
                              << " a workspace");
        Case c = ce_case();
        c.batch = 0;
        c.red = red;
        c.entry = ws ? Entry::cross_entropy_ws : Entry::cross_entropy;
        Inputs in;
        in.logits.assign(buf_elems(c) * 4, 0);
        in.labels = {0};
        in.lambdas = {0.5f};
        in.partners = {0};
        check_batch0(run(dev, c, in), red);
      }
}

TEST_CASE("cross-entropy: deterministic (warp, cached and streamed block rows)",
          "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce0a);
  const bool sim = on_simulator();
  std::vector<std::pair<int64_t, int64_t>> sizes = {
      {100, 700}, {257, 300}, {5000, 700}, {100000, 20}};
  if (sim) sizes = {{100, 40}, {257, 20}, {5000, 4}, {streamed_classes(FASTMIX_FLOAT32), 2}};
  for (fastmix_device dev : test_devices())
    for (const auto &s : sizes)
      for (fastmix_reduction red : kReductions) {
        Case c = ce_case(FASTMIX_FLOAT32, red, s.second, s.first, s.first);
        c.eps = 0.1f;
        check_deterministic(dev, c, make_inputs(c, rng));
      }
}

TEST_CASE("cross-entropy: gradient matches a finite difference", "[cross_entropy][devices]") {
  // The library's analytic gradient against a central difference of the
  // float64 reference loss (so the reference's gradient formula is checked
  // too).  h = 1e-5 gives a truncation error ~h^2 * |f'''| ~ 1e-10 and a
  // cancellation error ~1e-16 / h ~ 1e-11, far below the float32 error of
  // the library's gradient (~1e-7 relative), so 1e-5 relative + 1e-6 * |k|
  // absolute holds.
  FMT_SEEDED_RNG(0xce0b);
  for (fastmix_device dev : test_devices())
    for (fastmix_reduction red : kReductions)
      for (float eps : {0.0f, 0.3f}) {
        Case c = ce_case(FASTMIX_FLOAT32, red, 3, 6, 6);
        c.eps = eps;
        c.grad_scale = 1.5f;
        const Inputs in = make_inputs(c, rng, 2.0, 0.0);
        check_finite_difference(c, in, run(dev, c, in), 1e-5, 1e-5, 1e-6);
      }
}

TEST_CASE("cross-entropy workspace size: CUDA's is a double and a float per row, NONE's none",
          "[cross_entropy]") {
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
  for (fastmix_reduction red : kReductions) {
    bytes = 7;
    REQUIRE(fastmix_cross_entropy_workspace_size(FASTMIX_DEVICE_CPU, 1000, red, &bytes) ==
            FASTMIX_SUCCESS);
    CHECK(bytes == 0);
  }
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
  Case c = ce_case();
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

// ---- errors -------------------------------------------------------------------
namespace {

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
  CHECK(all_poison(loss_buf.data(), loss_buf.size()));
  CHECK(all_poison(grad_buf.data(), grad_buf.size()));
}

// ---- soft targets -----------------------------------------------------------------
TEST_CASE("soft targets match the formula, and are bitwise the CPU's on every device",
          "[cross_entropy][devices]") {
  FMT_SEEDED_RNG(0xce0c);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (bool mix : {false, true})
        for (float eps : {0.0f, 0.1f})
          for (int64_t C : {1, 5, 1000, 10000}) {  // 10000: several 4096-class chunks per row
            Case c = ce_case(d, FASTMIX_REDUCTION_MEAN, 9, C, C + 2);
            c.mix = mix;
            c.offset = 1;
            const Inputs in = make_inputs(c, rng);
            const size_t es = dtype_size(d);
            Buffer labels = to_device(dev, in.labels), lambdas = to_device(dev, in.lambdas),
                   partners = to_device(dev, in.partners), tb(dev, in.logits.size());
            REQUIRE(fastmix_soft_targets(dev, d, labels.as<int64_t>(),
                                         mix ? lambdas.as<float>() : nullptr,
                                         mix ? partners.as<int64_t>() : nullptr, c.batch, C, eps,
                                         tb.data() + es, c.stride, nullptr) == FASTMIX_SUCCESS);
            finish(dev);
            const std::vector<unsigned char> t = tb.copy();
            int bad = 0;
            for (size_t e = 0; e < t.size() / es; ++e) {
              const int64_t rel = (int64_t)e - 1;
              if (rel < 0 || rel / c.stride >= c.batch || rel % c.stride >= C) {
                if (!all_poison(t.data() + e * es, es)) ++bad;
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
                  (d == FASTMIX_FLOAT32 ? 4e-7 * std::fabs(want) : dtype_ulp(d, want)) + 1e-9;
              if (!close(decode(d, t.data(), (int64_t)e), want, tol)) ++bad;
            }
            CAPTURE(device_name(dev), dtype_name(d), mix, eps, C);
            CHECK(bad == 0);
            // The contract: every backend writes bitwise the same targets.
            if (dev != FASTMIX_DEVICE_CPU) {
              std::vector<unsigned char> cpu(in.logits.size(), kPoison);
              REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CPU, d, in.labels.data(),
                                           mix ? in.lambdas.data() : nullptr,
                                           mix ? in.partners.data() : nullptr, c.batch, C, eps,
                                           cpu.data() + es, c.stride, nullptr) == FASTMIX_SUCCESS);
              CHECK(t == cpu);
            }
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
  CHECK(all_poison(t.data(), t.size()));
}
