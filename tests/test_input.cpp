// The uint8 input path on every device: uint8 images in (NCHW or NHWC),
// mixed (mixup or CutMix) and normalized images out (float32, float16,
// bfloat16; NCHW or NHWC), against the header's float32 formula evaluated
// here (bitwise) and the exact value in float64 (within rounding), and on
// CUDA against the CPU backend (bitwise); odd sizes (widths 1 to 227,
// channels 1 to 64, images of several of the CUDA kernel's tiles), strides
// with gaps, x and out off 16-byte alignment, outputs poisoned and the
// elements between images checked untouched; CutMix boxes at the edges and
// corners; on CUDA a bad partner or box NaN in its own sample only; the
// fused forms bitwise the draw + apply; bad arguments refused by name with
// nothing written.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <array>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

struct U8Case {
  fastmix_dtype dtype;
  fastmix_layout in_layout, out_layout;
  int64_t n, c, h, w, x_gap, out_gap;
  int64_t out_mis;  // elements past a 256-byte boundary
  int64_t x_mis;    // bytes past a 256-byte boundary
};

// A draw as fastmix_cutmix_sample writes it (or a bad one): per sample a
// lambda, a partner and a box (-1, -1, -1, -1 for mixup).
struct U8Draw {
  std::vector<float> lam;
  std::vector<int64_t> par;
  std::vector<int32_t> box;
};

// Whether sample i's partner and box are within the contract (else CUDA
// writes NaN there and the CPU refuses the call).
bool draw_ok(const U8Draw &d, int64_t n, int64_t h, int64_t w, int64_t i) {
  const int32_t *b = &d.box[(size_t)i * 4];
  const int64_t p = d.par[(size_t)i];
  const bool blends = b[0] == -1 && b[1] == -1 && b[2] == -1 && b[3] == -1;
  return p >= 0 && p < n &&
         (blends ||
          (b[0] >= 0 && b[0] <= b[2] && b[2] <= h && b[1] >= 0 && b[1] <= b[3] && b[3] <= w));
}

std::string describe(fastmix_device dev, const U8Case &k) {
  std::ostringstream s;
  s << device_name(dev) << " " << dtype_name(k.dtype) << " "
    << (k.in_layout == FASTMIX_LAYOUT_NHWC ? "NHWC" : "NCHW") << " -> "
    << (k.out_layout == FASTMIX_LAYOUT_NHWC ? "NHWC" : "NCHW") << " " << k.n << "x" << k.c << "x"
    << k.h << "x" << k.w << " gaps " << k.x_gap << "/" << k.out_gap << " x+" << k.x_mis << " out+"
    << k.out_mis;
  return s.str();
}

int64_t offset(fastmix_layout layout, int64_t c, int64_t h, int64_t w, int64_t ch, int64_t y,
               int64_t x) {
  return layout == FASTMIX_LAYOUT_NHWC ? (y * w + x) * c + ch : (ch * h + y) * w + x;
}

// Random draws: blends, cuts (edges, empty, full) and unmixed samples.
U8Draw random_draw(int64_t n, int64_t h, int64_t w, std::mt19937_64 &rng) {
  U8Draw d;
  d.lam = random_lambdas(n, rng);
  d.par = make_partners(PartnerKind::random_map, n, rng);
  d.box.assign((size_t)n * 4, -1);
  for (int64_t i = 0; i < n; ++i) {
    int32_t *b = &d.box[(size_t)i * 4];
    const int kind = (int)(rng() % 4);
    if (kind == 0) continue;
    if (kind == 1) {  // unmixed: itself, an empty cut
      b[0] = b[1] = b[2] = b[3] = 0;
      d.par[(size_t)i] = i;
      continue;
    }
    b[0] = (int32_t)(rng() % (uint64_t)(h + 1));
    b[2] = b[0] + (int32_t)(rng() % (uint64_t)(h - b[0] + 1));
    b[1] = (int32_t)(rng() % (uint64_t)(w + 1));
    b[3] = b[1] + (int32_t)(rng() % (uint64_t)(w - b[1] + 1));
  }
  return d;
}

