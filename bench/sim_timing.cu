// fastmix-sim-timing: one CUDA op of the C ABI, or one copy kernel, per
// process, for bench/sim_timing.sh, which runs it on GPGPU-Sim's cycle model
// and turns the simulator's per-kernel statistics into a table of cycles,
// DRAM bytes and the fraction of a copy's rate.
//
//   fastmix-sim-timing --list            every case: NAME DTYPE SHAPE READ WRITE
//   fastmix-sim-timing CASE              runs the case on the device
//   fastmix-sim-timing copy BYTES [K]    a float4 copy of BYTES (read BYTES, write BYTES),
//                                        K blocks of 256 per SM (default kCopyBlocksPerSm)
//
// READ and WRITE are the case's floor: the bytes the op must read from and
// write to memory at the least (every input element it depends on once, every
// output element it changes once, and the small per-sample arrays).  The copy
// that measures the yardstick for a case moves the same total, (READ + WRITE)
// / 2 each way; --list runs on the host only (the CPU backend gives CutMix's
// boxes, which decide its floor), so the script can plan the copies first.
//
// Every input is made on the host and uploaded with cudaMemcpy, which the
// model does not time (-gpgpu_perf_sim_memcpy 0), so the only kernels of a
// process are the op's (or the copy's) and the counters the simulator prints
// after the last of them are the op's own.  The op's kernels are announced by
//   @@fastmix-timing begin CASE
// and followed, once the device is idle, by "@@fastmix-timing end".
#include <fastmix/fastmix.h>

#include "bench_util.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

const char *const bench::kProgram = "fastmix-sim-timing";

namespace {

using bench::check;
using bench::check_cuda;
using bench::die;
using bench::device_alloc;
using bench::dname;
using bench::dsize;
using bench::upload;
using bench::values;

// The yardstick: a grid-stride copy of 16-byte vectors, as simple as a copy
// can be, launched with kCopyBlocksPerSm blocks of 256 threads per SM (the
// grid, not the registers, sets how many are resident).  2 is the fastest
// copy the model gives: 12.6 MB each way took 423,888 / 414,506 / 415,841 /
// 431,595 / 582,660 / 643,134 cycles at 1 / 2 / 3 / 4 / 6 / 8 blocks per SM
// (more streams in flight cost its DRAM scheduler row locality), so the
// yardstick is the best copy over occupancies, not one chosen by ptxas.
constexpr int kCopyBlocksPerSm = 2;

__global__ void __launch_bounds__(256) copy_kernel(const float4 *__restrict__ src,
                                                   float4 *__restrict__ dst, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = src[i];
}

// The naive blend fastmix's kernels are measured against: one float4 of the
// sample and the partner's at the same column per thread, in a grid-stride
// loop over the whole batch (the sample stride a multiple of 4 floats).
__global__ void __launch_bounds__(256)
    naive_blend_kernel(const float4 *__restrict__ x, float4 *__restrict__ out,
                       const float *__restrict__ lam, const int64_t *__restrict__ part,
                       int64_t vecs_per_sample, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t s = i / vecs_per_sample, col = i - s * vecs_per_sample;
    const float l = lam[s], m = 1.0f - l;
    const float4 a = x[i], b = x[part[s] * vecs_per_sample + col];
    out[i] = make_float4(l * a.x + m * b.x, l * a.y + m * b.y, l * a.z + m * b.z,
                         l * a.w + m * b.w);
  }
}

int sm_count() {
  int sms = 0;
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "SM count");
  return sms;
}

enum class Op {
  kBlend, kBlendInPlace, kMixup, kMixupInPlace, kMixupDeviceSeed, kNaiveBlend, kCutmix,
  kCutmixInPlace,
  kSample, kU8, kLoss, kBinary, kSoftTargets
};

struct Case {
  const char *name;
  Op op;
  fastmix_dtype dtype;
  int64_t n, c, h, w;  // images: batch, channels, height, width; logits: rows = n, classes = c
};

