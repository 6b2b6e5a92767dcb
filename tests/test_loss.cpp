// fastmix_loss on every device: the softmax cross-entropy with class weights
// and with dense probability targets, and the binary cross-entropy with
// logits (targets from labels, mixed and smoothed as timm does, or dense;
// threshold and pos_weight), against a float64 reference written here from
// the decoded inputs and the semantics of PyTorch's F.cross_entropy and
// F.binary_cross_entropy_with_logits (no library code).  Every call gets
// fresh random inputs and poisoned outputs; the cases take odd class counts,
// strides with gaps, rows off 16-byte alignment (logits, gradient and
// targets at different offsets) and in-place gradients.  The CUDA side of
// the [devices] cases runs on a GPU or on the simulator (tests/sim/run.sh),
// with the smaller sizes of on_simulator().
//
// Tolerances (each backend works in float32 and sums a row in its own order):
//  - loss of a row: 1e-5 * (|ref| + W * (1 + max|z| + log C)) for the
//    cross-entropy, W = sum_c |u_c| the row's total target weight (the
//    float32 error of U * logs + sum u_c (m - z_c)); for the binary loss
//    1e-5 * |ref| + 2e-6 * sum_c |cw_c| (1 + |pw_c|) (1 + |z_c|), a few
//    float32 roundings of each class's term.  A reduced loss: the sum of
//    those (over the denominator for MEAN).
//  - gradient: 2e-5 relative plus 1e-6 * |k| * W absolute (W: U for the
//    cross-entropy, the largest |cw_c| (1 + |pw_c|) of the row for the
//    binary loss), and one ulp of the storage type more for fp16/bf16.
//  - NaN passes only where the reference is NaN.
#include <catch2/catch.hpp>

#include "ce_cases.hpp"
#include "device.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace fmt_test;
using ce_test::close;
using ce_test::kDtypes;
using ce_test::kReductions;
using ce_test::poisoned;
using ce_test::ulp;