constexpr int64_t kGuard = 2;

// Runs the apply on `dev` with random bytes and normalization and the draw
// `d` (a random one when null), out poisoned, and checks every element of
// every image: bitwise the header's float32 formula evaluated here, and
// within rounding of the exact value in float64; the elements between and
// around the images untouched.  A sample whose partner or box is bad must
// be NaN in every element (CUDA; the CPU refuses such a draw, checked by the
// callers).  On CUDA the output is also compared with the CPU backend's,
// bit for bit, where the draw is good.  "" when all is well.
std::string run_u8(fastmix_device dev, const U8Case &k, std::mt19937_64 &rng,
                   const U8Draw *given = nullptr) {
  const size_t es = dtype_size(k.dtype);
  const int64_t elems = k.c * k.h * k.w, xs = elems + k.x_gap, os = elems + k.out_gap;
  std::vector<uint8_t> hx((size_t)((k.n - 1) * xs + elems));
  for (auto &v : hx) v = (uint8_t)rng();
  std::vector<float> mean((size_t)k.c), stdv((size_t)k.c);
  for (int64_t ch = 0; ch < k.c; ++ch) {
    mean[(size_t)ch] = (float)(rng() % 1000) / 1000.0f;
    stdv[(size_t)ch] = 0.05f + (float)(rng() % 1000) / 1000.0f;
  }
  const U8Draw d = given ? *given : random_draw(k.n, k.h, k.w, rng);
  bool all_ok = true;
  for (int64_t i = 0; i < k.n; ++i) all_ok = all_ok && draw_ok(d, k.n, k.h, k.w, i);
  const int64_t total = (k.n - 1) * os + elems + 2 * kGuard;
  auto apply = [&](fastmix_device on, std::vector<unsigned char> *result) -> std::string {
    Buffer xb = to_device(on, hx, (size_t)k.x_mis),
           ob(on, (size_t)total * es, (size_t)k.out_mis * es);
    Buffer lb = to_device(on, d.lam), pb = to_device(on, d.par), bb = to_device(on, d.box);
    void *out = ob.data() + kGuard * es;
    const fastmix_status st =
        fastmix_cutmix_apply_u8(on, k.in_layout, xb.as<uint8_t>(), k.n, k.c, k.h, k.w, xs,
                                mean.data(), stdv.data(), k.dtype, k.out_layout, out, os,
                                lb.as<float>(), pb.as<int64_t>(), bb.as<int32_t>(), nullptr);
    if (st != FASTMIX_SUCCESS)
      return std::string("status ") + fastmix_status_string(st) + ": " + fastmix_last_error();
    finish(on);
    *result = ob.copy();
    return "";
  };
  std::vector<unsigned char> now;
  const std::string problem = apply(dev, &now);
  if (!problem.empty()) return problem;
  std::vector<unsigned char> want((size_t)total * es, kPoison);
  std::ostringstream err;
  err.precision(10);
  for (int64_t i = 0; i < k.n; ++i) {
    const int32_t *b = &d.box[(size_t)i * 4];
    const bool cut = b[0] != -1, ok = draw_ok(d, k.n, k.h, k.w, i);
    const int64_t p = d.par[(size_t)i];
    for (int64_t ch = 0; ch < k.c; ++ch) {
      const float scale = (float)(1.0 / (255.0 * (double)stdv[(size_t)ch]));
      const float shift = (float)(-(double)mean[(size_t)ch] / (double)stdv[(size_t)ch]);
      for (int64_t y = 0; y < k.h; ++y)
        for (int64_t x = 0; x < k.w; ++x) {
          const int64_t at = kGuard + i * os + offset(k.out_layout, k.c, k.h, k.w, ch, y, x);
          const double got = decode(k.dtype, now.data(), at);
          if (!ok) {  // NaN, whatever its bits
            if (!std::isnan(got)) {
              err << "sample " << i << " (bad partner or box) (" << ch << ", " << y << ", " << x
                  << "): got " << got << ", expected NaN";
              return err.str();
            }
            std::memcpy(&want[(size_t)at * es], &now[(size_t)at * es], es);
            continue;
          }
          const int64_t in = offset(k.in_layout, k.c, k.h, k.w, ch, y, x);
          const float a = hx[(size_t)(i * xs + in)], bv = hx[(size_t)(p * xs + in)];
          const bool in_box = cut && y >= b[0] && y < b[2] && x >= b[1] && x < b[3];
          const float v = cut ? (in_box ? bv : a) : ref_blend_f32(d.lam[(size_t)i], a, bv);
          const float r = (float)((double)(float)((double)v * (double)scale) + (double)shift);
          encode(k.dtype, want.data(), at, (double)r);
          // the exact normalization of v, within the roundings
          const double exact =
              ((double)v / 255.0 - (double)mean[(size_t)ch]) / (double)stdv[(size_t)ch];
          const double tol =
              dtype_ulp(k.dtype, exact) +
              std::ldexp(1.0, -21) * (std::fabs((double)v * scale) + std::fabs(shift));
          if (!(std::fabs(got - exact) <= tol)) {
            err << "sample " << i << " (" << ch << ", " << y << ", " << x << "): got " << got
                << ", exact " << exact << " (v " << v << ", cut " << cut << ", in box " << in_box
                << ")";
            return err.str();
          }
        }
    }
  }
  const int64_t byte = first_difference(want.data(), now.data(), want.size());
  if (byte >= 0) {
    const int64_t e = byte / (int64_t)es, rel = e - kGuard;
    err << "element " << e
        << (rel >= 0 && rel % os < elems ? " (in an image)" : " (outside every image: untouched)")
        << ": got " << decode(k.dtype, now.data(), e) << ", expected "
        << decode(k.dtype, want.data(), e) << " (bits differ)";
    return err.str();
  }
  if (dev != FASTMIX_DEVICE_CPU && all_ok) {  // the CPU backend, bit for bit
    std::vector<unsigned char> cpu;
    const std::string cpu_problem = apply(FASTMIX_DEVICE_CPU, &cpu);
    if (!cpu_problem.empty()) return "CPU backend: " + cpu_problem;
    const int64_t diff = first_difference(cpu.data(), now.data(), cpu.size());
    if (diff >= 0) {
      err << "element " << diff / (int64_t)es << " differs from the CPU backend's";
      return err.str();
    }
  }
  return "";
}

