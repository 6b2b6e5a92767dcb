// fastmix_loss on every device: the softmax cross-entropy with class weights
// and with dense probability targets, and the binary cross-entropy with
// logits (targets from labels, mixed and smoothed as timm does, or dense;
// threshold and pos_weight), against the float64 reference of
// tests/loss_cases.hpp (its tolerances are explained at its top).  Every
// call gets fresh random inputs and poisoned outputs; the cases take odd
// class counts, strides with gaps, rows off 16-byte alignment (logits,
// gradient and targets at different offsets) and in-place gradients.  The
// CUDA side of the [devices] cases runs on a GPU or on the simulator
// (tests/sim/run.sh), with the smaller sizes of on_simulator().
#include <catch2/catch.hpp>

#include "device.hpp"
#include "loss_cases.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace fmt_test;
using namespace loss_test;

namespace {

std::vector<int64_t> class_counts() {
  // Rows shorter than a 16-byte vector (1, 7), warp rows (33, 1001), block
  // rows of every storage type (above 256 vectors: 1024 float32 or 2048
  // 16-bit classes).
  if (on_simulator()) return {1, 7, 1001, 2069};
  return {1, 2, 7, 33, 129, 1001, 2049, 2069, 4097};
}

// The four kinds of fastmix_loss call: the cross-entropy and the binary
// loss, each with labels (kinds 0, 2) and with dense targets (1, 3); with
// mixup where there are labels, `classes` logits and targets a row, packed
// (randomize() spreads them).
constexpr int kKinds = 4;
Case kind_case(int kind, fastmix_reduction red, int64_t classes) {
  Case c;
  c.kind = kind < 2 ? CE : BCE;
  c.dense = kind % 2 == 1;
  c.mix = !c.dense;
  c.red = red;
  c.classes = c.stride = c.tstride = classes;
  return c;
}

// Every device, logits dtype, reduction and class count of one kind, with
// labels plain and mixed or with dense targets of every storage type, in a
// random geometry (randomize()); `setup` draws the weights and threshold.
// The simulator takes a third of the (target dtype, reduction) pairs, each
// target dtype and each reduction once per size.
void sweep(int kind, std::mt19937_64 &rng, double ignored,
           const std::function<void(Case &)> &setup) {
  const int64_t max_batch = on_simulator() ? 5 : 40;
  const bool dense = kind % 2 == 1;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (int variant = 0; variant < (dense ? 3 : 2); ++variant)
        for (fastmix_reduction red : kReductions)
          for (int64_t C : class_counts()) {
            Case c = kind_case(kind, red, C);
            c.dtype = d;
            if (dense)
              c.tdtype = kAllDtypes[variant];
            else
              c.mix = variant == 1;
            if (dense && on_simulator() && ((int)c.tdtype + (int)red) % 3 != 0) continue;
            setup(c);
            randomize(c, rng, max_batch);
            run_and_check(dev, c, make_inputs(c, rng, 3.0, ignored));
          }
}

}  // namespace

TEST_CASE(
    "loss: cross-entropy with class weights matches a float64 reference (every dtype and "
    "reduction, smoothing, ignore_index, plain and mixup)",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x1055);
  sweep(0, rng, 0.2, [](Case &c) { c.weights = true; });
}

TEST_CASE(
    "loss: cross-entropy with dense probability targets of every storage type matches a float64 "
    "reference (with and without class weights, smoothing, every reduction)",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x1056);
  sweep(1, rng, 0.0, [&](Case &c) { c.weights = rng() % 2 == 0; });
}

TEST_CASE(
    "loss: binary cross-entropy with labels (timm's mixed, smoothed targets) matches a float64 "
    "reference (threshold, pos_weight, class weights, every dtype and reduction)",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x1057);
  sweep(2, rng, 0.0, [&](Case &c) {
    c.pos = rng() % 2 == 0;
    c.weights = rng() % 2 == 0;
    c.threshold = rng() % 2 ? -1.0f : 0.2f;  // timm's bce_target_thresh, off or 0.2
  });
}