namespace {

constexpr auto CE = FASTMIX_LOSS_CROSS_ENTROPY;
constexpr auto BCE = FASTMIX_LOSS_BINARY_CROSS_ENTROPY;

struct LCase {
  fastmix_loss_kind kind = CE;
  fastmix_dtype dtype = FASTMIX_FLOAT32;
  int64_t batch = 4, classes = 10, stride = 10;
  fastmix_reduction red = FASTMIX_REDUCTION_MEAN;
  float eps = 0.0f;
  int64_t ignore = -100;
  bool mix = false;      // lambdas and partners (labels only)
  bool weights = false;  // class_weight
  bool pos = false;      // pos_weight (binary only)
  float threshold = -1.0f;
  bool dense = false;  // config->targets instead of labels
  fastmix_dtype tdtype = FASTMIX_FLOAT32;
  int64_t tstride = 10, toffset = 0;  // targets: stride, elements before row 0
  float grad_scale = 1.0f;
  bool grad = true;
  int64_t offset = 0;         // elements before row 0 of the logits (and gradient)
  int64_t grad_misalign = 0;  // elements by which the gradient buffer is shifted
};

std::string describe(const LCase &c) {
  std::string s = c.kind == CE ? "cross-entropy" : "binary";
  s += c.dense ? std::string(" dense targets ") + dtype_name(c.tdtype) : " labels";
  s += std::string(" logits ") + dtype_name(c.dtype) + " red " + std::to_string((int)c.red);
  s += " batch " + std::to_string(c.batch) + " classes " + std::to_string(c.classes);
  s += " stride " + std::to_string(c.stride) + " eps " + std::to_string(c.eps);
  s += c.mix ? " mixup" : "";
  s += c.weights ? " class_weight" : "";
  s += c.pos ? " pos_weight" : "";
  s += " threshold " + std::to_string(c.threshold);
  s += " grad " + std::to_string(c.grad) + " scale " + std::to_string(c.grad_scale);
  s += " offset " + std::to_string(c.offset) + " grad_misalign " + std::to_string(c.grad_misalign);
  s += " tstride " + std::to_string(c.tstride) + " toffset " + std::to_string(c.toffset);
  return s;
}

struct LInputs {
  std::vector<unsigned char> logits;   // element offset + i * stride + c
  std::vector<unsigned char> targets;  // element toffset + i * tstride + c (dense only)
  std::vector<int64_t> labels, partners;
  std::vector<float> lambdas, cw, pw;
};

size_t span_elems(int64_t offset, int64_t batch, int64_t stride, int64_t cols) {
  return (size_t)(offset + (batch > 0 ? (batch - 1) * stride + cols : 0) + 3);
}

// Random inputs: logits ~ N(0, scale^2) in the dtype; labels in [0, C) (a
// fraction `ignored` of ignore_index for the cross-entropy); a random
// permutation and uniform lambdas; class weights in [0.1, 2], pos_weight in
// [0.5, 3]; dense cross-entropy targets mostly probability rows (some rows
// arbitrary values in [-0.5, 1.5], which F.cross_entropy accepts too), binary
// targets in [0, 1].
LInputs make_inputs(const LCase &c, std::mt19937_64 &rng, double scale = 3.0,
                    double ignored = 0.0) {
  LInputs in;
  const size_t n = span_elems(c.offset, c.batch, c.stride, c.classes);
  in.logits.assign(n * dtype_size(c.dtype), 0);
  std::normal_distribution<double> normal(0.0, scale);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (size_t j = 0; j < n; ++j) encode(c.dtype, in.logits.data(), (int64_t)j, normal(rng));
  std::uniform_int_distribution<int64_t> label(0, c.classes - 1);
  for (int64_t i = 0; i < c.batch; ++i)
    in.labels.push_back(c.kind == CE && unit(rng) < ignored ? c.ignore : label(rng));
  in.partners.resize((size_t)c.batch);
  std::iota(in.partners.begin(), in.partners.end(), int64_t{0});
  std::shuffle(in.partners.begin(), in.partners.end(), rng);
  for (int64_t i = 0; i < c.batch; ++i) in.lambdas.push_back((float)unit(rng));
  for (int64_t j = 0; j < c.classes; ++j) {
    in.cw.push_back((float)(0.1 + 1.9 * unit(rng)));
    in.pw.push_back((float)(0.5 + 2.5 * unit(rng)));
  }
  if (c.dense) {
    const size_t tn = span_elems(c.toffset, c.batch, c.tstride, c.classes);
    in.targets.assign(tn * dtype_size(c.tdtype), 0);
    for (size_t j = 0; j < tn; ++j) encode(c.tdtype, in.targets.data(), (int64_t)j, unit(rng));
    if (c.kind == CE)
      for (int64_t i = 0; i < c.batch; ++i) {
        const int64_t row = c.toffset + i * c.tstride;
        if (unit(rng) < 0.2) {
          for (int64_t j = 0; j < c.classes; ++j)
            encode(c.tdtype, in.targets.data(), row + j, -0.5 + 2.0 * unit(rng));
          continue;
        }
        std::vector<double> w((size_t)c.classes);
        double sum = 0.0;
        for (double &v : w) sum += v = std::exp(2.0 * normal(rng) / scale);
        for (int64_t j = 0; j < c.classes; ++j)
          encode(c.tdtype, in.targets.data(), row + j, w[(size_t)j] / sum);
      }
  }
  // Empty vectors (batch 0) still need valid pointers.
  if (in.labels.empty()) in.labels.push_back(0);
  if (in.partners.empty()) in.partners.push_back(0);
  if (in.lambdas.empty()) in.lambdas.push_back(0.5f);
  return in;
}

// ---- the float64 reference ----------------------------------------------------
struct LRef {
  std::vector<double> row_loss, row_tol, row_w, grad;  // grad: [batch][classes]
  double reduced = 0.0, reduced_tol = 0.0, k = 1.0;
};

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

LRef reference(const LCase &c, const LInputs &in) {
  LRef r;
  const int64_t n = c.batch, C = c.classes;
  const double eps = c.eps;
  auto cw = [&](int64_t j) { return c.weights ? (double)in.cw[(size_t)j] : 1.0; };
  auto pw = [&](int64_t j) { return c.pos ? (double)in.pw[(size_t)j] : 1.0; };
  auto z_at = [&](int64_t i, int64_t j) {
    return decode(c.dtype, in.logits.data(), c.offset + i * c.stride + j);
  };
  auto t_at = [&](int64_t i, int64_t j) {
    return decode(c.tdtype, in.targets.data(), c.toffset + i * c.tstride + j);
  };
  double denom = 0.0, lsum = 0.0, tsum = 0.0;
  std::vector<double> dgrad((size_t)(n * C), 0.0);  // d loss_i / d z, before the factor k
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> z((size_t)C);
    double m = -INFINITY, maxabs = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      z[(size_t)j] = z_at(i, j);
      m = std::max(m, z[(size_t)j]);
      maxabs = std::max(maxabs, std::fabs(z[(size_t)j]));
    }
    double loss = 0.0, tol = 0.0, w = 0.0;
    if (c.kind == CE) {
      double s = 0.0;
      for (double v : z) s += std::exp(v - m);
      const double lse = m + std::log(s);
      // u: the weighted target whose sum_c u_c (lse - z_c) is the row's loss.
      std::vector<double> u((size_t)C, 0.0);
      if (c.dense) {
        // F.cross_entropy with probabilities: -sum_c cw_c t'_c log_softmax(z)_c.
        for (int64_t j = 0; j < C; ++j) {
          const double t = (1.0 - eps) * t_at(i, j) + eps / (double)C;
          u[(size_t)j] = cw(j) * t;
          loss += u[(size_t)j] == 0.0 ? 0.0 : u[(size_t)j] * (lse - z[(size_t)j]);
        }
        denom += 1.0;
      } else {
        // F.cross_entropy with class indices, per term: (1 - eps) cw[y] (lse -
        // z_y) + eps / C sum_c cw_c (lse - z_c), the two terms weighted by the
        // mixup shares (a term with ignore_index: weight 0).
        const int64_t y1 = in.labels[(size_t)i];
        const double lam = c.mix ? (double)in.lambdas[(size_t)i] : 1.0;
        const int64_t y2 = c.mix ? in.labels[(size_t)in.partners[(size_t)i]] : c.ignore;
        const double a1 = y1 != c.ignore ? lam : 0.0;
        const double a2 = c.mix && y2 != c.ignore ? 1.0 - lam : 0.0;
        double smooth = 0.0;
        for (int64_t j = 0; j < C; ++j) smooth += cw(j) * (lse - z[(size_t)j]);
        auto term = [&](int64_t y) {
          return (1.0 - eps) * cw(y) * (lse - z[(size_t)y]) +
                 (eps != 0.0 ? eps / (double)C * smooth : 0.0);
        };
        if (a1 != 0.0) {
          loss += a1 * term(y1);
          denom += a1 * cw(y1);
          u[(size_t)y1] += (1.0 - eps) * a1 * cw(y1);
        }
        if (a2 != 0.0) {
          loss += a2 * term(y2);
          denom += a2 * cw(y2);
          u[(size_t)y2] += (1.0 - eps) * a2 * cw(y2);
        }
        for (int64_t j = 0; j < C; ++j) u[(size_t)j] += (a1 + a2) * eps / (double)C * cw(j);
      }
      double U = 0.0, Uabs = 0.0;
      for (double v : u) U += v, Uabs += std::fabs(v);
      for (int64_t j = 0; j < C; ++j)
        dgrad[(size_t)(i * C + j)] = U * std::exp(z[(size_t)j] - lse) - u[(size_t)j];
      tol = 1e-5 * (std::fabs(loss) + Uabs * (1.0 + maxabs + std::log((double)C)));
      w = Uabs;
    } else {
      // F.binary_cross_entropy_with_logits per class, the target timm's
      // mixed, smoothed one-hot (or the smoothed dense value), thresholded.
      const int64_t y1 = in.labels[(size_t)i];
      const double lam = c.mix ? (double)in.lambdas[(size_t)i] : 1.0;
      const int64_t y2 = c.mix ? in.labels[(size_t)in.partners[(size_t)i]] : -1;
      double terms = 0.0;
      for (int64_t j = 0; j < C; ++j) {
        double t =
            c.dense ? t_at(i, j) : (j == y1 ? lam : 0.0) + (c.mix && j == y2 ? 1.0 - lam : 0.0);
        t = (1.0 - eps) * t + eps / (double)C;
        if (c.threshold >= 0.0f) {
          // The threshold is a step, so it compares the target as the API
          // defines it: smoothed in float32, each operation rounded.  In
          // float64 a target within a rounding of the threshold can land on
          // the other side and flip the whole term.
          const float lf = c.mix ? in.lambdas[(size_t)i] : 1.0f;
          const float tf = c.dense ? (float)t_at(i, j)
                                   : (j == y1 ? lf : 0.0f) + (c.mix && j == y2 ? 1.0f - lf : 0.0f);
          const float ts = (1.0f - c.eps) * tf + c.eps / (float)C;
          t = ts > c.threshold ? 1.0 : 0.0;
        }
        const double zj = z[(size_t)j];
        loss += cw(j) * (pw(j) * t * softplus(-zj) + (1.0 - t) * softplus(zj));
        const double sig = 1.0 / (1.0 + std::exp(-zj));
        dgrad[(size_t)(i * C + j)] = cw(j) * ((1.0 - t + pw(j) * t) * sig - pw(j) * t);
        const double wj = std::fabs(cw(j)) * (1.0 + std::fabs(pw(j)));
        terms += wj * (1.0 + std::fabs(zj));
        w = std::max(w, wj);
      }
      denom += (double)C;
      tol = 1e-5 * std::fabs(loss) + 2e-6 * terms;
    }
    r.row_loss.push_back(loss);
    r.row_tol.push_back(tol);
    r.row_w.push_back(w);
    lsum += loss;
    tsum += tol;
  }
  const bool mean = c.red == FASTMIX_REDUCTION_MEAN;
  r.reduced = mean ? lsum / denom : lsum;
  r.reduced_tol = mean ? tsum / denom : tsum;
  r.k = (double)c.grad_scale * (mean ? 1.0 / denom : 1.0);
  r.grad.resize(dgrad.size());
  // A fully ignored row has gradient 0, also when MEAN has no weight at all
  // (k infinite): PyTorch leaves ignored rows' gradients at 0.
  for (size_t e = 0; e < dgrad.size(); ++e) r.grad[e] = dgrad[e] == 0.0 ? 0.0 : r.k * dgrad[e];
  return r;
}