fastmix_mix_config timm_config() {
  fastmix_mix_config c{};
  c.mixup_alpha = 0.8f, c.cutmix_alpha = 1.0f, c.prob = 0.9f, c.switch_prob = 0.5f;
  c.mode = FASTMIX_MIX_ELEM, c.pairing = FASTMIX_PAIRING_PERMUTATION, c.correct_lam = 1;
  return c;
}

// run_u8 with out 0 to 2 and x 0 to 15 elements past alignment, at random;
// a problem fails the case.
void check_u8(fastmix_device dev, U8Case k, std::mt19937_64 &rng, const U8Draw *draw = nullptr) {
  k.out_mis = (int64_t)(rng() % 3), k.x_mis = (int64_t)(rng() % 16);
  INFO(describe(dev, k));
  const std::string problem = run_u8(dev, k, rng, draw);
  if (!problem.empty()) FAIL(problem);
}

}  // namespace

TEST_CASE("uint8 input: mixed and normalized output equals the reference, every layout pair",
          "[input][devices]") {
  FMT_SEEDED_RNG(0x0a81);
  struct Geo {
    int64_t n, c, h, w, x_gap, out_gap;
  };
  // Widths 1, 3, 17, 227; channels 1 to 64; batch 1; gaps (odd strides);
  // images of more than one tile of the CUDA kernel (8 KiB of input).
  std::vector<Geo> geos = {{1, 1, 1, 1, 0, 0},   {3, 3, 5, 7, 0, 0},   {4, 1, 9, 2, 5, 3},
                           {5, 4, 3, 11, 1, 0},  {2, 3, 1, 40, 0, 7},  {6, 2, 17, 5, 0, 0},
                           {1, 3, 4, 1, 0, 0},   {3, 5, 2, 17, 1, 5},  {2, 64, 3, 3, 7, 1},
                           {2, 1, 3, 227, 3, 1}, {2, 3, 3, 227, 0, 2}, {2, 4, 5, 17, 0, 2},
                           {2, 3, 48, 64, 5, 3}, {2, 64, 9, 17, 3, 0}, {1, 1, 37, 227, 1, 0}};
  if (!on_simulator()) geos.push_back({16, 3, 32, 32, 0, 0});
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_layout in : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
        for (fastmix_layout outl : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
          for (const Geo &g : geos) {
            U8Case k{d, in, outl, g.n, g.c, g.h, g.w, g.x_gap, g.out_gap, 0, 0};
            check_u8(dev, k, rng);
          }
}

// The draw of the edge cases: per sample a box (y0, x0, y1, x1), partner
// (i + 3) mod n, and a lambda.
U8Draw edge_draw(int64_t n, const std::vector<std::array<int64_t, 4>> &boxes) {
  U8Draw d;
  for (int64_t i = 0; i < n; ++i) {
    const std::array<int64_t, 4> &b = boxes[(size_t)i % boxes.size()];
    for (int64_t v : b) d.box.push_back((int32_t)v);
    d.par.push_back((i + 3) % n);
    d.lam.push_back(0.3125f + 0.0625f * (float)(i % 5));
  }
  return d;
}

TEST_CASE("uint8 input: CutMix boxes at the edges and corners, every layout pair and dtype",
          "[input][devices]") {
  FMT_SEEDED_RNG(0x0a84);
  struct Geo {
    int64_t c, h, w;
  };
  // Widths 1, 3, 17, 227; channels 1, 3, 4, 5, 64; an image of two tiles.
  const Geo geos[] = {{3, 6, 17}, {1, 5, 1}, {4, 3, 227}, {64, 4, 5}, {5, 7, 3}, {3, 48, 64}};
  for (fastmix_device dev : test_devices())
    for (const Geo &g : geos) {
      const int64_t h = g.h, w = g.w, n = 11;
      const std::vector<std::array<int64_t, 4>> boxes = {
          {0, 0, h, w},                         // the whole image
          {0, 0, 1, 1},                         // the top left pixel
          {h - 1, w - 1, h, w},                 // the bottom right pixel
          {0, w - 1, h, w},                     // the right column
          {h - 1, 0, h, w},                     // the bottom row
          {0, 0, h, 1},                         // the left column
          {h / 2, 0, h / 2 + 1, w},             // a whole row
          {1, w, h, w},                         // empty, at the right edge
          {-1, -1, -1, -1},                     // mixup
          {h / 3, w / 2, h, w},                 // the bottom right corner
          {0, w / 3, (h + 1) / 2, w - w / 3}};  // the top edge
      const U8Draw d = edge_draw(n, boxes);
      for (fastmix_dtype dt : kAllDtypes)
        for (fastmix_layout in : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
          for (fastmix_layout outl : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC}) {
            U8Case k{dt, in, outl, n, g.c, h, w, (int64_t)(rng() % 3), (int64_t)(rng() % 3), 0, 0};
            check_u8(dev, k, rng, &d);
          }
    }
}

TEST_CASE("uint8 input: on CUDA a bad partner or box makes that sample NaN, the others intact",
          "[input][devices]") {
  FMT_SEEDED_RNG(0x0a85);
  struct Geo {
    int64_t c, h, w;
  };
  // One tile per image, and two.
  const Geo geos[] = {{2, 3, 5}, {3, 48, 64}};
  for (fastmix_device dev : test_devices()) {
    // The CPU refuses such a draw with nothing written: the next case.
    if (dev == FASTMIX_DEVICE_CPU) continue;
    for (const Geo &g : geos) {
      const int32_t h = (int32_t)g.h, w = (int32_t)g.w;
      const int64_t n = 6;
      U8Draw d;
      d.lam = {0.375f, 0.5f, 0.25f, 0.625f, 0.75f, 0.125f};
      d.par = {4, n, 0, -1, 1, 2};    // sample 1: partner n; sample 3: partner -1
      d.box = {-1, -1, -1,    -1,     // mixup
               -1, -1, -1,    -1,     // mixup, bad partner
               0,  1,  h + 1, w,      // bad box: y1 > height
               1,  1,  h,     w,      // CutMix, bad partner
               1,  2,  h,     w - 1,  // CutMix
               2,  3,  1,     w};     // bad box: y1 < y0
      for (fastmix_dtype dt : kAllDtypes)
        for (fastmix_layout in : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC})
          for (fastmix_layout outl : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC}) {
            U8Case k{dt, in, outl, n, g.c, g.h, g.w, 1, 2, 0, 0};
            check_u8(dev, k, rng, &d);
          }
    }
  }
}