TEST_CASE(
    "loss: binary cross-entropy with dense targets of every storage type matches a float64 "
    "reference",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x1058);
  sweep(3, rng, 0.0, [&](Case &c) {
    c.pos = rng() % 2 == 0;
    c.weights = rng() % 2 == 0;
    c.threshold = rng() % 3 == 0 ? 0.5f : -1.0f;
  });
}

TEST_CASE(
    "loss: the binary threshold decides on the float32 smoothed target, each operation rounded, "
    "on every device (targets within a rounding of the threshold)",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x1059);
  Case c;
  c.kind = BCE;
  c.dense = true;
  c.threshold = 0.5f;
  c.red = FASTMIX_REDUCTION_NONE;
  randomize(c, rng, 1);
  c.eps = 0.1f;
  c.batch = 3;
  // The targets next to t* = (threshold - eps / C) / (1 - eps) that a fused
  // multiply-add, or exact arithmetic, would put on the other side of the
  // threshold than the rounded float32 target does: the first class count
  // that has both kinds (each is a single float or two, and depends on C).
  std::vector<float> edge;
  for (c.classes = 2; c.classes < 100 && edge.empty(); ++c.classes) {
    const float eps_c = c.eps / (float)c.classes;
    const double tstar =
        ((double)c.threshold - (double)c.eps / (double)c.classes) / (1.0 - (double)c.eps);
    float t = (float)tstar;
    for (int k = 0; k < 8; ++k) t = std::nextafter(t, 0.0f);
    bool fused_differs = false, exact_differs = false;
    std::vector<float> found;
    for (int k = 0; k < 16; ++k, t = std::nextafter(t, 1.0f)) {
      const bool rounded = (1.0f - c.eps) * t + eps_c > c.threshold;
      const bool fused = std::fma(1.0f - c.eps, t, eps_c) > c.threshold;
      const bool exact =
          (1.0 - (double)c.eps) * t + (double)c.eps / (double)c.classes > (double)c.threshold;
      if (rounded != fused || rounded != exact) found.push_back(t);
      fused_differs = fused_differs || rounded != fused;
      exact_differs = exact_differs || rounded != exact;
    }
    if (fused_differs && exact_differs) edge = found;
  }
  --c.classes;
  REQUIRE(!edge.empty());
  CAPTURE(c.classes, edge.size());
  c.stride = c.classes + 1;
  c.tstride = c.classes + 1;
  Inputs in = make_inputs(c, rng);
  for (int64_t i = 0; i < c.batch; ++i)
    for (size_t e = 0; e < edge.size(); ++e)
      encode(FASTMIX_FLOAT32, in.targets.data(),
             c.toffset + i * c.tstride + (i * 5 + (int64_t)e) % c.classes, edge[e]);
  for (fastmix_device dev : test_devices()) run_and_check(dev, c, in);
}

TEST_CASE("loss: in-place gradient (grad_logits == logits) for every kind", "[loss][devices]") {
  FMT_SEEDED_RNG(0x1059);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (int kind = 0; kind < kKinds; ++kind)
        for (int64_t C : {7, 1001, 2069}) {
          Case c = kind_case(kind, FASTMIX_REDUCTION_MEAN, C);
          c.dtype = d;
          c.weights = true;
          c.pos = c.kind == BCE;
          randomize(c, rng, 5);
          c.grad = true;
          c.grad_misalign = 0;
          run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2), /*inplace=*/true);
        }
}

TEST_CASE("loss: the gradient matches a central finite difference of the float64 loss",
          "[loss][devices]") {
  FMT_SEEDED_RNG(0x105a);
  for (fastmix_device dev : test_devices())
    for (int kind = 0; kind < kKinds; ++kind)
      for (fastmix_reduction red : kReductions) {
        Case c = kind_case(kind, red, 5);
        c.batch = 3;
        c.eps = 0.1f;
        c.weights = true;
        c.pos = c.kind == BCE;
        c.grad_scale = 0.7f;
        const Inputs in = make_inputs(c, rng, 2.0);
        check_finite_difference(c, in, run(dev, c, in), 1e-4, 1e-4, 1e-5);
      }
}