double grad_tol(fastmix_dtype d, double ref, double k, double w) {
  const double t = 2e-5 * std::fabs(ref) + (w == 0.0 ? 0.0 : 1e-6 * std::fabs(k) * w);
  return d == FASTMIX_FLOAT32 ? t : t + ulp(d, ref);
}

// ---- running the library ----------------------------------------------------------
struct LOut {
  fastmix_device dev = FASTMIX_DEVICE_CPU;
  fastmix_status status = FASTMIX_ERROR_INTERNAL;
  std::vector<float> loss;          // max(batch, 1) + 2 floats, poisoned before
  std::vector<unsigned char> grad;  // like the logits buffer, poisoned before (in place: it)
  bool inputs_intact = true;
};

fastmix_loss_config make_config(const LCase &c, const float *cw, const float *pw,
                                const void *targets) {
  fastmix_loss_config cfg;
  fastmix_loss_config_init(&cfg);
  cfg.kind = c.kind;
  cfg.reduction = c.red;
  cfg.label_smoothing = c.eps;
  cfg.grad_scale = c.grad_scale;
  cfg.ignore_index = c.ignore;
  cfg.class_weight = c.weights ? cw : nullptr;
  cfg.pos_weight = c.pos ? pw : nullptr;
  cfg.target_threshold = c.threshold;
  cfg.targets = c.dense ? targets : nullptr;
  cfg.targets_dtype = c.tdtype;
  cfg.targets_stride = c.tstride;
  return cfg;
}

