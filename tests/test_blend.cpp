// fastmix_blend on every device against the independent float32 reference of
// test_util.hpp: every dtype, odd shapes, strides with gaps, pointers that are
// not 16-byte aligned, in place and out of place, permutations and arbitrary
// partner maps.  Outputs are poisoned (NaN) before every call, and the bytes
// around the batch are checked untouched.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

struct BlendCase {
  fastmix_dtype dtype;
  Shape shape;
  int64_t x_misalign, out_misalign;  // in elements past a 256-byte boundary
  bool in_place;
  PartnerKind kind;
};

std::string describe(fastmix_device dev, const BlendCase &c) {
  std::ostringstream s;
  s << device_name(dev) << " " << dtype_name(c.dtype) << " batch " << c.shape.batch << " elems "
    << c.shape.elems << " stride " << c.shape.stride << " x+" << c.x_misalign << " out+"
    << c.out_misalign << (c.in_place ? " in place" : " out of place") << " partners "
    << partner_kind_name(c.kind);
  return s.str();
}

constexpr int64_t kGuard = 5;  // elements before and after the batch, checked untouched

// Runs one blend on fresh random data and checks everything; "" when right.
std::string run_blend(fastmix_device dev, const BlendCase &c, std::mt19937_64 &rng) {
  const size_t es = dtype_size(c.dtype);
  const int64_t total = span(c.shape) + 2 * kGuard;
  const size_t bytes = (size_t)total * es, g = (size_t)kGuard * es;
  std::vector<unsigned char> x_before(bytes);
  fill_random(c.dtype, x_before.data(), total, rng);
  Buffer xb(dev, bytes, (size_t)c.x_misalign * es);
  xb.upload(x_before.data());
  const std::vector<float> lam = random_lambdas(c.shape.batch, rng);
  const std::vector<int64_t> par = make_partners(c.kind, c.shape.batch, rng);
  Buffer lb = to_device(dev, lam), pb = to_device(dev, par);
  Buffer ob(dev, c.in_place ? 0 : bytes, (size_t)c.out_misalign * es);
  unsigned char *x = xb.data() + g, *out = c.in_place ? x : ob.data() + g;
  const fastmix_status st =
      fastmix_blend(dev, c.dtype, x, out, c.shape.batch, c.shape.elems, c.shape.stride,
                    lb.as<float>(), pb.as<int64_t>(), nullptr);
  if (st != FASTMIX_SUCCESS)
    return std::string("status ") + fastmix_status_string(st) + ": " + fastmix_last_error();
  finish(dev);
  std::vector<float> lam_now = lb.copy_as<float>();
  std::vector<int64_t> par_now = pb.copy_as<int64_t>();
  lam_now.resize(lam.size()), par_now.resize(par.size());
  if (lam_now != lam || par_now != par) return "lambdas or partners were modified";
  const std::vector<unsigned char> x_now = xb.copy();
  if (!c.in_place && first_difference(x_now.data(), x_before.data(), bytes) >= 0)
    return "x was modified by an out-of-place blend";
  const std::vector<unsigned char> out_before =
      c.in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
  const std::vector<unsigned char> now = c.in_place ? x_now : ob.copy();
  return check_blend(c.dtype, c.shape, x_before.data(), kGuard, out_before.data(), now.data(),
                     bytes, kGuard, lam.data(), par.data());
}

// run_blend on every device and dtype, for each of shapes(dtype), offset of x
// and out (the same, in elements), placement and partner map (a permutation
// and a random map).
void check_blends(std::mt19937_64 &rng,
                  const std::function<std::vector<Shape>(fastmix_dtype)> &shapes,
                  const std::vector<int64_t> &offsets, const std::vector<bool> &placements) {
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (const Shape &s : shapes(d))
        for (int64_t mis : offsets)
          for (bool in_place : placements)
            for (PartnerKind kind : {PartnerKind::permutation, PartnerKind::random_map}) {
              const BlendCase c{d, s, mis, mis, in_place, kind};
              INFO(describe(dev, c));
              CHECK(run_blend(dev, c, rng) == "");
            }
}

}  // namespace