// 64x3x128x128 float32 images are 12.6 MB, and 16x3x227x227 (a sample
// stride of 154,587 elements, no multiple of 16 bytes) 9.9 MB: the batch read
// and written is 8x and 6.6x the model's 3 MB of L2.  The uint8 cases take 96
// images so that even the bfloat16 output keeps bytes moved over 4x the L2.
const Case kCases[] = {
    {"blend", Op::kBlend, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"blend-odd", Op::kBlend, FASTMIX_FLOAT32, 16, 3, 227, 227},
    {"naive-blend", Op::kNaiveBlend, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"blend-inplace", Op::kBlendInPlace, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"blend-inplace-odd", Op::kBlendInPlace, FASTMIX_FLOAT32, 16, 3, 227, 227},
    {"mixup", Op::kMixup, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"mixup-inplace", Op::kMixupInPlace, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"mixup-device-seed", Op::kMixupDeviceSeed, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"blend-bf16", Op::kBlend, FASTMIX_BFLOAT16, 128, 3, 128, 128},
    {"cutmix", Op::kCutmix, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"cutmix-inplace", Op::kCutmixInPlace, FASTMIX_FLOAT32, 64, 3, 128, 128},
    {"cutmix-odd", Op::kCutmix, FASTMIX_FLOAT32, 16, 3, 227, 227},
    {"cutmix-inplace-odd", Op::kCutmixInPlace, FASTMIX_FLOAT32, 16, 3, 227, 227},
    {"sample-64", Op::kSample, FASTMIX_FLOAT32, 64, 1, 1, 1},
    {"sample-1024", Op::kSample, FASTMIX_FLOAT32, 1024, 1, 1, 1},
    {"u8-f32", Op::kU8, FASTMIX_FLOAT32, 96, 3, 128, 128},
    {"u8-bf16", Op::kU8, FASTMIX_BFLOAT16, 96, 3, 128, 128},
    {"loss-21k", Op::kLoss, FASTMIX_FLOAT32, 128, 21841, 1, 1},
    {"loss-21k-bf16", Op::kLoss, FASTMIX_BFLOAT16, 128, 21841, 1, 1},
    {"loss-32k", Op::kLoss, FASTMIX_FLOAT32, 64, 32000, 1, 1},
    {"loss-32k-bf16", Op::kLoss, FASTMIX_BFLOAT16, 64, 32000, 1, 1},
    {"loss-1k", Op::kLoss, FASTMIX_FLOAT32, 4096, 1000, 1, 1},
    {"loss-1k-bf16", Op::kLoss, FASTMIX_BFLOAT16, 4096, 1000, 1, 1},
    {"bce-1k", Op::kBinary, FASTMIX_FLOAT32, 4096, 1000, 1, 1},
    {"soft-targets-1k", Op::kSoftTargets, FASTMIX_FLOAT32, 4096, 1000, 1, 1},
};

bool is_image(Op op) {
  return op != Op::kSample && op != Op::kLoss && op != Op::kBinary && op != Op::kSoftTargets;
}

const fastmix_pairing kPerm = FASTMIX_PAIRING_PERMUTATION;
const float kAlpha = 0.4f;
const uint64_t kSeed = 9, kOffset = 0;

struct Draw {
  std::vector<float> lam;
  std::vector<int64_t> part;
  std::vector<int32_t> box;  // [n][4]: y0, x0, y1, x1; CutMix cases only
};

// The draw of the case, on the CPU backend: bitwise the CUDA draw for the
// same seed and offset.
Draw host_draw(const Case &k) {
  Draw d;
  d.lam.resize((size_t)k.n);
  d.part.resize((size_t)k.n);
  if (k.op == Op::kCutmix || k.op == Op::kCutmixInPlace || k.op == Op::kU8) {
    const fastmix_mix_config m = bench::timm_mix_config();
    d.box.resize(4 * (size_t)k.n);
    check(fastmix_cutmix_sample(FASTMIX_DEVICE_CPU, &m, kSeed, kOffset, k.n, k.h, k.w,
                                d.lam.data(), d.part.data(), d.box.data(), nullptr),
          "fastmix_cutmix_sample");
  } else {
    check(fastmix_sample(FASTMIX_DEVICE_CPU, kAlpha, 1, kPerm, kSeed, kOffset, k.n, d.lam.data(),
                         d.part.data(), nullptr),
          "fastmix_sample");
  }
  return d;
}