// One fastmix_loss call on `dev` with copies of the inputs in buffers of that
// device, the outputs poisoned, and a workspace of the size
// fastmix_loss_workspace_size gives (none on the CPU).  inplace:
// grad_logits == logits.
LOut run(fastmix_device dev, const LCase &c, const LInputs &in, bool inplace = false) {
  LOut o;
  o.dev = dev;
  const size_t es = dtype_size(c.dtype);
  Buffer logits = to_device(dev, in.logits), labels = to_device(dev, in.labels),
         lambdas = to_device(dev, in.lambdas), partners = to_device(dev, in.partners),
         cw = to_device(dev, in.cw), pw = to_device(dev, in.pw),
         targets = to_device(dev, in.targets);
  Buffer loss(dev, (size_t)(std::max<int64_t>(c.batch, 1) + 2) * sizeof(float));
  Buffer grad(dev, inplace ? 0 : in.logits.size(), (size_t)c.grad_misalign * es);
  const void *z = logits.data() + (size_t)c.offset * es;
  void *g = !c.grad   ? nullptr
            : inplace ? logits.data() + (size_t)c.offset * es
                      : grad.data() + (size_t)c.offset * es;
  const fastmix_loss_config cfg = make_config(
      c, cw.as<float>(), pw.as<float>(), targets.data() + (size_t)c.toffset * dtype_size(c.tdtype));
  size_t bytes = 1;
  REQUIRE(fastmix_loss_workspace_size(dev, c.batch, &cfg, &bytes) == FASTMIX_SUCCESS);
  if (dev == FASTMIX_DEVICE_CPU) REQUIRE(bytes == 0);
  Buffer ws(dev, bytes ? bytes : 8);
  o.status = fastmix_loss(
      dev, c.dtype, z, c.batch, c.classes, c.stride, c.dense ? nullptr : labels.as<int64_t>(),
      c.mix ? lambdas.as<float>() : nullptr, c.mix ? partners.as<int64_t>() : nullptr, &cfg,
      loss.as<float>(), g, bytes ? ws.data() : nullptr, bytes, nullptr);
  finish(dev);
  o.loss = loss.copy_as<float>();
  o.grad = inplace ? logits.copy() : grad.copy();
  auto same = [](const Buffer &b, const void *host, size_t n) {
    if (n == 0) return true;
    const std::vector<unsigned char> now = b.copy();
    return std::memcmp(now.data(), host, n) == 0;
  };
  o.inputs_intact = same(labels, in.labels.data(), in.labels.size() * 8) &&
                    same(lambdas, in.lambdas.data(), in.lambdas.size() * 4) &&
                    same(partners, in.partners.data(), in.partners.size() * 8) &&
                    same(cw, in.cw.data(), in.cw.size() * 4) &&
                    same(pw, in.pw.data(), in.pw.size() * 4) &&
                    same(targets, in.targets.data(), in.targets.size()) &&
                    (inplace || same(logits, in.logits.data(), in.logits.size()));
  return o;
}