TEST_CASE("uint8 input: fused is draw + apply bitwise, device seed is value seed",
          "[input][devices]") {
  FMT_SEEDED_RNG(0x0a82);
  const fastmix_mix_config cfg = timm_config();
  const int64_t n = 7, c = 3, h = 6, w = 10, elems = c * h * w;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes) {
      INFO(device_name(dev) << " " << dtype_name(d));
      std::vector<uint8_t> hx((size_t)(n * elems));
      for (auto &v : hx) v = (uint8_t)rng();
      const uint64_t s = rng(), off = rng();
      const size_t bytes = (size_t)(n * elems) * dtype_size(d);
      Buffer xb = to_device(dev, hx);
      // draw, then apply
      Buffer l1(dev, n * 4), p1(dev, n * 8), b1(dev, n * 16), o1(dev, bytes);
      REQUIRE(fastmix_cutmix_sample(dev, &cfg, s, off, n, h, w, l1.as<float>(), p1.as<int64_t>(),
                                    b1.as<int32_t>(), nullptr) == FASTMIX_SUCCESS);
      REQUIRE(fastmix_cutmix_apply_u8(dev, FASTMIX_LAYOUT_NHWC, xb.as<uint8_t>(), n, c, h, w, elems,
                                      mean, stdv, d, FASTMIX_LAYOUT_NCHW, o1.data(), elems,
                                      l1.as<float>(), p1.as<int64_t>(), b1.as<int32_t>(),
                                      nullptr) == FASTMIX_SUCCESS);
      finish(dev);
      for (int form = 0; form < 2; ++form) {
        Buffer l2(dev, n * 4), p2(dev, n * 8), b2(dev, n * 16), o2(dev, bytes);
        Buffer so = to_device(dev, std::vector<uint64_t>{s, off});
        const fastmix_status st =
            form == 0 ? fastmix_cutmix_u8(dev, &cfg, s, off, FASTMIX_LAYOUT_NHWC, xb.as<uint8_t>(),
                                          n, c, h, w, elems, mean, stdv, d, FASTMIX_LAYOUT_NCHW,
                                          o2.data(), elems, l2.as<float>(), p2.as<int64_t>(),
                                          b2.as<int32_t>(), nullptr)
                      : fastmix_cutmix_u8_device_seed(
                            dev, &cfg, so.as<uint64_t>(), 3, FASTMIX_LAYOUT_NHWC, xb.as<uint8_t>(),
                            n, c, h, w, elems, mean, stdv, d, FASTMIX_LAYOUT_NCHW, o2.data(), elems,
                            l2.as<float>(), p2.as<int64_t>(), b2.as<int32_t>(), nullptr);
        INFO("form " << form << ": " << fastmix_last_error());
        REQUIRE(st == FASTMIX_SUCCESS);
        finish(dev);
        CHECK(same_bits(l2.copy_as<float>(), l1.copy_as<float>()));
        CHECK(p2.copy_as<int64_t>() == p1.copy_as<int64_t>());
        CHECK(b2.copy_as<int32_t>() == b1.copy_as<int32_t>());
        const std::vector<unsigned char> got = o2.copy(), want = o1.copy();
        CHECK(first_difference(got.data(), want.data(), bytes) == -1);
        if (form == 1) CHECK(so.copy_as<uint64_t>() == std::vector<uint64_t>{s, off + 3});
      }
    }
}