int64_t stride_of(const Case &k) { return k.c * k.h * k.w; }

// The floor of a case in bytes read and written.  An image op reads every
// input element that some changed output element depends on, once, and
// writes every output element it changes (out of place: all of them); the
// per-sample lambdas (4 B), partners (8 B) and boxes (16 B) are counted as
// the op reads or writes them.
void floor_bytes(const Case &k, int64_t *read, int64_t *write) {
  const int64_t n = k.n, es = (int64_t)dsize(k.dtype);
  if (k.op == Op::kSample) {
    *read = 0;
    *write = 12 * n;
    return;
  }
  if (!is_image(k.op)) {
    const int64_t logits = n * k.c * es;
    // Labels, lambdas and partners in; the loss (or a partial per row) out.
    if (k.op == Op::kSoftTargets) {
      *read = 20 * n;
      *write = logits;
    } else {
      *read = logits + 20 * n;
      *write = logits + 4 * n;
    }
    return;
  }
  const Draw d = host_draw(k);
  const bool fused = k.op == Op::kMixup || k.op == Op::kMixupInPlace ||
                     k.op == Op::kMixupDeviceSeed || k.op == Op::kCutmix ||
                     k.op == Op::kCutmixInPlace || k.op == Op::kU8;
  const bool in_place = k.op == Op::kBlendInPlace || k.op == Op::kMixupInPlace ||
                        k.op == Op::kCutmixInPlace;
  const int64_t per = (int64_t)(d.box.empty() ? 12 : 28) * n;  // per-sample arrays
  const int64_t hw = k.h * k.w, elems = k.c * hw;
  std::vector<unsigned char> need((size_t)(n * elems), 0);  // input element read
  int64_t written = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = d.part[(size_t)i];
    const int32_t *b = d.box.empty() ? nullptr : &d.box[4 * (size_t)i];
    const bool cut = b && b[0] >= 0;
    if (!cut && (p == i || d.lam[(size_t)i] == 1.0f)) {  // unchanged
      if (!in_place) {
        std::memset(&need[(size_t)(i * elems)], 1, (size_t)elems);
        written += elems;
      }
      continue;
    }
    if (!cut) {  // a blend reads both samples whole and writes every element
      std::memset(&need[(size_t)(i * elems)], 1, (size_t)elems);
      std::memset(&need[(size_t)(p * elems)], 1, (size_t)elems);
      written += elems;
      continue;
    }
    // CutMix: the partner's box; out of place also the sample outside it.
    const int64_t area = (int64_t)(b[2] - b[0]) * (b[3] - b[1]);
    for (int64_t ch = 0; ch < k.c; ++ch)
      for (int64_t y = 0; y < k.h; ++y)
        for (int64_t x = 0; x < k.w; ++x) {
          const bool inside = y >= b[0] && y < b[2] && x >= b[1] && x < b[3];
          if (inside) need[(size_t)(p * elems + ch * hw + y * k.w + x)] = 1;
          else if (!in_place) need[(size_t)(i * elems + ch * hw + y * k.w + x)] = 1;
        }
    written += in_place ? k.c * area : elems;
  }
  int64_t needed = 0;
  for (unsigned char v : need) needed += v;
  const int64_t in_es = k.op == Op::kU8 ? 1 : es;
  *read = needed * in_es + (fused ? 0 : per);
  *write = written * es + (fused ? per : 0);
}

const Case *find_case(const std::string &name) {
  for (const Case &k : kCases)
    if (name == k.name) return &k;
  return nullptr;
}

void begin(const char *what) {
  check_cuda(cudaDeviceSynchronize(), "setup");
  std::printf("@@fastmix-timing begin %s\n", what);
  std::fflush(stdout);
}

