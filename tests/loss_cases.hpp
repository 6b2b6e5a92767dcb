// The cases, random inputs, float64 reference and checks of the loss tests:
// fastmix_loss (tests/test_loss.cpp), its thin forms fastmix_cross_entropy
// and fastmix_cross_entropy_ws (tests/test_cross_entropy.cpp), and what only
// CUDA has (tests/cuda/test_cuda_cross_entropy.cpp).  One case type names the
// entry point; one reference, written here from the decoded inputs and the
// semantics of PyTorch's F.cross_entropy and
// F.binary_cross_entropy_with_logits (no library code), and one tolerance
// rule serve them all.
//
// Tolerances (the same on every device; each backend works in float32 and
// sums a row in its own order, so neither is bitwise the other):
//  - loss of a row: 1e-5 * (|ref| + W * (1 + max|z| + log C)) for the
//    cross-entropy, W = sum_c |u_c| the row's total target weight (the
//    float32 error of U * lse + sum u_c (m - z_c); max over the finite
//    logits); for the binary loss 1e-5 * |ref| + 2e-6 * sum_c |cw_c|
//    (1 + |pw_c|) (1 + |z_c|), a few float32 roundings of each class's term.
//    A reduced loss: the sum of those (over the denominator for MEAN; the row
//    losses are added in float64 on both backends).
//  - float32 gradient: 2e-5 relative (the float32 sum of up to 262144 exps,
//    in blocks or trees, has a relative error of a few 1e-6, which enters
//    every softmax value) plus 1e-6 * |k| * W absolute for the cancellation
//    in U * p - u (W: U for the cross-entropy, the largest |cw_c| (1 + |pw_c|)
//    of the row for the binary loss).
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
#include <string>
#include <vector>

