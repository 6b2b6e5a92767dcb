// fastmix-sim-profile: every CUDA op of the public C API once, for each
// storage type, on device buffers, for bench/sim_profile.sh, which runs this
// program on GPGPU-Sim and turns the simulator's instruction counts into
// thread-instructions per element.
//
//   fastmix-sim-profile [--images N C H W] [--logits N C] [--samples N] [--only OP]
//
// Before each call it prints one line
//   @@fastmix-profile OP DTYPE ELEMENTS
// (ELEMENTS: image elements for blend, mixup and cutmix, logits for the loss, target
// elements for the soft targets, samples for sample) and after it, once the
// device is idle, "@@fastmix-profile end"; the kernels the simulator reports
// in between belong to that call.  Setup work (uploads, the lambdas and
// partners the blends read) is announced as OP "setup".  Each call is
// followed by cudaDeviceSynchronize so that its kernels finish before the
// next line; the simulator prints to the same stdout, so the order holds.
#include <fastmix/fastmix.h>

#include "bench_util.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

const char *const bench::kProgram = "fastmix-sim-profile";

namespace {

using bench::check;
using bench::check_cuda;
using bench::device_alloc;
using bench::die;
using bench::dname;
using bench::dsize;
using bench::upload;
using bench::values;

// --only PREFIX: run only the ops whose name starts with PREFIX.
std::string g_only;
bool wanted(const char *op) { return std::string(op).rfind(g_only, 0) == 0; }

void begin(const char *op, fastmix_dtype d, int64_t elements) {
  std::printf("@@fastmix-profile %s %s %lld\n", op, dname(d), (long long)elements);
  std::fflush(stdout);
}

void end(const char *what) {
  check_cuda(cudaDeviceSynchronize(), what);
  std::printf("@@fastmix-profile end\n");
  std::fflush(stdout);
}

// The profiled call `op` (when --only wants it): announced, run, finished.
template <class F>
void profile(const char *op, fastmix_dtype d, int64_t elements, const F &call) {
  if (!wanted(op)) return;
  begin(op, d, elements);
  call();
  end(op);
}

int64_t parse(const char *s) {
  char *e = nullptr;
  const long long v = std::strtoll(s, &e, 10);
  if (!e || *e || v <= 0) die("not a positive integer", s);
  return (int64_t)v;
}

}  // namespace