TEST_CASE(
    "loss: a class of weight 0 masks its -inf logits: the same finite loss and gradient as a "
    "finite logit there, labels and dense targets, warp and block rows",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  for (fastmix_device dev : test_devices())
    for (bool dense : {false, true})
      for (int64_t C : {10, 2069}) {
        std::mt19937_64 rng = make_rng(0x105d);
        Case c;
        c.dense = dense;
        c.red = FASTMIX_REDUCTION_NONE;
        c.batch = 3;
        c.classes = c.stride = c.tstride = C;
        c.eps = 0.1f;
        c.weights = true;
        Inputs in = make_inputs(c, rng);
        // Classes 0, 3, 6, ... get weight 0 and no label.
        for (int64_t j = 0; j < C; j += 3) in.cw[(size_t)j] = 0.0f;
        for (int64_t i = 0; i < c.batch && !dense; ++i) {
          int64_t &y = in.labels[(size_t)i];
          if (y % 3 == 0) y = y + 1 < C ? y + 1 : y - 1;  // C - 2 is no multiple of 3 then
        }
        Inputs masked = in, finite = in;
        for (int64_t i = 0; i < c.batch; ++i)
          for (int64_t j = 0; j < C; j += 3) {
            encode(c.dtype, masked.logits.data(), i * C + j, -INFINITY);
            encode(c.dtype, finite.logits.data(), i * C + j, -1e30);
          }
        const Out a = run(dev, c, masked), b = run(dev, c, finite);
        CAPTURE(device_name(dev), describe(c));
        REQUIRE(a.status == FASTMIX_SUCCESS);
        REQUIRE(b.status == FASTMIX_SUCCESS);
        for (int64_t i = 0; i < c.batch; ++i) {
          CHECK(std::isfinite(a.loss[(size_t)i]));
          CHECK(std::fabs(a.loss[(size_t)i] - b.loss[(size_t)i]) <=
                1e-5f * std::fabs(b.loss[(size_t)i]));
          for (int64_t j = 0; j < C; ++j) {
            const double ga = decode(c.dtype, a.grad.data(), i * C + j);
            const double gb = decode(c.dtype, b.grad.data(), i * C + j);
            CHECK(std::isfinite(ga));
            CHECK(std::fabs(ga - gb) <= 1e-6 + 1e-5 * std::fabs(gb));
          }
        }
      }
}

TEST_CASE("loss: batch 0 writes only the reduced loss (NaN for MEAN, 0 for SUM), every kind",
          "[loss][devices]") {
  for (fastmix_device dev : test_devices())
    for (int kind = 0; kind < kKinds; ++kind)
      for (fastmix_reduction red : kReductions) {
        std::mt19937_64 rng = make_rng(0x105b);
        Case c = kind_case(kind, red, 1000);
        c.mix = false;
        c.batch = 0;
        c.weights = true;
        const Inputs in = make_inputs(c, rng);
        CAPTURE(device_name(dev), describe(c));
        check_batch0(run(dev, c, in), red);
      }
}

TEST_CASE(
    "loss: deterministic, and fastmix_cross_entropy_ws is fastmix_loss with the default config",
    "[loss][devices]") {
  FMT_SEEDED_RNG(0x105c);
  for (fastmix_device dev : test_devices())
    for (int kind = 0; kind < kKinds; ++kind)
      for (fastmix_reduction red : kReductions) {
        Case c = kind_case(kind, red, 1001);
        c.weights = c.dense;
        randomize(c, rng, 9);
        c.grad = true;
        const Inputs in = make_inputs(c, rng, 3.0, 0.1);
        CAPTURE(device_name(dev), describe(c));
        const Out a = check_deterministic(dev, c, in);
        if (kind != 0) continue;
        // The cross-entropy with labels and no weights: the same as the
        // labelled entry point with a workspace of the size it asks for.
        Case e = c;
        e.entry = Entry::cross_entropy_ws;
        const Out w = run(dev, e, in);
        REQUIRE(w.status == FASTMIX_SUCCESS);
        CHECK(same_bits(w.loss, a.loss));
        CHECK(w.grad == a.grad);
      }
}