void check(const LCase &c, const LInputs &in, const LOut &o, const LRef &r, bool inplace = false) {
  CAPTURE(device_name(o.dev), describe(c), inplace);
  INFO("fastmix_last_error(): " << fastmix_last_error());
  REQUIRE(o.status == FASTMIX_SUCCESS);
  CHECK(o.inputs_intact);
  const size_t written = c.red == FASTMIX_REDUCTION_NONE ? (size_t)c.batch : 1;
  if (c.red == FASTMIX_REDUCTION_NONE) {
    for (int64_t i = 0; i < c.batch; ++i) {
      CAPTURE(i, o.loss[(size_t)i], r.row_loss[(size_t)i], r.row_tol[(size_t)i]);
      CHECK(close(o.loss[(size_t)i], r.row_loss[(size_t)i], r.row_tol[(size_t)i]));
    }
  } else {
    CAPTURE(o.loss[0], r.reduced, r.reduced_tol);
    CHECK(close(o.loss[0], r.reduced, r.reduced_tol));
  }
  CHECK(poisoned(reinterpret_cast<const unsigned char *>(o.loss.data() + written),
                 (o.loss.size() - written) * sizeof(float)));
  const size_t es = dtype_size(c.dtype);
  int bad = 0;
  for (size_t e = 0; e < o.grad.size() / es; ++e) {
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

LOut run_and_check(fastmix_device dev, const LCase &c, const LInputs &in, bool inplace = false) {
  const LRef r = reference(c, in);
  LOut o = run(dev, c, in, inplace);
  check(c, in, o, r, inplace);
  return o;
}

// A random geometry for a case: batch, a stride with gaps (sometimes none),
// rows and gradient off alignment, the gradient scale and whether it is asked.
void randomize(LCase &c, std::mt19937_64 &rng, int64_t max_batch) {
  c.batch = 1 + (int64_t)(rng() % (uint64_t)max_batch);
  c.stride = c.classes + (int64_t)(rng() % 3);
  c.offset = (int64_t)(rng() % 3);
  c.grad_misalign = (int64_t)(rng() % 2);
  c.grad_scale = rng() % 2 ? 1.0f : 0.37f;
  c.grad = rng() % 4 != 0;
  c.eps = rng() % 2 ? 0.0f : 0.1f;
  // Targets: an odd stride and a start one element past the logits' (for
  // 16-bit targets, rows then start on 2-byte but not 4-byte boundaries).
  c.tstride = c.classes + 1 + 2 * (int64_t)(rng() % 2);
  c.toffset = 1 + (int64_t)(rng() % 2);
}

std::vector<int64_t> class_counts() {
  // Rows shorter than a 16-byte vector (1, 7), warp rows (33, 1001), block
  // rows of every storage type (above 256 vectors: 1024 float32 or 2048
  // 16-bit classes).
  if (on_simulator()) return {1, 7, 1001, 2069};
  return {1, 2, 7, 33, 129, 1001, 2049, 2069, 4097};
}

}  // namespace

TEST_CASE(
    "loss: cross-entropy with class weights matches a float64 reference (every dtype and "
    "reduction, smoothing, ignore_index, plain and mixup)",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1055);
  const int64_t max_batch = on_simulator() ? 5 : 40;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kDtypes)
      for (fastmix_reduction red : kReductions)
        for (bool mix : {false, true})
          for (int64_t C : class_counts()) {
            LCase c;
            c.dtype = d;
            c.red = red;
            c.mix = mix;
            c.weights = true;
            c.classes = C;
            randomize(c, rng, max_batch);
            run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2));
          }
}