TEST_CASE("uint8 input: a bad partner or box fails on the CPU with nothing written, NaN on CUDA",
          "[input][devices]") {
  const float mean[2] = {0.5f, 0.5f}, stdv[2] = {0.25f, 0.25f};
  for (fastmix_device dev : test_devices()) {
    INFO(device_name(dev));
    const int64_t n = 3, c = 2, h = 3, w = 4, elems = c * h * w;
    std::vector<uint8_t> hx((size_t)(n * elems), 7);
    Buffer xb = to_device(dev, hx), ob(dev, (size_t)(n * elems) * 4);
    Buffer lb = to_device(dev, std::vector<float>{0.5f, 0.5f, 0.5f}),
           pb = to_device(dev, std::vector<int64_t>{1, 2, 0}),
           bb = to_device(dev, std::vector<int32_t>{-1, -1, -1, -1, 0, 0, 4, 4, 0, 0, 1, 1});
    const fastmix_status st = fastmix_cutmix_apply_u8(
        dev, FASTMIX_LAYOUT_NCHW, xb.as<uint8_t>(), n, c, h, w, elems, mean, stdv, FASTMIX_FLOAT32,
        FASTMIX_LAYOUT_NCHW, ob.data(), elems, lb.as<float>(), pb.as<int64_t>(), bb.as<int32_t>(),
        nullptr);  // box 1: y1 = 4 > height 3
    if (dev == FASTMIX_DEVICE_CPU) {
      CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
      CHECK(has_word(fastmix_last_error(), "boxes"));
      CHECK(all_poison(ob.data(), ob.size()));
    } else {
      REQUIRE(st == FASTMIX_SUCCESS);
      finish(dev);
      const std::vector<float> o = ob.copy_as<float>();
      for (int64_t e = 0; e < n * elems; ++e) CHECK(std::isnan(o[(size_t)e]) == (e / elems == 1));
    }
  }
}