void end() {
  check_cuda(cudaDeviceSynchronize(), "the timed call");
  std::printf("@@fastmix-timing end\n");
  std::fflush(stdout);
}

void run_copy(int64_t bytes, int blocks_per_sm) {
  const int64_t vecs = (bytes + 15) / 16;
  std::vector<float> host((size_t)(4 * vecs), 1.0f);
  float4 *src = reinterpret_cast<float4 *>(upload(host));
  float4 *dst = static_cast<float4 *>(device_alloc(16 * (size_t)vecs));
  begin("copy");
  copy_kernel<<<blocks_per_sm * sm_count(), 256>>>(src, dst, vecs);
  check_cuda(cudaGetLastError(), "copy launch");
  end();
  std::vector<float> back((size_t)(4 * vecs));
  check_cuda(cudaMemcpy(back.data(), dst, back.size() * 4, cudaMemcpyDeviceToHost), "download");
  if (back != host) die("copy", "the copy's output differs from its input");
}

void run_case(const Case &k) {
  const fastmix_device dev = FASTMIX_DEVICE_CUDA;
  const int64_t n = k.n, es = (int64_t)dsize(k.dtype);
  const Draw d = host_draw(k);
  float *lam = upload(d.lam);
  int64_t *part = upload(d.part);
  int32_t *box = static_cast<int32_t *>(device_alloc(16 * (size_t)n));
  const fastmix_mix_config cm = bench::timm_mix_config();
  if (k.op == Op::kSample) {
    begin(k.name);
    check(fastmix_sample(dev, kAlpha, 1, kPerm, kSeed, kOffset, n, lam, part, nullptr),
          "fastmix_sample");
    end();
    return;
  }
  if (!is_image(k.op)) {
    const int64_t rows = n, classes = k.c;
    std::vector<int64_t> labels((size_t)rows);
    for (int64_t i = 0; i < rows; ++i) labels[(size_t)i] = (i * 7919) % classes;
    int64_t *y = upload(labels);
    void *z = upload(values(k.dtype, (size_t)(rows * classes), -4.0f, 4.0f, 11));
    void *grad = device_alloc((size_t)(rows * classes * es));
    float *loss = static_cast<float *>(device_alloc(4 * (size_t)rows));
    fastmix_loss_config lc;
    fastmix_loss_config_init(&lc);
    lc.label_smoothing = 0.1f;
    if (k.op == Op::kBinary) lc.kind = FASTMIX_LOSS_BINARY_CROSS_ENTROPY;
    size_t ws_bytes = 0;
    check(fastmix_loss_workspace_size(dev, rows, &lc, &ws_bytes), "workspace size");
    void *ws = device_alloc(ws_bytes);
    begin(k.name);
    if (k.op == Op::kSoftTargets)
      check(fastmix_soft_targets(dev, k.dtype, y, lam, part, rows, classes, 0.1f, grad, classes,
                                 nullptr),
            "fastmix_soft_targets");
    else
      check(fastmix_loss(dev, k.dtype, z, rows, classes, classes, y, lam, part, &lc, loss, grad,
                         ws, ws_bytes, nullptr),
            "fastmix_loss");
    end();
    return;
  }
  const int64_t stride = stride_of(k), total = n * stride;
  if (k.op == Op::kU8) {
    std::vector<uint8_t> bytes((size_t)total);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = (uint8_t)(i * 2654435761u >> 24);
    uint8_t *x = upload(bytes);
    void *out = device_alloc((size_t)(total * es));
    const std::vector<float> mean((size_t)k.c, 0.45f), stdv((size_t)k.c, 0.225f);
    begin(k.name);
    check(fastmix_cutmix_u8(dev, &cm, kSeed, kOffset, FASTMIX_LAYOUT_NHWC, x, n, k.c, k.h, k.w,
                            stride, mean.data(), stdv.data(), k.dtype, FASTMIX_LAYOUT_NCHW, out,
                            stride, lam, part, box, nullptr),
          "fastmix_cutmix_u8");
    end();
    return;
  }
  void *x = upload(values(k.dtype, (size_t)total, -1.0f, 1.0f, 7));
  const bool in_place = k.op == Op::kBlendInPlace || k.op == Op::kMixupInPlace ||
                        k.op == Op::kCutmixInPlace;
  void *out = in_place ? x : device_alloc((size_t)(total * es));
  uint64_t *seed_offset = upload(std::vector<uint64_t>{kSeed, kOffset});
  begin(k.name);
  switch (k.op) {
    case Op::kBlend:
    case Op::kBlendInPlace:
      check(fastmix_blend(dev, k.dtype, x, out, n, stride, stride, lam, part, nullptr),
            "fastmix_blend");
      break;
    case Op::kMixup:
    case Op::kMixupInPlace:
      check(fastmix_mixup(dev, k.dtype, kAlpha, 1, kPerm, kSeed, kOffset, x, out, n, stride,
                          stride, lam, part, nullptr),
            "fastmix_mixup");
      break;
    case Op::kMixupDeviceSeed:  // seed and offset read on the device, offset advanced by 1
      check(fastmix_mixup_device_seed(dev, k.dtype, kAlpha, 1, kPerm, seed_offset, 1, x, out, n,
                                      stride, stride, lam, part, nullptr),
            "fastmix_mixup_device_seed");
      break;
    case Op::kCutmix:
    case Op::kCutmixInPlace:
      check(fastmix_cutmix(dev, k.dtype, &cm, kSeed, kOffset, FASTMIX_LAYOUT_NCHW, x, out, n, k.c,
                           k.h, k.w, stride, lam, part, box, nullptr),
            "fastmix_cutmix");
      break;
    case Op::kNaiveBlend: {
      if (k.dtype != FASTMIX_FLOAT32 || stride % 4) die(k.name, "the naive blend takes float32 rows of whole float4s");
      naive_blend_kernel<<<8 * sm_count(), 256>>>(static_cast<const float4 *>(x),
                                                   static_cast<float4 *>(out), lam, part,
                                                   stride / 4, total / 4);
      check_cuda(cudaGetLastError(), "naive blend launch");
      break;
    }
    default:
      die(k.name, "not an image op");
  }
  end();
}

}  // namespace