TEST_CASE(
    "blend equals the float32 reference: dtypes, odd shapes, strides, alignment, in/out of place",
    "[blend][devices][racecheck]") {
  FMT_SEEDED_RNG(0xb1e4d);
  const bool sim = on_simulator();
  // On the simulator: every path still, with fewer batch sizes and partner maps.
  const std::vector<int64_t> batches =
      sim ? std::vector<int64_t>{3, 33} : std::vector<int64_t>{1, 2, 3, 7, 33};
  const std::vector<int64_t> sizes =
      sim ? std::vector<int64_t>{1, 17, 1031} : std::vector<int64_t>{1, 3, 17, 1031};
  const std::vector<PartnerKind> kinds =
      sim ? std::vector<PartnerKind>{PartnerKind::permutation, PartnerKind::random_map}
          : std::vector<PartnerKind>(std::begin(kAllPartnerKinds), std::end(kAllPartnerKinds));
  for (fastmix_device dev : test_devices()) {
    int cases = 0;
    for (fastmix_dtype d : kAllDtypes)
      for (int64_t batch : batches)
        for (int64_t elems : sizes)
          for (int64_t extra : {0, 3})
            for (int mis = 0; mis < 3; ++mis)
              for (bool in_place : {false, true})
                for (PartnerKind kind : kinds) {
                  // (0, 0): aligned; (1, 1): both off by one element; (1, 3): x and out
                  // off 16-byte alignment by different amounts.
                  const BlendCase c{d,
                                    {batch, elems, elems + extra},
                                    mis == 0 ? 0 : 1,
                                    mis == 0 ? 0 : mis == 1 ? 1 : 3,
                                    in_place,
                                    kind};
                  if (in_place && mis == 2) continue;  // same pointer: same alignment
                  INFO(describe(dev, c));
                  CHECK(run_blend(dev, c, rng) == "");
                  ++cases;
                }
    CHECK(cases >= (sim ? 360 : 1000));
  }
}

TEST_CASE("blend of larger batches (several chunks and strips, the grid-stride loops)",
          "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e4e);
  std::vector<Shape> shapes = {Shape{64, 3 * 32 * 32, 3 * 32 * 32},
                               Shape{64, 3 * 32 * 32, 3 * 32 * 32 + 1}, Shape{300, 2001, 2001},
                               Shape{5, 3 * 112 * 112 + 7, 3 * 112 * 112 + 9},
                               Shape{2, 200003, 200003}};
  // On the simulator: several chunks of 8192 elements per sample (32 KiB of
  // float32, 16 KiB of the 16-bit types), several strips, more items than
  // blocks.
  if (on_simulator())
    shapes = {Shape{64, 3 * 16 * 16 + 1, 3 * 16 * 16 + 1}, Shape{64, 3 * 16 * 16, 3 * 16 * 16},
              Shape{300, 61, 61}, Shape{3, 20011, 20013}};
  check_blends(rng, [&](fastmix_dtype) { return shapes; }, {1}, {false, true});
}

TEST_CASE("blend of batches that take the walk along the partner chains", "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e53);
  check_blends(rng, [](fastmix_dtype d) { return std::vector<Shape>{walk_shape(d)}; }, {1},
               {false});
}

TEST_CASE(
    "blend with sample strides off 16-byte alignment: every partner offset, full and last chunks",
    "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e52);
  // A stride of 1 mod 8 elements puts sample i at i mod 8 elements past a
  // 16-byte boundary (relative to sample 0): 9 samples see every offset of
  // every dtype, and each partner one of them.  9001 elements: a full chunk
  // of vectors (8192 elements) and a part of a second one per sample; 33:
  // fewer vectors than threads; 20: only a few, or none once the partner's
  // realigned loads must stay inside its sample.
  std::vector<Shape> shapes = {{9, 9001, 9001}, {9, 9001, 9009}, {9, 33, 41}, {17, 20, 25}};
  std::vector<int64_t> offsets = {0, 1, 5};  // of x and out, in elements
  if (on_simulator()) shapes.erase(shapes.begin() + 1), offsets.pop_back();
  check_blends(rng, [&](fastmix_dtype) { return shapes; }, offsets, {false, true});
}