TEST_CASE("uint8 input: bad arguments are refused, naming the parameter, with nothing written",
          "[input][errors]") {
  struct Args {
    fastmix_layout in = FASTMIX_LAYOUT_NHWC, out = FASTMIX_LAYOUT_NCHW;
    fastmix_dtype dtype = FASTMIX_FLOAT32;
    int64_t n = 2, c = 3, h = 4, w = 5, xs = 60, os = 60;
    float mean0 = 0.5f, std0 = 0.25f;
    bool null_x = false, null_mean = false, overlap = false;
  };
  struct Case {
    const char *param;
    void (*set)(Args &);
  };
  auto bad = [](int v) {
    fastmix_layout l;
    std::memcpy(&l, &v, sizeof l);
    return l;
  };
  static fastmix_layout bad_layout = bad(2);
  const Case cases[] = {
      {"in_layout", [](Args &a) { a.in = bad_layout; }},
      {"out_layout", [](Args &a) { a.out = bad_layout; }},
      {"channels", [](Args &a) { a.c = 65; }},
      {"channels", [](Args &a) { a.c = 0; }},
      {"height", [](Args &a) { a.h = 0; }},
      {"width", [](Args &a) { a.w = -3; }},
      {"x_stride", [](Args &a) { a.xs = 59; }},
      {"out_stride", [](Args &a) { a.os = 10; }},
      {"batch", [](Args &a) { a.n = -1; }},
      {"x", [](Args &a) { a.null_x = true; }},
      {"mean", [](Args &a) { a.null_mean = true; }},
      {"mean", [](Args &a) { a.mean0 = NAN; }},
      {"std", [](Args &a) { a.std0 = 0.0f; }},
      {"std", [](Args &a) { a.std0 = -1.0f; }},
      {"out", [](Args &a) { a.overlap = true; }},
  };
  // seed_offset inside x or out: refused, nothing written, the offset unchanged
  for (int where = 0; where < 2; ++where) {
    INFO("seed_offset inside " << (where ? "out" : "x"));
    const fastmix_mix_config c = timm_config();
    std::vector<uint64_t> xs(16, 0x0101010101010101ull);  // the images' bytes, 8-aligned
    std::vector<uint64_t> os(64, ~0ull);
    uint8_t *x = reinterpret_cast<uint8_t *>(xs.data());
    uint64_t *so = where ? os.data() + 4 : xs.data();
    so[0] = 5, so[1] = 0;
    const std::vector<uint64_t> xs0 = xs, os0 = os;
    std::vector<float> lam(2);
    std::vector<int64_t> par(2);
    std::vector<int32_t> box(8);
    const float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.2f, 0.2f, 0.2f};
    CHECK(fastmix_cutmix_u8_device_seed(FASTMIX_DEVICE_CPU, &c, so, 7, FASTMIX_LAYOUT_NHWC, x, 2, 3,
                                        2, 3, 18, mean, stdv, FASTMIX_FLOAT32, FASTMIX_LAYOUT_NCHW,
                                        os.data(), 18, lam.data(), par.data(), box.data(),
                                        nullptr) == FASTMIX_ERROR_INVALID_VALUE);
    CHECK(has_word(fastmix_last_error(), "seed_offset"));
    CHECK(xs == xs0);
    CHECK(os == os0);
  }
  const fastmix_mix_config cfg = timm_config();
  for (const Case &k : cases)
    for (int form = 0; form < 2; ++form) {
      Args a;
      k.set(a);
      INFO(k.param << " form " << form);
      std::vector<uint8_t> x(400, 1);
      std::vector<unsigned char> out(800, kPoison), lam(16, kPoison), par(32, kPoison),
          box(64, kPoison);
      const float mean[3] = {a.mean0, 0.4f, 0.4f}, stdv[3] = {a.std0, 0.2f, 0.2f};
      const std::vector<float> given_lam = {0.5f, 0.5f};
      const std::vector<int64_t> given_par = {1, 0};
      const std::vector<int32_t> given_box(8, -1);
      void *o = a.overlap ? (void *)x.data() : (void *)out.data();
      const uint8_t *xp = a.null_x ? nullptr : x.data();
      const float *mp = a.null_mean ? nullptr : mean;
      const fastmix_status st =
          form == 0
              ? fastmix_cutmix_apply_u8(FASTMIX_DEVICE_CPU, a.in, xp, a.n, a.c, a.h, a.w, a.xs, mp,
                                        stdv, a.dtype, a.out, o, a.os, given_lam.data(),
                                        given_par.data(), given_box.data(), nullptr)
              : fastmix_cutmix_u8(FASTMIX_DEVICE_CPU, &cfg, 1, 2, a.in, xp, a.n, a.c, a.h, a.w,
                                  a.xs, mp, stdv, a.dtype, a.out, o, a.os,
                                  reinterpret_cast<float *>(lam.data()),
                                  reinterpret_cast<int64_t *>(par.data()),
                                  reinterpret_cast<int32_t *>(box.data()), nullptr);
      CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
      INFO("fastmix_last_error(): " << fastmix_last_error());
      CHECK(has_word(fastmix_last_error(), k.param));
      CHECK(all_poison(out.data(), out.size()));
      CHECK(all_poison(lam.data(), lam.size()));
      CHECK(all_poison(par.data(), par.size()));
      CHECK(all_poison(box.data(), box.size()));
      CHECK(std::all_of(x.begin(), x.end(), [](uint8_t v) { return v == 1; }));
    }
}