TEST_CASE(
    "loss: cross-entropy with dense probability targets of every storage type matches a float64 "
    "reference (with and without class weights, smoothing, every reduction)",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1056);
  const int64_t max_batch = on_simulator() ? 5 : 40;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kDtypes)
      for (fastmix_dtype td : kDtypes)
        for (fastmix_reduction red : kReductions)
          for (int64_t C : class_counts()) {
            // The simulator takes a third of the (target dtype, reduction)
            // pairs, each target dtype and each reduction once per size.
            if (on_simulator() && ((int)td + (int)red) % 3 != 0) continue;
            LCase c;
            c.dtype = d;
            c.tdtype = td;
            c.dense = true;
            c.red = red;
            c.classes = C;
            c.weights = rng() % 2 == 0;
            randomize(c, rng, max_batch);
            run_and_check(dev, c, make_inputs(c, rng));
          }
}

TEST_CASE(
    "loss: binary cross-entropy with labels (timm's mixed, smoothed targets) matches a float64 "
    "reference (threshold, pos_weight, class weights, every dtype and reduction)",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1057);
  const int64_t max_batch = on_simulator() ? 5 : 40;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kDtypes)
      for (fastmix_reduction red : kReductions)
        for (bool mix : {false, true})
          for (int64_t C : class_counts()) {
            LCase c;
            c.kind = BCE;
            c.dtype = d;
            c.red = red;
            c.mix = mix;
            c.classes = C;
            c.pos = rng() % 2 == 0;
            c.weights = rng() % 2 == 0;
            c.threshold = rng() % 2 ? -1.0f : 0.2f;  // timm's bce_target_thresh, off or 0.2
            randomize(c, rng, max_batch);
            run_and_check(dev, c, make_inputs(c, rng));
          }
}

TEST_CASE(
    "loss: binary cross-entropy with dense targets of every storage type matches a float64 "
    "reference",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1058);
  const int64_t max_batch = on_simulator() ? 5 : 40;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kDtypes)
      for (fastmix_dtype td : kDtypes)
        for (fastmix_reduction red : kReductions)
          for (int64_t C : class_counts()) {
            // The simulator takes a third of the (target dtype, reduction)
            // pairs, each target dtype and each reduction once per size.
            if (on_simulator() && ((int)td + (int)red) % 3 != 0) continue;
            LCase c;
            c.kind = BCE;
            c.dtype = d;
            c.tdtype = td;
            c.dense = true;
            c.red = red;
            c.classes = C;
            c.pos = rng() % 2 == 0;
            c.weights = rng() % 2 == 0;
            c.threshold = rng() % 3 == 0 ? 0.5f : -1.0f;
            randomize(c, rng, max_batch);
            run_and_check(dev, c, make_inputs(c, rng));
          }
}