// ---- the configuration, the workspace size and the errors (host-side checks) -----
TEST_CASE("loss: fastmix_loss_config_init gives PyTorch's defaults", "[loss]") {
  fastmix_loss_config c;
  std::memset(&c, 0x5a, sizeof c);
  fastmix_loss_config_init(&c);
  CHECK(c.kind == FASTMIX_LOSS_CROSS_ENTROPY);
  CHECK(c.reduction == FASTMIX_REDUCTION_MEAN);
  CHECK(c.label_smoothing == 0.0f);
  CHECK(c.grad_scale == 1.0f);
  CHECK(c.ignore_index == -100);
  CHECK(c.class_weight == nullptr);
  CHECK(c.pos_weight == nullptr);
  CHECK(c.target_threshold < 0.0f);
  CHECK(c.targets == nullptr);
  CHECK(c.targets_dtype == FASTMIX_FLOAT32);
  fastmix_loss_config_init(nullptr);  // a no-op, not a crash
}

TEST_CASE("loss: workspace size (CUDA MEAN/SUM: a double and a float per row; else none)",
          "[loss]") {
  fastmix_loss_config c;
  fastmix_loss_config_init(&c);
  size_t bytes = 0;
  for (int kind = 0; kind < 2; ++kind) {
    c.kind = (fastmix_loss_kind)kind;
    c.reduction = FASTMIX_REDUCTION_MEAN;
    REQUIRE(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 5, &c, &bytes) == FASTMIX_SUCCESS);
    CHECK(bytes == 32);
    c.reduction = FASTMIX_REDUCTION_SUM;
    REQUIRE(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 4, &c, &bytes) == FASTMIX_SUCCESS);
    CHECK(bytes == 24);
    c.reduction = FASTMIX_REDUCTION_NONE;
    REQUIRE(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 9, &c, &bytes) == FASTMIX_SUCCESS);
    CHECK(bytes == 0);
    for (fastmix_reduction red : kReductions) {
      c.reduction = red;
      bytes = 7;
      REQUIRE(fastmix_loss_workspace_size(FASTMIX_DEVICE_CPU, 1000, &c, &bytes) == FASTMIX_SUCCESS);
      CHECK(bytes == 0);
    }
  }
  auto has = [](const char *needle) {
    return std::string(fastmix_last_error()).find(needle) != std::string::npos;
  };
  fastmix_loss_config_init(&c);
  bytes = 7;
  CHECK(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 3, nullptr, &bytes) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("config"));
  int bad = 3;
  std::memcpy(&c.reduction, &bad, sizeof bad);
  CHECK(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 3, &c, &bytes) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("config->reduction"));
  fastmix_loss_config_init(&c);
  std::memcpy(&c.kind, &bad, sizeof bad);
  CHECK(fastmix_loss_workspace_size(FASTMIX_DEVICE_CUDA, 3, &c, &bytes) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("config->kind"));
  fastmix_loss_config_init(&c);
  CHECK(fastmix_loss_workspace_size(FASTMIX_DEVICE_CPU, -1, &c, &bytes) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("batch"));
  fastmix_device dev;
  bad = 5;
  std::memcpy(&dev, &bad, sizeof bad);
  CHECK(fastmix_loss_workspace_size(dev, 1, &c, &bytes) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("device"));
  CHECK(fastmix_loss_workspace_size(FASTMIX_DEVICE_CPU, 1, &c, nullptr) ==
        FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has("bytes"));
  CHECK(bytes == 7);
}