int main(int argc, char **argv) {
  const std::string a = argc > 1 ? argv[1] : "";
  if (a == "--list") {
    for (const Case &k : kCases) {
      int64_t r = 0, w = 0;
      floor_bytes(k, &r, &w);
      const std::string shape =
          k.op == Op::kSample ? std::to_string(k.n)
          : is_image(k.op)
              ? std::to_string(k.n) + "x" + std::to_string(k.c) + "x" + std::to_string(k.h) + "x" +
                    std::to_string(k.w)
              : std::to_string(k.n) + "x" + std::to_string(k.c);
      std::printf("%s %s %s %lld %lld\n", k.name, k.op == Op::kSample ? "-" : dname(k.dtype),
                  shape.c_str(), (long long)r, (long long)w);
    }
    return 0;
  }
  if (a == "copy" && (argc == 3 || argc == 4)) {
    char *e = nullptr;
    const long long bytes = std::strtoll(argv[2], &e, 10);
    if (!e || *e || bytes <= 0) die("copy", "BYTES must be a positive integer");
    long long per_sm = kCopyBlocksPerSm;
    if (argc == 4) {
      per_sm = std::strtoll(argv[3], &e, 10);
      if (!e || *e || per_sm < 1 || per_sm > 8) die("copy", "BLOCKS_PER_SM must be 1 to 8");
    }
    if (fastmix_cuda_device_count() == 0) die("CUDA", "no device (run it on the simulator)");
    run_copy(bytes, (int)per_sm);
    return 0;
  }
  const Case *k = argc == 2 ? find_case(a) : nullptr;
  if (!k) {
    std::fprintf(stderr,
                 "usage: fastmix-sim-timing --list | CASE | copy BYTES (CASE from --list)\n");
    return 2;
  }
  if (fastmix_cuda_device_count() == 0) die("CUDA", "no device (run it on the simulator)");
  run_case(*k);
  return 0;
}