TEST_CASE(
    "loss: the binary threshold decides on the float32 smoothed target, each operation rounded, "
    "on every device (targets within a rounding of the threshold)",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1059);
  LCase c;
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
  LInputs in = make_inputs(c, rng);
  for (int64_t i = 0; i < c.batch; ++i)
    for (size_t e = 0; e < edge.size(); ++e)
      encode(FASTMIX_FLOAT32, in.targets.data(),
             c.toffset + i * c.tstride + (i * 5 + (int64_t)e) % c.classes, edge[e]);
  for (fastmix_device dev : test_devices()) run_and_check(dev, c, in);
}

TEST_CASE("loss: in-place gradient (grad_logits == logits) for every kind", "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x1059);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kDtypes)
      for (int kind = 0; kind < 4; ++kind)
        for (int64_t C : {7, 1001, 2069}) {
          LCase c;
          c.kind = kind < 2 ? CE : BCE;
          c.dense = kind % 2 == 1;
          c.dtype = d;
          c.classes = C;
          c.weights = true;
          c.mix = !c.dense;
          c.pos = c.kind == BCE;
          randomize(c, rng, 5);
          c.grad = true;
          c.grad_misalign = 0;
          run_and_check(dev, c, make_inputs(c, rng, 3.0, 0.2), /*inplace=*/true);
        }
}