namespace loss_test {

using namespace fmt_test;

constexpr auto CE = FASTMIX_LOSS_CROSS_ENTROPY;
constexpr auto BCE = FASTMIX_LOSS_BINARY_CROSS_ENTROPY;
constexpr fastmix_reduction kReductions[] = {FASTMIX_REDUCTION_NONE, FASTMIX_REDUCTION_MEAN,
                                             FASTMIX_REDUCTION_SUM};

// The entry point a case calls: fastmix_loss, or the labelled cross-entropy
// forms (no class weights, pos_weight, threshold or dense targets), without
// or with a workspace of the size fastmix_cross_entropy_workspace_size asks.
enum class Entry { loss, cross_entropy, cross_entropy_ws };

struct Case {
  Entry entry = Entry::loss;
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
  int64_t offset = 0;  // elements before row 0 of the logits (and gradient): misalignment
  // Elements by which the gradient buffer is shifted against the logits
  // buffer: 1 puts grad_logits and logits at different offsets from 16-byte
  // alignment (CUDA then stores the gradient element by element).
  int64_t grad_misalign = 0;
};

// The defaults of fastmix_cross_entropy's tests: labels with mixup.
inline Case ce_case() {
  Case c;
  c.entry = Entry::cross_entropy;
  c.mix = true;
  return c;
}
// The same with `batch` rows of `classes` logits of `dtype`, `stride` apart.
inline Case ce_case(fastmix_dtype dtype, fastmix_reduction red, int64_t batch, int64_t classes,
                    int64_t stride) {
  Case c = ce_case();
  c.dtype = dtype;
  c.red = red;
  c.batch = batch;
  c.classes = classes;
  c.stride = stride;
  return c;
}

inline std::string describe(const Case &c) {
  static const char *const entries[] = {"fastmix_loss", "fastmix_cross_entropy",
                                        "fastmix_cross_entropy_ws"};
  std::string s = entries[(int)c.entry];
  s += c.kind == CE ? " cross-entropy" : " binary";
  s += c.dense ? std::string(" dense targets ") + dtype_name(c.tdtype) : " labels";
  s += std::string(" logits ") + dtype_name(c.dtype) + " red " + std::to_string((int)c.red);
  s += " batch " + std::to_string(c.batch) + " classes " + std::to_string(c.classes);
  s += " stride " + std::to_string(c.stride) + " eps " + std::to_string(c.eps);
  s += " ignore " + std::to_string(c.ignore);
  s += c.mix ? " mixup" : "";
  s += c.weights ? " class_weight" : "";
  s += c.pos ? " pos_weight" : "";
  s += " threshold " + std::to_string(c.threshold);
  s += " grad " + std::to_string(c.grad) + " scale " + std::to_string(c.grad_scale);
  s += " offset " + std::to_string(c.offset) + " grad_misalign " + std::to_string(c.grad_misalign);
  s += " tstride " + std::to_string(c.tstride) + " toffset " + std::to_string(c.toffset);
  return s;
}

struct Inputs {
  std::vector<unsigned char> logits;   // element offset + i * stride + c
  std::vector<unsigned char> targets;  // element toffset + i * tstride + c (dense only)
  std::vector<int64_t> labels, partners;
  std::vector<float> lambdas, cw, pw;
};

inline size_t span_elems(int64_t offset, int64_t batch, int64_t stride, int64_t cols) {
  return (size_t)(offset + (batch > 0 ? (batch - 1) * stride + cols : 0) + 3);
}
inline size_t buf_elems(const Case &c) {
  return span_elems(c.offset, c.batch, c.stride, c.classes);
}

// Random inputs: logits ~ N(0, scale^2) in the dtype; labels in [0, C) (a
// fraction `ignored` of ignore_index for the cross-entropy); a random
// permutation and uniform lambdas; class weights in [0.1, 2], pos_weight in
// [0.5, 3]; dense cross-entropy targets mostly probability rows (some rows
// arbitrary values in [-0.5, 1.5], which F.cross_entropy accepts too), binary
// targets in [0, 1].
inline Inputs make_inputs(const Case &c, std::mt19937_64 &rng, double scale = 3.0,
                          double ignored = 0.0) {
  Inputs in;
  const size_t n = buf_elems(c);
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
  // Empty vectors (batch 0) still need valid pointers, on the host and the device.
  if (in.labels.empty()) in.labels.push_back(0);
  if (in.partners.empty()) in.partners.push_back(0);
  if (in.lambdas.empty()) in.lambdas.push_back(0.5f);
  return in;
}

// A random geometry for a case: batch, a stride with gaps (sometimes none),
// rows and gradient off alignment, the gradient scale and whether it is asked.
inline void randomize(Case &c, std::mt19937_64 &rng, int64_t max_batch) {
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

// ---- the float64 reference ----------------------------------------------------
struct Ref {
  std::vector<double> row_loss, row_tol, row_w, grad;  // grad: [batch][classes]
  double reduced = 0.0, reduced_tol = 0.0, k = 1.0;
};

// The logits of the rows, decoded: [batch][classes].
inline std::vector<double> decode_rows(const Case &c, const Inputs &in) {
  std::vector<double> z((size_t)(c.batch * c.classes));
  for (int64_t i = 0; i < c.batch; ++i)
    for (int64_t j = 0; j < c.classes; ++j)
      z[(size_t)(i * c.classes + j)] =
          decode(c.dtype, in.logits.data(), c.offset + i * c.stride + j);
  return z;
}

inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// The contract in float64, at the logits `zs` ([batch][classes]; a finite
// difference moves them off the storage type's values).
inline Ref reference(const Case &c, const Inputs &in, const std::vector<double> &zs) {
  Ref r;
  const int64_t n = c.batch, C = c.classes;
  const double eps = c.eps;
  auto cw = [&](int64_t j) { return c.weights ? (double)in.cw[(size_t)j] : 1.0; };
  auto pw = [&](int64_t j) { return c.pos ? (double)in.pw[(size_t)j] : 1.0; };
  auto t_at = [&](int64_t i, int64_t j) {
    return decode(c.tdtype, in.targets.data(), c.toffset + i * c.tstride + j);
  };
  double denom = 0.0, lsum = 0.0, tsum = 0.0;
  std::vector<double> dgrad((size_t)(n * C), 0.0);  // d loss_i / d z, before the factor k
  for (int64_t i = 0; i < n; ++i) {
    const double *z = zs.data() + i * C;
    double m = -INFINITY, maxabs = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      m = std::max(m, z[j]);
      if (std::isfinite(z[j])) maxabs = std::max(maxabs, std::fabs(z[j]));
    }
    double loss = 0.0, tol = 0.0, w = 0.0;
    if (c.kind == CE) {
      double s = 0.0;
      for (int64_t j = 0; j < C; ++j) s += std::exp(z[j] - m);
      const double lse = m + std::log(s);
      // u: the weighted target whose sum_c u_c (lse - z_c) is the row's loss.
      std::vector<double> u((size_t)C, 0.0);
      if (c.dense) {
        // F.cross_entropy with probabilities: -sum_c cw_c t'_c log_softmax(z)_c.
        for (int64_t j = 0; j < C; ++j) {
          const double t = (1.0 - eps) * t_at(i, j) + eps / (double)C;
          u[(size_t)j] = cw(j) * t;
          loss += u[(size_t)j] == 0.0 ? 0.0 : u[(size_t)j] * (lse - z[j]);
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
        for (int64_t j = 0; j < C; ++j) smooth += cw(j) * (lse - z[j]);
        auto term = [&](int64_t y) {
          return (1.0 - eps) * cw(y) * (lse - z[y]) + (eps != 0.0 ? eps / (double)C * smooth : 0.0);
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
        dgrad[(size_t)(i * C + j)] = U * std::exp(z[j] - lse) - u[(size_t)j];
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
        const double zj = z[j];
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

inline Ref reference(const Case &c, const Inputs &in) {
  return reference(c, in, decode_rows(c, in));
}

inline double grad_tol(fastmix_dtype d, double ref, double k, double w) {
  // w == 0: an ignored row, where k is infinite when MEAN has no weight.
  const double t = 2e-5 * std::fabs(ref) + (w == 0.0 ? 0.0 : 1e-6 * std::fabs(k) * w);
  return d == FASTMIX_FLOAT32 ? t : t + dtype_ulp(d, ref);
}

// ---- running the library ----------------------------------------------------------
struct Out {
  fastmix_device dev = FASTMIX_DEVICE_CPU;
  fastmix_status status = FASTMIX_ERROR_INTERNAL;
  std::vector<float> loss;          // max(batch, 1) + 2 floats, poisoned before
  std::vector<unsigned char> grad;  // like the logits buffer, poisoned before (in place: it)
  bool inputs_intact = true;        // every input buffer (the logits out of place)
};

inline fastmix_loss_config make_config(const Case &c, const float *cw, const float *pw,
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

// One call of the case's entry point on `dev` with copies of the inputs in
// buffers of that device (logits and gradient 256-byte aligned plus the
// case's offsets; outputs poisoned).  inplace: grad_logits == logits.
// fastmix_loss gets a workspace of the size fastmix_loss_workspace_size gives
// (none on the CPU); fastmix_cross_entropy_ws one of the size
// fastmix_cross_entropy_workspace_size gives, poisoned (the CPU asks for
// none, and the one it is given must be ignored).
inline Out run(fastmix_device dev, const Case &c, const Inputs &in, bool inplace = false) {
  Out o;
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
  const float *lam = c.mix ? lambdas.as<float>() : nullptr;
  const int64_t *par = c.mix ? partners.as<int64_t>() : nullptr;
  if (c.entry == Entry::loss) {
    const fastmix_loss_config cfg =
        make_config(c, cw.as<float>(), pw.as<float>(),
                    targets.data() + (size_t)c.toffset * dtype_size(c.tdtype));
    size_t bytes = 1;
    REQUIRE(fastmix_loss_workspace_size(dev, c.batch, &cfg, &bytes) == FASTMIX_SUCCESS);
    if (dev == FASTMIX_DEVICE_CPU) REQUIRE(bytes == 0);
    Buffer ws(dev, bytes ? bytes : 8);
    o.status = fastmix_loss(dev, c.dtype, z, c.batch, c.classes, c.stride,
                            c.dense ? nullptr : labels.as<int64_t>(), lam, par, &cfg,
                            loss.as<float>(), g, bytes ? ws.data() : nullptr, bytes, nullptr);
    finish(dev);  // before ws goes
  } else {
    // The thin forms take labels, the cross-entropy and no weights.
    REQUIRE((c.kind == CE && !c.dense && !c.weights && !c.pos && c.threshold < 0.0f));
    if (c.entry == Entry::cross_entropy_ws) {
      size_t bytes = 1;
      REQUIRE(fastmix_cross_entropy_workspace_size(dev, c.batch, c.red, &bytes) == FASTMIX_SUCCESS);
      if (dev == FASTMIX_DEVICE_CPU) REQUIRE(bytes == 0);
      const size_t ws_bytes = bytes ? bytes : 32;
      Buffer ws(dev, ws_bytes);
      o.status = fastmix_cross_entropy_ws(
          dev, c.dtype, z, c.batch, c.classes, c.stride, labels.as<int64_t>(), lam, par, c.red,
          c.eps, c.ignore, loss.as<float>(), g, c.grad_scale, ws.data(), ws_bytes, nullptr);
      finish(dev);  // before ws goes
    } else {
      o.status = fastmix_cross_entropy(dev, c.dtype, z, c.batch, c.classes, c.stride,
                                       labels.as<int64_t>(), lam, par, c.red, c.eps, c.ignore,
                                       loss.as<float>(), g, c.grad_scale, nullptr);
      finish(dev);
    }
  }
  o.loss = loss.copy_as<float>();
  o.grad = inplace ? logits.copy() : grad.copy();
  auto same = [](const Buffer &b, const void *host, size_t n) {
    if (n == 0) return true;  // an empty input: its data() may be NULL
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

// Checks the outputs of a successful call against the reference: the loss
// words past the written ones still poisoned, and every gradient element
// outside the rows untouched (poisoned, or in place the input).
inline void check(const Case &c, const Inputs &in, const Out &o, const Ref &r,
                  bool inplace = false) {
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
  CHECK(all_poison(o.loss.data() + written, (o.loss.size() - written) * sizeof(float)));
  const size_t es = dtype_size(c.dtype);
  int bad = 0;
  for (size_t e = 0; e < o.grad.size() / es; ++e) {
    const int64_t rel = (int64_t)e - c.offset;
    const bool in_row = rel >= 0 && rel / c.stride < c.batch && rel % c.stride < c.classes;
    if (!c.grad || !in_row) {
      const bool untouched =
          inplace ? std::memcmp(o.grad.data() + e * es, in.logits.data() + e * es, es) == 0
                  : all_poison(o.grad.data() + e * es, es);
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
  const Ref r = reference(c, in);
  Out o = run(dev, c, in, inplace);
  check(c, in, o, r, inplace);
  return o;
}

// The library's analytic gradient in `o` against a central difference, step
// h, of the float64 reference loss (so the reference's gradient formula is
// checked too), each logit moved in turn: within rel * |fd| + abs_k * |k|.
// The rows must be packed (stride == classes, no offset).
inline void check_finite_difference(const Case &c, const Inputs &in, const Out &o, double h,
                                    double rel, double abs_k) {
  REQUIRE(o.status == FASTMIX_SUCCESS);
  REQUIRE((c.stride == c.classes && c.offset == 0));
  std::vector<double> z = decode_rows(c, in);
  const double k = reference(c, in, z).k;
  auto total = [&] {
    const Ref r = reference(c, in, z);
    const double l = c.red == FASTMIX_REDUCTION_NONE
                         ? std::accumulate(r.row_loss.begin(), r.row_loss.end(), 0.0)
                         : r.reduced;
    return (double)c.grad_scale * l;
  };
  for (size_t e = 0; e < z.size(); ++e) {
    const double z0 = z[e];
    z[e] = z0 + h;
    const double up = total();
    z[e] = z0 - h;
    const double down = total();
    z[e] = z0;
    const double fd = (up - down) / (2 * h);
    const double got = decode(c.dtype, o.grad.data(), (int64_t)e);
    CAPTURE(device_name(o.dev), describe(c), e, got, fd);
    CHECK(close(got, fd, rel * std::fabs(fd) + abs_k * std::fabs(k)));
  }
}

// Two calls with the same inputs, the first checked against the reference,
// must give bitwise the same loss and gradient; returns the first.
inline Out check_deterministic(fastmix_device dev, const Case &c, const Inputs &in) {
  Out a = run_and_check(dev, c, in);
  const Out b = run(dev, c, in);
  REQUIRE(b.status == FASTMIX_SUCCESS);
  CHECK(same_bits(a.loss, b.loss));
  CHECK(a.grad == b.grad);
  return a;
}

// The batch-0 contract: only a reduced loss is written (NaN for MEAN, 0 for
// SUM), nothing of the gradient, and no input changes.
inline void check_batch0(const Out &o, fastmix_reduction red) {
  REQUIRE(o.status == FASTMIX_SUCCESS);
  CHECK(o.inputs_intact);
  if (red == FASTMIX_REDUCTION_MEAN) CHECK(std::isnan(o.loss[0]));
  if (red == FASTMIX_REDUCTION_SUM) CHECK(o.loss[0] == 0.0f);
  const size_t written = red == FASTMIX_REDUCTION_NONE ? 0 : 1;
  CHECK(all_poison(o.loss.data() + written, (o.loss.size() - written) * sizeof(float)));
  CHECK(all_poison(o.grad.data(), o.grad.size()));
}

}  // namespace loss_test