TEST_CASE(
    "blend in place is bitwise the same as out of place, also for partners that are no permutation",
    "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e4f);
  std::vector<Shape> shapes = {Shape{1, 5, 5}, Shape{7, 33, 40}, Shape{33, 1001, 1001},
                               Shape{16, 40000, 40003}};
  if (on_simulator()) shapes.pop_back();
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (PartnerKind kind : kAllPartnerKinds)
        for (const Shape &s : shapes) {
          INFO(device_name(dev) << " " << dtype_name(d) << " partners " << partner_kind_name(kind)
                                << " batch " << s.batch << " elems " << s.elems << " stride "
                                << s.stride);
          const size_t es = dtype_size(d);
          const int64_t n = span(s);
          std::vector<unsigned char> x_before((size_t)n * es);
          fill_random(d, x_before.data(), n, rng);
          Buffer x(dev, (size_t)n * es, es), out(dev, (size_t)n * es);
          x.upload(x_before.data());
          const std::vector<float> lam = random_lambdas(s.batch, rng);
          const std::vector<int64_t> par = make_partners(kind, s.batch, rng);
          Buffer lb = to_device(dev, lam), pb = to_device(dev, par);
          REQUIRE(fastmix_blend(dev, d, x.data(), out.data(), s.batch, s.elems, s.stride,
                                lb.as<float>(), pb.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
          REQUIRE(fastmix_blend(dev, d, x.data(), x.data(), s.batch, s.elems, s.stride,
                                lb.as<float>(), pb.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
          finish(dev);
          const std::vector<unsigned char> xs = x.copy(), os = out.copy();
          bool same = true;
          for (int64_t i = 0; i < s.batch && same; ++i) {
            const size_t at = (size_t)(i * s.stride) * es, gap = (size_t)(s.stride - s.elems) * es;
            same = std::memcmp(xs.data() + at, os.data() + at, (size_t)s.elems * es) == 0;
            // the gaps: poison in out, x's own bytes in place
            if (same && i + 1 < s.batch)
              same = all_poison(os.data() + at + (size_t)s.elems * es, gap) &&
                     std::memcmp(xs.data() + at + (size_t)s.elems * es,
                                 x_before.data() + at + (size_t)s.elems * es, gap) == 0;
          }
          CHECK(same);
        }
}

TEST_CASE("blend with lambda 1 gives x, with lambda 0 the partner (by value)", "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e50);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (float l : {1.0f, 0.0f}) {
        INFO(device_name(dev) << " " << dtype_name(d) << " lambda " << l);
        const Shape s{9, 257, 260};
        const size_t es = dtype_size(d);
        const int64_t n = span(s);
        std::vector<unsigned char> xh((size_t)n * es);
        fill_random(d, xh.data(), n, rng);
        Buffer x(dev, (size_t)n * es, es), out(dev, (size_t)n * es, 3 * es);
        x.upload(xh.data());
        const std::vector<float> lam((size_t)s.batch, l);
        const std::vector<int64_t> par = make_partners(PartnerKind::random_map, s.batch, rng);
        Buffer lb = to_device(dev, lam), pb = to_device(dev, par);
        REQUIRE(fastmix_blend(dev, d, x.data(), out.data(), s.batch, s.elems, s.stride,
                              lb.as<float>(), pb.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        const std::vector<unsigned char> os = out.copy();
        int bad = 0;
        for (int64_t i = 0; i < s.batch; ++i)
          for (int64_t j = 0; j < s.elems; ++j) {
            const double want =
                decode(d, xh.data(), (l == 1.0f ? i : par[(size_t)i]) * s.stride + j);
            if (!(decode(d, os.data(), i * s.stride + j) == want)) ++bad;
          }
        CHECK(bad == 0);
      }
}

TEST_CASE("blend with batch 0 or sample_elems 0 succeeds and writes nothing", "[blend][devices]") {
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes) {
      INFO(device_name(dev) << " " << dtype_name(d));
      Buffer x(dev, 64, 0, 0x3c), out(dev, 64);
      Buffer lam = to_device(dev, std::vector<float>(4, 0.5f));
      Buffer par = to_device(dev, std::vector<int64_t>{0, 1, 2, 3});
      float *l = lam.as<float>();
      int64_t *p = par.as<int64_t>();
      CHECK(fastmix_blend(dev, d, x.data(), out.data(), 0, 4, 4, l, p, nullptr) == FASTMIX_SUCCESS);
      CHECK(fastmix_blend(dev, d, x.data(), out.data(), 4, 0, 0, l, p, nullptr) == FASTMIX_SUCCESS);
      CHECK(fastmix_blend(dev, d, x.data(), out.data(), 4, 0, 3, l, p, nullptr) == FASTMIX_SUCCESS);
      CHECK(fastmix_blend(dev, d, x.data(), x.data(), 0, 4, 4, l, p, nullptr) == FASTMIX_SUCCESS);
      finish(dev);
      CHECK(all_poison(out.copy()));
      CHECK(all_bytes(x.copy(), 0x3c));
    }
}

TEST_CASE("blend accepts out right next to x (touching is no overlap)", "[blend][devices]") {
  FMT_SEEDED_RNG(0xb1e51);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (bool out_first : {false, true}) {
        INFO(device_name(dev) << " " << dtype_name(d) << (out_first ? " out, x" : " x, out"));
        const Shape s{3, 5, 7};
        const size_t es = dtype_size(d);
        const int64_t n = span(s);  // 19 elements
        std::vector<unsigned char> before((size_t)(2 * n) * es, kPoison);
        const int64_t x_at = out_first ? n : 0, out_at = out_first ? 0 : n;
        fill_random(d, before.data() + (size_t)x_at * es, n, rng);
        Buffer buf(dev, before.size(), es);
        buf.upload(before.data());
        const std::vector<float> lam = random_lambdas(s.batch, rng);
        const std::vector<int64_t> par = make_partners(PartnerKind::permutation, s.batch, rng);
        Buffer lb = to_device(dev, lam), pb = to_device(dev, par);
        REQUIRE(fastmix_blend(dev, d, buf.data() + (size_t)x_at * es,
                              buf.data() + (size_t)out_at * es, s.batch, s.elems, s.stride,
                              lb.as<float>(), pb.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        const std::vector<unsigned char> now = buf.copy();
        CHECK(check_blend(d, s, before.data(), x_at, before.data(), now.data(), now.size(), out_at,
                          lam.data(), par.data()) == "");
      }
}