TEST_CASE("loss: the gradient matches a central finite difference of the float64 loss",
          "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x105a);
  for (fastmix_device dev : test_devices())
    for (int kind = 0; kind < 4; ++kind)
      for (fastmix_reduction red : kReductions) {
        LCase c;
        c.kind = kind < 2 ? CE : BCE;
        c.dense = kind % 2 == 1;
        c.red = red;
        c.batch = 3;
        c.classes = 5;
        c.stride = 5;
        c.tstride = 5;
        c.eps = 0.1f;
        c.weights = true;
        c.mix = !c.dense;
        c.pos = c.kind == BCE;
        c.grad_scale = 0.7f;
        LInputs in = make_inputs(c, rng, 2.0);
        const LOut o = run(dev, c, in);
        REQUIRE(o.status == FASTMIX_SUCCESS);
        const LRef r0 = reference(c, in);
        auto total = [&](const LInputs &x) {
          const LRef r = reference(c, x);
          if (red != FASTMIX_REDUCTION_NONE) return r.reduced;
          double s = 0.0;
          for (double v : r.row_loss) s += v;
          return s;
        };
        const double h = 1e-4;
        for (int64_t e = 0; e < c.batch * c.classes; ++e) {
          float *zp = reinterpret_cast<float *>(in.logits.data()) + e;
          const float z0 = *zp;
          *zp = z0 + (float)h;
          const double up = total(in);
          *zp = z0 - (float)h;
          const double down = total(in);
          *zp = z0;
          // The step as stored in float32, so that the quotient is exact.
          const double step = (double)(z0 + (float)h) - (double)(z0 - (float)h);
          const double fd = c.grad_scale * (up - down) / step;
          const double got = decode(c.dtype, o.grad.data(), e);
          CAPTURE(device_name(dev), describe(c), e, got, fd);
          CHECK(close(got, fd, 1e-4 * std::fabs(fd) + 1e-6 * std::fabs(r0.k) * 10.0));
        }
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
        LCase c;
        c.dense = dense;
        c.red = FASTMIX_REDUCTION_NONE;
        c.batch = 3;
        c.classes = c.stride = c.tstride = C;
        c.eps = 0.1f;
        c.weights = true;
        LInputs in = make_inputs(c, rng);
        // Classes 0, 3, 6, ... get weight 0 and no label.
        for (int64_t j = 0; j < C; j += 3) in.cw[(size_t)j] = 0.0f;
        for (int64_t i = 0; i < c.batch && !dense; ++i) {
          int64_t &y = in.labels[(size_t)i];
          if (y % 3 == 0) y = y + 1 < C ? y + 1 : y - 1;  // C - 2 is no multiple of 3 then
        }
        LInputs masked = in, finite = in;
        for (int64_t i = 0; i < c.batch; ++i)
          for (int64_t j = 0; j < C; j += 3) {
            encode(c.dtype, masked.logits.data(), i * C + j, -INFINITY);
            encode(c.dtype, finite.logits.data(), i * C + j, -1e30);
          }
        const LOut a = run(dev, c, masked), b = run(dev, c, finite);
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
    for (int kind = 0; kind < 4; ++kind)
      for (fastmix_reduction red : kReductions) {
        std::mt19937_64 rng = make_rng(0x105b);
        LCase c;
        c.kind = kind < 2 ? CE : BCE;
        c.dense = kind % 2 == 1;
        c.red = red;
        c.batch = 0;
        c.classes = 1000;
        c.stride = 1000;
        c.tstride = 1000;
        c.weights = true;
        const LInputs in = make_inputs(c, rng);
        const LOut o = run(dev, c, in);
        CAPTURE(device_name(dev), describe(c));
        REQUIRE(o.status == FASTMIX_SUCCESS);
        CHECK(o.inputs_intact);
        size_t written = 0;
        if (red == FASTMIX_REDUCTION_MEAN) {
          CHECK(std::isnan(o.loss[0]));
          written = 1;
        } else if (red == FASTMIX_REDUCTION_SUM) {
          CHECK(o.loss[0] == 0.0f);
          written = 1;
        }
        CHECK(poisoned(reinterpret_cast<const unsigned char *>(o.loss.data() + written),
                       (o.loss.size() - written) * 4));
        CHECK(poisoned(o.grad.data(), o.grad.size()));
      }
}

TEST_CASE(
    "loss: deterministic, and fastmix_cross_entropy_ws is fastmix_loss with the default config",
    "[loss][devices]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x105c);
  for (fastmix_device dev : test_devices())
    for (int kind = 0; kind < 4; ++kind)
      for (fastmix_reduction red : kReductions) {
        LCase c;
        c.kind = kind < 2 ? CE : BCE;
        c.dense = kind % 2 == 1;
        c.red = red;
        c.classes = 1001;
        c.weights = c.dense;
        c.mix = !c.dense;
        randomize(c, rng, 9);
        c.grad = true;
        const LInputs in = make_inputs(c, rng, 3.0, 0.1);
        const LOut a = run(dev, c, in), b = run(dev, c, in);
        CAPTURE(device_name(dev), describe(c));
        REQUIRE(a.status == FASTMIX_SUCCESS);
        REQUIRE(b.status == FASTMIX_SUCCESS);
        CHECK(same_bits(a.loss, b.loss));
        CHECK(a.grad == b.grad);
        if (kind != 0) continue;
        // The cross-entropy with labels and no weights: the same as the older
        // entry point with a workspace of the same size.
        const size_t es = dtype_size(c.dtype);
        Buffer logits = to_device(dev, in.logits), labels = to_device(dev, in.labels),
               lambdas = to_device(dev, in.lambdas), partners = to_device(dev, in.partners);
        Buffer loss(dev, a.loss.size() * 4),
            grad(dev, in.logits.size(), (size_t)c.grad_misalign * es);
        size_t bytes = 0;
        REQUIRE(fastmix_cross_entropy_workspace_size(dev, c.batch, red, &bytes) == FASTMIX_SUCCESS);
        Buffer ws(dev, bytes ? bytes : 8);
        REQUIRE(fastmix_cross_entropy_ws(
                    dev, c.dtype, logits.data() + (size_t)c.offset * es, c.batch, c.classes,
                    c.stride, labels.as<int64_t>(), lambdas.as<float>(), partners.as<int64_t>(),
                    red, c.eps, c.ignore, loss.as<float>(), grad.data() + (size_t)c.offset * es,
                    c.grad_scale, bytes ? ws.data() : nullptr, bytes, nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        CHECK(same_bits(loss.copy_as<float>(), a.loss));
        CHECK(grad.copy() == a.grad);
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

template <class E>
E bad_enum(int v) {
  E e;
  std::memcpy(&e, &v, sizeof e);
  return e;
}

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
    CHECK(poisoned(loss_buf.data(), loss_buf.size()));
    CHECK(poisoned(grad_buf.data(), grad_buf.size()));
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