namespace {

// The arguments of one fastmix_loss call on host memory, each changed in turn
// by the error table below.
struct Call {
  fastmix_device device = FASTMIX_DEVICE_CPU;
  fastmix_dtype dtype = FASTMIX_FLOAT32;
  const void *logits;
  int64_t batch, classes, stride;
  const int64_t *labels;
  const float *lambdas;
  const int64_t *partners;
  fastmix_loss_config config;
  const fastmix_loss_config *cfg;  // &config unless a case sets NULL
  float *loss;
  void *grad;
  void *ws = nullptr;
  size_t ws_bytes = 0;

  fastmix_status operator()() const {
    return fastmix_loss(device, dtype, logits, batch, classes, stride, labels, lambdas, partners,
                        cfg, loss, grad, ws, ws_bytes, nullptr);
  }
};

}  // namespace

TEST_CASE("loss: each bad argument is refused by name and nothing is written", "[loss]") {
  const int64_t n = 4, C = 8;
  std::vector<float> logits((size_t)(n * C + 8), 0.5f), targets((size_t)(n * C + 8), 0.125f);
  std::vector<float> cw((size_t)C + 2, 1.5f), pw((size_t)C + 2, 2.0f);
  std::vector<unsigned char> grad_buf((n * C + 8) * 4), loss_buf(4 * (n + 1));
  std::vector<int64_t> labels = {0, 1, 2, 3}, partners = {1, 0, 3, 2};
  std::vector<float> lambdas = {0.5f, 0.6f, 0.7f, 0.8f};
  std::vector<uint64_t> ws(8);
  std::memset(loss_buf.data(), kPoison, loss_buf.size());
  std::memset(grad_buf.data(), kPoison, grad_buf.size());
  Call base;
  base.logits = logits.data();
  base.batch = n, base.classes = C, base.stride = C;
  base.labels = labels.data(), base.lambdas = lambdas.data(), base.partners = partners.data();
  fastmix_loss_config_init(&base.config);
  base.config.class_weight = cw.data();
  base.loss = reinterpret_cast<float *>(loss_buf.data());
  base.grad = grad_buf.data();
  // The base call works, on fresh outputs (and as binary, and with targets).
  {
    std::vector<float> l(1), g((size_t)(n * C));
    Call ok = base;
    ok.cfg = &ok.config;
    ok.loss = l.data(), ok.grad = g.data();
    REQUIRE(ok() == FASTMIX_SUCCESS);
    ok.config.kind = BCE;
    ok.config.pos_weight = pw.data();
    ok.config.target_threshold = 0.3f;
    REQUIRE(ok() == FASTMIX_SUCCESS);
    ok.config.targets = targets.data();
    ok.config.targets_stride = C;
    ok.labels = nullptr, ok.lambdas = nullptr, ok.partners = nullptr;
    REQUIRE(ok() == FASTMIX_SUCCESS);
  }
  struct Bad {
    const char *what;
    fastmix_status want;
    const char *needle;
    std::function<void(Call &)> change;
  };
  const auto INV = FASTMIX_ERROR_INVALID_VALUE;
  auto dense = [&](Call &k) {
    k.config.targets = targets.data();
    k.config.targets_stride = C;
    k.labels = nullptr, k.lambdas = nullptr, k.partners = nullptr;
  };
  const std::vector<Bad> bads = {
      {"device", INV, "device", [](Call &k) { k.device = bad_enum<fastmix_device>(7); }},
      {"dtype", INV, "dtype", [](Call &k) { k.dtype = bad_enum<fastmix_dtype>(9); }},
      {"config NULL", INV, "config must not be NULL", [](Call &k) { k.cfg = nullptr; }},
      {"kind", INV, "config->kind",
       [](Call &k) { k.config.kind = bad_enum<fastmix_loss_kind>(2); }},
      {"reduction", INV, "config->reduction",
       [](Call &k) { k.config.reduction = bad_enum<fastmix_reduction>(-1); }},
      {"smoothing < 0", INV, "config->label_smoothing",
       [](Call &k) { k.config.label_smoothing = -0.1f; }},
      {"smoothing > 1", INV, "config->label_smoothing",
       [](Call &k) { k.config.label_smoothing = 1.01f; }},
      {"smoothing NaN", INV, "config->label_smoothing",
       [](Call &k) { k.config.label_smoothing = NAN; }},
      {"grad_scale inf", INV, "config->grad_scale",
       [](Call &k) { k.config.grad_scale = INFINITY; }},
      {"grad_scale NaN", INV, "config->grad_scale", [](Call &k) { k.config.grad_scale = NAN; }},
      {"threshold 1", INV, "config->target_threshold",
       [](Call &k) {
         k.config.kind = BCE;
         k.config.target_threshold = 1.0f;
       }},
      {"threshold NaN", INV, "config->target_threshold",
       [](Call &k) {
         k.config.kind = BCE;
         k.config.target_threshold = NAN;
       }},
      {"threshold with the cross-entropy", INV, "config->target_threshold",
       [](Call &k) { k.config.target_threshold = 0.5f; }},
      {"pos_weight with the cross-entropy", INV, "config->pos_weight",
       [&](Call &k) { k.config.pos_weight = pw.data(); }},
      {"pos_weight misaligned", INV, "config->pos_weight",
       [&](Call &k) {
         k.config.kind = BCE;
         k.config.pos_weight = reinterpret_cast<const float *>(
             reinterpret_cast<const unsigned char *>(pw.data()) + 2);
       }},
      {"class_weight misaligned", INV, "config->class_weight",
       [&](Call &k) {
         k.config.class_weight = reinterpret_cast<const float *>(
             reinterpret_cast<const unsigned char *>(cw.data()) + 1);
       }},
      {"batch", INV, "batch", [](Call &k) { k.batch = -1; }},
      {"classes", INV, "classes", [](Call &k) { k.classes = 0; }},
      {"logits_stride", INV, "logits_stride", [](Call &k) { k.stride = C - 1; }},
      {"logits NULL", INV, "logits", [](Call &k) { k.logits = nullptr; }},
      {"logits misaligned", INV, "logits",
       [&](Call &k) { k.logits = reinterpret_cast<const unsigned char *>(logits.data()) + 2; }},
      {"labels NULL", INV, "labels", [](Call &k) { k.labels = nullptr; }},
      {"lambdas without partners", INV, "partners", [](Call &k) { k.partners = nullptr; }},
      {"partners without lambdas", INV, "lambdas", [](Call &k) { k.lambdas = nullptr; }},
      {"labels with targets", INV, "labels must be NULL",
       [&](Call &k) {
         dense(k);
         k.labels = labels.data();
       }},
      {"mixup with targets", INV, "lambdas and partners must be NULL",
       [&](Call &k) {
         dense(k);
         k.lambdas = lambdas.data(), k.partners = partners.data();
       }},
      {"targets_dtype", INV, "config->targets_dtype",
       [&](Call &k) {
         dense(k);
         k.config.targets_dtype = bad_enum<fastmix_dtype>(3);
       }},
      {"targets_stride", INV, "config->targets_stride",
       [&](Call &k) {
         dense(k);
         k.config.targets_stride = C - 1;
       }},
      {"targets misaligned (fp16)", INV, "config->targets",
       [&](Call &k) {
         dense(k);
         k.config.targets_dtype = FASTMIX_FLOAT16;
         k.config.targets = reinterpret_cast<const unsigned char *>(targets.data()) + 1;
       }},
      {"targets overflow", INV, "config->targets_stride",
       [&](Call &k) {
         dense(k);
         k.config.targets_stride = INT64_MAX / 2;
       }},
      {"loss NULL", INV, "loss", [](Call &k) { k.loss = nullptr; }},
      {"loss misaligned", INV, "loss",
       [&](Call &k) { k.loss = reinterpret_cast<float *>(loss_buf.data() + 2); }},
      {"grad misaligned", INV, "grad_logits", [&](Call &k) { k.grad = grad_buf.data() + 2; }},
      {"grad overlaps logits", INV, "overlaps logits",
       [&](Call &k) { k.grad = logits.data() + 3; }},
      {"grad overlaps targets", INV, "grad_logits overlaps config->targets",
       [&](Call &k) {
         dense(k);
         k.grad = targets.data() + 1;
       }},
      {"grad overlaps class_weight", INV, "grad_logits overlaps config->class_weight",
       [&](Call &k) {
         k.grad = grad_buf.data();
         k.config.class_weight = reinterpret_cast<float *>(grad_buf.data()) + 5;
       }},
      {"partner out of range", INV, "partners[2]",
       [](Call &k) {
         static const int64_t p[] = {1, 0, 4, 2};
         k.partners = p;
       }},
      {"label out of range", FASTMIX_ERROR_LABEL_OUT_OF_RANGE, "labels[2]",
       [](Call &k) {
         static const int64_t y[] = {0, 1, 8, 3};
         k.labels = y;
       }},
      {"binary: ignore_index is no class", FASTMIX_ERROR_LABEL_OUT_OF_RANGE, "labels[1]",
       [](Call &k) {
         static const int64_t y[] = {0, -100, 2, 3};
         k.config.kind = BCE;
         k.labels = y;
       }},
      {"CUDA MEAN without a workspace", INV, "workspace must not be NULL",
       [](Call &k) { k.device = FASTMIX_DEVICE_CUDA; }},
      {"CUDA SUM without a workspace", INV, "fastmix_loss_workspace_size",
       [](Call &k) {
         k.device = FASTMIX_DEVICE_CUDA;
         k.config.reduction = FASTMIX_REDUCTION_SUM;
       }},
      {"CUDA workspace too small", INV, "workspace_bytes",
       [&](Call &k) {
         k.device = FASTMIX_DEVICE_CUDA;
         k.ws = ws.data(), k.ws_bytes = 16;  // 4 rows need 8 + 16 bytes
       }},
      {"CUDA workspace misaligned", INV, "aligned",
       [&](Call &k) {
         k.device = FASTMIX_DEVICE_CUDA;
         k.ws = reinterpret_cast<unsigned char *>(ws.data()) + 4, k.ws_bytes = 32;
       }},
      {"CUDA workspace overlaps the class weights", INV, "workspace overlaps",
       [&](Call &k) {
         k.device = FASTMIX_DEVICE_CUDA;
         k.ws = ws.data(), k.ws_bytes = 64;
         k.config.class_weight = reinterpret_cast<const float *>(ws.data()) + 2;
       }},
  };
  for (const Bad &b : bads) {
    Call k = base;
    k.cfg = &k.config;
    b.change(k);
    CAPTURE(b.what);
    CHECK(k() == b.want);
    CAPTURE(fastmix_last_error());
    CHECK(std::string(fastmix_last_error()).find(b.needle) != std::string::npos);
    CHECK(std::string(fastmix_last_error()).rfind("fastmix_loss", 0) == 0);
    CHECK(all_poison(loss_buf.data(), loss_buf.size()));
    CHECK(all_poison(grad_buf.data(), grad_buf.size()));
  }
  // The CPU needs no workspace: none for MEAN is fine, and a given one is ignored.
  {
    std::vector<float> l(1);
    Call k = base;
    k.cfg = &k.config;
    k.loss = l.data(), k.grad = nullptr;
    CHECK(k() == FASTMIX_SUCCESS);
    k.ws = reinterpret_cast<unsigned char *>(ws.data()) + 1, k.ws_bytes = 1;
    CHECK(k() == FASTMIX_SUCCESS);
    CHECK(std::isfinite(l[0]));
  }
}