int main(int argc, char **argv) {
  // The smallest sizes at which the per-element figures have converged (each
  // thread of every launch handles many elements, and the fixed cost per
  // block is under 2% of the figure), to keep the simulated run to minutes:
  // 64x3x128x128 images (at 16x3x128x128 the out-of-place figures were
  // 6% higher, 2026-12-02); 8x32000 logits (the loss kernel's figure is the same at
  // 32x32000: one block per row, so its cost is per row); 65536 samples.
  int64_t n = 64, c = 3, h = 128, w = 128, rows = 8, classes = 32000, samples = 1 << 16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&](int k) {
      if (i + k >= argc) die("missing values for", a.c_str());
    };
    if (a == "--images") {
      need(4);
      n = parse(argv[i + 1]), c = parse(argv[i + 2]), h = parse(argv[i + 3]),
      w = parse(argv[i + 4]);
      i += 4;
    } else if (a == "--logits") {
      need(2);
      rows = parse(argv[i + 1]), classes = parse(argv[i + 2]);
      i += 2;
    } else if (a == "--only") {
      need(1);
      g_only = argv[++i];
    } else if (a == "--samples") {
      need(1);
      samples = parse(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: fastmix-sim-profile [--images N C H W] [--logits N C] [--samples N] "
          "[--only OP]\n");
      return 0;
    } else {
      die("unknown argument", a.c_str());
    }
  }
  if (fastmix_cuda_device_count() == 0) die("CUDA", "no device (run it on the simulator)");
  const fastmix_device dev = FASTMIX_DEVICE_CUDA;
  const fastmix_pairing perm = FASTMIX_PAIRING_PERMUTATION;
  const float alpha = 0.4f;
  const int64_t elems = c * h * w, total = n * elems, logits = rows * classes;
  std::printf("@@fastmix-profile shape images %lldx%lldx%lldx%lld logits %lldx%lld samples %lld\n",
              (long long)n, (long long)c, (long long)h, (long long)w, (long long)rows,
              (long long)classes, (long long)samples);

  // Lambdas and partners of the images and of the logit rows.
  begin("setup", FASTMIX_FLOAT32, 0);
  float *lam = static_cast<float *>(device_alloc(4 * (size_t)n));
  int64_t *part = static_cast<int64_t *>(device_alloc(8 * (size_t)n));
  float *lam_draw = static_cast<float *>(device_alloc(4 * (size_t)n));
  int64_t *part_draw = static_cast<int64_t *>(device_alloc(8 * (size_t)n));
  int32_t *boxes = static_cast<int32_t *>(device_alloc(16 * (size_t)n));
  check(fastmix_sample(dev, alpha, 1, perm, 3, 0, n, lam, part, nullptr), "fastmix_sample");
  float *row_lam = static_cast<float *>(device_alloc(4 * (size_t)rows));
  int64_t *row_part = static_cast<int64_t *>(device_alloc(8 * (size_t)rows));
  check(fastmix_sample(dev, alpha, 1, perm, 5, 0, rows, row_lam, row_part, nullptr),
        "fastmix_sample");
  std::vector<int64_t> host_labels((size_t)rows);
  for (int64_t i = 0; i < rows; ++i) host_labels[(size_t)i] = (i * 7919) % classes;
  int64_t *labels = static_cast<int64_t *>(device_alloc(8 * (size_t)rows));
  check_cuda(cudaMemcpy(labels, host_labels.data(), 8 * (size_t)rows, cudaMemcpyHostToDevice),
             "upload");
  float *loss = static_cast<float *>(device_alloc(4 * (size_t)rows));
  size_t ws_bytes = 0;
  check(fastmix_cross_entropy_workspace_size(dev, rows, FASTMIX_REDUCTION_MEAN, &ws_bytes),
        "workspace size");
  void *ws = device_alloc(ws_bytes);
  std::vector<float> host_weight((size_t)classes);
  for (int64_t k = 0; k < classes; ++k) host_weight[(size_t)k] = 0.5f + (float)(k % 7) / 7.0f;
  float *class_weight = static_cast<float *>(device_alloc(4 * (size_t)classes));
  check_cuda(
      cudaMemcpy(class_weight, host_weight.data(), 4 * (size_t)classes, cudaMemcpyHostToDevice),
      "upload");
  end("setup");

  profile("sample", FASTMIX_FLOAT32, samples, [&] {
    float *l = static_cast<float *>(device_alloc(4 * (size_t)samples));
    int64_t *p = static_cast<int64_t *>(device_alloc(8 * (size_t)samples));
    check(fastmix_sample(dev, alpha, 1, perm, 7, 0, samples, l, p, nullptr), "fastmix_sample");
    cudaFree(l);  // waits for the draw, then frees
    cudaFree(p);
  });

  for (fastmix_dtype d : {FASTMIX_FLOAT32, FASTMIX_FLOAT16, FASTMIX_BFLOAT16}) {
    begin("setup", d, 0);
    const auto xs = values(d, (size_t)total, -1.0f, 1.0f, 7);
    void *x = upload(xs), *y = upload(xs);
    void *out = device_alloc((size_t)total * dsize(d));
    void *z = upload(values(d, (size_t)logits, -4.0f, 4.0f, 11));
    void *grad = device_alloc((size_t)logits * dsize(d));
    void *targets = device_alloc((size_t)logits * dsize(d));
    end("setup");

    profile("blend", d, total, [&] {
      check(fastmix_blend(dev, d, x, out, n, elems, elems, lam, part, nullptr), "fastmix_blend");
    });
    profile("blend-inplace", d, total, [&] {
      check(fastmix_blend(dev, d, y, y, n, elems, elems, lam, part, nullptr), "fastmix_blend");
    });
    if (wanted("blend-odd-stride") || wanted("blend-odd-stride-scalar") ||
        wanted("mixup-odd-stride") || wanted("blend-inplace-odd-stride") ||
        wanted("mixup-inplace-odd-stride")) {
      // A sample stride that is no multiple of 16 bytes (elems itself when odd,
      // as for 3x227x227, else elems + 1), so the partners sit at other offsets
      // from 16-byte alignment than their samples: with x and out aligned alike
      // the vector kernel realigns them; with out one element further than x
      // the scalar kernel runs, as it did for every such stride before.
      const int64_t stride = elems | 1, span = (n - 1) * stride + elems;
      const size_t es = dsize(d);
      void *xo = upload(values(d, (size_t)span + 8, -1.0f, 1.0f, 13));
      unsigned char *oo = static_cast<unsigned char *>(device_alloc(((size_t)span + 8) * es));
      profile("blend-odd-stride", d, total, [&] {
        check(fastmix_blend(dev, d, xo, oo, n, elems, stride, lam, part, nullptr), "fastmix_blend");
      });
      profile("blend-odd-stride-scalar", d, total, [&] {
        check(fastmix_blend(dev, d, xo, oo + es, n, elems, stride, lam, part, nullptr),
              "fastmix_blend");
      });
      profile("mixup-odd-stride", d, total, [&] {
        check(fastmix_mixup(dev, d, alpha, 1, perm, 9, 2, xo, oo, n, elems, stride, lam_draw,
                            part_draw, nullptr),
              "fastmix_mixup");
      });
      profile("blend-inplace-odd-stride", d, total, [&] {
        check(fastmix_blend(dev, d, xo, xo, n, elems, stride, lam, part, nullptr), "fastmix_blend");
      });
      profile("mixup-inplace-odd-stride", d, total, [&] {
        check(fastmix_mixup(dev, d, alpha, 1, perm, 9, 3, xo, xo, n, elems, stride, lam_draw,
                            part_draw, nullptr),
              "fastmix_mixup");
      });
      cudaFree(xo);
      cudaFree(oo);
    }
    profile("mixup", d, total, [&] {
      check(fastmix_mixup(dev, d, alpha, 1, perm, 9, 0, x, out, n, elems, elems, lam_draw,
                          part_draw, nullptr),
            "fastmix_mixup");
    });
    profile("mixup-inplace", d, total, [&] {
      check(fastmix_mixup(dev, d, alpha, 1, perm, 9, 1, y, y, n, elems, elems, lam_draw, part_draw,
                          nullptr),
            "fastmix_mixup");
    });
    const fastmix_mix_config cut = bench::timm_mix_config();  // NCHW below
    profile("cutmix", d, total, [&] {
      check(fastmix_cutmix(dev, d, &cut, 9, 0, FASTMIX_LAYOUT_NCHW, x, out, n, c, h, w, elems,
                           lam_draw, part_draw, boxes, nullptr),
            "fastmix_cutmix");
    });
    profile("cutmix-inplace", d, total, [&] {
      check(fastmix_cutmix(dev, d, &cut, 9, 1, FASTMIX_LAYOUT_NCHW, y, y, n, c, h, w, elems,
                           lam_draw, part_draw, boxes, nullptr),
            "fastmix_cutmix");
    });
    if (wanted("input-u8")) {  // uint8 NHWC in, this dtype NCHW out, the same draw
      const std::vector<float> mean((size_t)c, 0.45f), stdv((size_t)c, 0.225f);
      std::vector<unsigned char> bytes((size_t)total);
      for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = (unsigned char)(k * 2654435761u >> 24);
      uint8_t *u8 = upload(bytes);
      profile("input-u8", d, total, [&] {
        check(fastmix_cutmix_u8(dev, &cut, 9, 2, FASTMIX_LAYOUT_NHWC, u8, n, c, h, w, elems,
                                mean.data(), stdv.data(), d, FASTMIX_LAYOUT_NCHW, out, elems,
                                lam_draw, part_draw, boxes, nullptr),
              "fastmix_cutmix_u8");
      });
      cudaFree(u8);
    }
    profile("loss-none", d, logits, [&] {
      check(fastmix_cross_entropy_ws(dev, d, z, rows, classes, classes, labels, row_lam, row_part,
                                     FASTMIX_REDUCTION_NONE, 0.1f, -100, loss, grad, 1.0f, nullptr,
                                     0, nullptr),
            "fastmix_cross_entropy_ws NONE");
    });
    profile("loss-mean-ws", d, logits, [&] {
      check(fastmix_cross_entropy_ws(dev, d, z, rows, classes, classes, labels, row_lam, row_part,
                                     FASTMIX_REDUCTION_MEAN, 0.1f, -100, loss, grad, 1.0f, ws,
                                     ws_bytes, nullptr),
            "fastmix_cross_entropy_ws MEAN");
    });
    // The general loss: plain labels without smoothing (the common case),
    // class weights with smoothing, probability targets, binary
    // cross-entropy on mixed labels; MEAN with a workspace.
    const auto smoothed = [] {
      fastmix_loss_config lc;
      fastmix_loss_config_init(&lc);
      lc.label_smoothing = 0.1f;
      return lc;
    };
    profile("loss-plain", d, logits, [&] {
      fastmix_loss_config lc;
      fastmix_loss_config_init(&lc);
      lc.reduction = FASTMIX_REDUCTION_NONE;
      check(fastmix_loss(dev, d, z, rows, classes, classes, labels, nullptr, nullptr, &lc, loss,
                         grad, nullptr, 0, nullptr),
            "fastmix_loss plain");
    });
    // fastmix_loss, MEAN with a workspace, on the mixed labels or, with
    // targets in the config, on those.
    const auto loss_mean = [&](const char *op, const fastmix_loss_config &lc) {
      const bool dense = lc.targets != nullptr;
      profile(op, d, logits, [&] {
        check(fastmix_loss(dev, d, z, rows, classes, classes, dense ? nullptr : labels,
                           dense ? nullptr : row_lam, dense ? nullptr : row_part, &lc, loss, grad,
                           ws, ws_bytes, nullptr),
              op);
      });
    };
    fastmix_loss_config weighted = smoothed();
    weighted.class_weight = class_weight;
    loss_mean("loss-weighted", weighted);
    if (wanted("loss-dense"))  // its targets: the mixed labels' soft targets
      check(fastmix_soft_targets(dev, d, labels, row_lam, row_part, rows, classes, 0.0f, targets,
                                 classes, nullptr),
            "fastmix_soft_targets");
    fastmix_loss_config dense = smoothed();
    dense.targets = targets;
    dense.targets_dtype = d;
    dense.targets_stride = classes;
    loss_mean("loss-dense", dense);
    fastmix_loss_config bce = smoothed();
    bce.kind = FASTMIX_LOSS_BINARY_CROSS_ENTROPY;
    loss_mean("bce", bce);
    profile("soft-targets", d, logits, [&] {
      check(fastmix_soft_targets(dev, d, labels, row_lam, row_part, rows, classes, 0.1f, targets,
                                 classes, nullptr),
            "fastmix_soft_targets");
    });
    for (void *p : {x, y, out, z, grad, targets}) cudaFree(p);
  }
  for (void *p :
       {(void *)lam, (void *)part, (void *)lam_draw, (void *)part_draw, (void *)boxes,
        (void *)row_lam, (void *)row_part, (void *)labels, (void *)loss, ws, (void *)class_weight})
    cudaFree(p);
  std::printf("@@fastmix-profile done\n");
  return 0;
}
