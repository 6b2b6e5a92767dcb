// fastmix_blend on the CPU against the independent float32 reference of
// test_util.hpp: every dtype, odd shapes, strides with gaps, pointers that are
// not 16-byte aligned, in place and out of place, permutations and arbitrary
// partner maps.  Outputs are poisoned (NaN) before every call.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#include <string>
#include <vector>

using namespace fmt_test;

namespace {

struct BlendCase {
  fastmix_dtype dtype;
  Shape shape;
  int64_t x_misalign, out_misalign;  // in elements past a 64-byte boundary
  bool in_place;
  PartnerKind kind;
};

std::string describe(const BlendCase &c) {
  std::ostringstream s;
  s << dtype_name(c.dtype) << " batch " << c.shape.batch << " elems " << c.shape.elems << " stride "
    << c.shape.stride << " x+" << c.x_misalign << " out+" << c.out_misalign
    << (c.in_place ? " in place" : " out of place") << " partners " << partner_kind_name(c.kind);
  return s.str();
}

constexpr int64_t kGuard = 5;  // elements before and after the batch, checked untouched

// Runs one blend on fresh random data and checks everything; "" when right.
std::string run_blend(const BlendCase &c, std::mt19937_64 &rng) {
  const size_t es = dtype_size(c.dtype);
  const int64_t total = span(c.shape) + 2 * kGuard;
  Bytes xb((size_t)total * es, (size_t)c.x_misalign * es, 0);
  fill_random(c.dtype, xb.data(), total, rng);
  const std::vector<unsigned char> x_before = xb.copy();
  const std::vector<float> lam = random_lambdas(c.shape.batch, rng);
  const std::vector<int64_t> par = make_partners(c.kind, c.shape.batch, rng);
  const std::vector<float> lam_before = lam;
  const std::vector<int64_t> par_before = par;
  unsigned char *x = xb.data() + kGuard * (int64_t)es;

  Bytes ob;
  unsigned char *out = x;
  if (!c.in_place) {
    ob = Bytes((size_t)total * es, (size_t)c.out_misalign * es);
    out = ob.data() + kGuard * (int64_t)es;
  }
  const std::vector<unsigned char> out_before = c.in_place ? x_before : ob.copy();
  const fastmix_status st =
      fastmix_blend(FASTMIX_DEVICE_CPU, c.dtype, x, out, c.shape.batch, c.shape.elems,
                    c.shape.stride, lam.data(), par.data(), nullptr);
  if (st != FASTMIX_SUCCESS)
    return std::string("status ") + fastmix_status_string(st) + ": " + fastmix_last_error();
  if (lam != lam_before || par != par_before) return "lambdas or partners were modified";
  if (!c.in_place && first_difference(xb.data(), x_before.data(), xb.size()) >= 0)
    return "x was modified by an out-of-place blend";
  const unsigned char *now = c.in_place ? xb.data() : ob.data();
  return check_blend(c.dtype, c.shape, x_before.data(), kGuard, out_before.data(), now,
                     (size_t)total * es, kGuard, lam.data(), par.data());
}

}  // namespace

TEST_CASE(
    "blend equals the float32 reference: dtypes, odd shapes, strides, alignment, in/out of place",
    "[blend]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xb1e4d);
  int cases = 0;
  for (fastmix_dtype d : kAllDtypes)
    for (int64_t batch : {1, 2, 3, 7, 33})
      for (int64_t elems : {1, 3, 17, 1031})
        for (int64_t extra : {0, 3})
          for (int mis = 0; mis < 3; ++mis)
            for (bool in_place : {false, true})
              for (PartnerKind kind : kAllPartnerKinds) {
                // (0, 0): aligned; (1, 1): both off by one element; (1, 3): x and out
                // off 16-byte alignment by different amounts.
                const BlendCase c{d,
                                  {batch, elems, elems + extra},
                                  mis == 0 ? 0 : 1,
                                  mis == 0 ? 0 : mis == 1 ? 1 : 3,
                                  in_place,
                                  kind};
                if (in_place && mis == 2) continue;  // same pointer: same alignment
                INFO(describe(c));
                const std::string err = run_blend(c, rng);
                CHECK(err == "");
                ++cases;
              }
  CHECK(cases > 1000);
}

TEST_CASE("blend of larger batches (the parallel and strip-wise paths)", "[blend]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xb1e4e);
  for (fastmix_dtype d : kAllDtypes) {
    for (const Shape s : {Shape{64, 3 * 32 * 32, 3 * 32 * 32},
                          Shape{64, 3 * 32 * 32, 3 * 32 * 32 + 1}, Shape{300, 2001, 2001},
                          Shape{5, 3 * 112 * 112 + 7, 3 * 112 * 112 + 9}, Shape{2, 200003, 200003}})
      for (bool in_place : {false, true})
        for (PartnerKind kind : {PartnerKind::permutation, PartnerKind::random_map}) {
          const BlendCase c{d, s, 1, 1, in_place, kind};
          INFO(describe(c));
          CHECK(run_blend(c, rng) == "");
        }
  }
}

TEST_CASE(
    "blend in place is bitwise the same as out of place, also for partners that are no permutation",
    "[blend]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xb1e4f);
  for (fastmix_dtype d : kAllDtypes)
    for (PartnerKind kind : kAllPartnerKinds)
      for (const Shape s :
           {Shape{1, 5, 5}, Shape{7, 33, 40}, Shape{33, 1001, 1001}, Shape{16, 40000, 40003}}) {
        INFO(dtype_name(d) << " partners " << partner_kind_name(kind) << " batch " << s.batch
                           << " elems " << s.elems << " stride " << s.stride);
        const size_t es = dtype_size(d);
        const int64_t n = span(s);
        Bytes x((size_t)n * es, es, 0);
        fill_random(d, x.data(), n, rng);
        Bytes out((size_t)n * es, 0);
        const std::vector<unsigned char> x_before = x.copy();
        const std::vector<float> lam = random_lambdas(s.batch, rng);
        const std::vector<int64_t> par = make_partners(kind, s.batch, rng);
        REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), out.data(), s.batch, s.elems,
                              s.stride, lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
        REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), x.data(), s.batch, s.elems, s.stride,
                              lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
        bool same = true;
        for (int64_t i = 0; i < s.batch && same; ++i) {
          const size_t at = (size_t)(i * s.stride) * es;
          same = std::memcmp(x.data() + at, out.data() + at, (size_t)s.elems * es) == 0;
          // the gaps: poison in out, x's own bytes in place
          if (same && i + 1 < s.batch) {
            same = all_poison(out.data() + at + (size_t)s.elems * es,
                              (size_t)(s.stride - s.elems) * es) &&
                   std::memcmp(x.data() + at + (size_t)s.elems * es,
                               x_before.data() + at + (size_t)s.elems * es,
                               (size_t)(s.stride - s.elems) * es) == 0;
          }
        }
        CHECK(same);
      }
}

TEST_CASE("blend with lambda 1 gives x, with lambda 0 the partner (by value)", "[blend]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xb1e50);
  for (fastmix_dtype d : kAllDtypes)
    for (float l : {1.0f, 0.0f}) {
      INFO(dtype_name(d) << " lambda " << l);
      const Shape s{9, 257, 260};
      const size_t es = dtype_size(d);
      const int64_t n = span(s);
      Bytes x((size_t)n * es, es, 0);
      fill_random(d, x.data(), n, rng);
      Bytes out((size_t)n * es, 3 * es);
      const std::vector<float> lam((size_t)s.batch, l);
      const std::vector<int64_t> par = make_partners(PartnerKind::random_map, s.batch, rng);
      REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), out.data(), s.batch, s.elems, s.stride,
                            lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
      int bad = 0;
      for (int64_t i = 0; i < s.batch; ++i)
        for (int64_t j = 0; j < s.elems; ++j) {
          const double want = decode(d, x.data(), (l == 1.0f ? i : par[(size_t)i]) * s.stride + j);
          if (!(decode(d, out.data(), i * s.stride + j) == want)) ++bad;
        }
      CHECK(bad == 0);
    }
}

TEST_CASE("blend with batch 0 or sample_elems 0 succeeds and writes nothing", "[blend]") {
  for (fastmix_dtype d : kAllDtypes) {
    INFO(dtype_name(d));
    Bytes x(64, 0, 0x3c), out(64);
    std::vector<float> lam(4, 0.5f);
    std::vector<int64_t> par{0, 1, 2, 3};
    CHECK(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), out.data(), 0, 4, 4, lam.data(),
                        par.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), out.data(), 4, 0, 0, lam.data(),
                        par.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), out.data(), 4, 0, 3, lam.data(),
                        par.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(), x.data(), 0, 4, 4, lam.data(), par.data(),
                        nullptr) == FASTMIX_SUCCESS);
    CHECK(all_poison(out.data(), out.size()));
    std::vector<unsigned char> xs = x.copy();
    CHECK(std::all_of(xs.begin(), xs.end(), [](unsigned char c) { return c == 0x3c; }));
  }
}

TEST_CASE("blend accepts out right next to x (touching is no overlap)", "[blend]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xb1e51);
  for (fastmix_dtype d : kAllDtypes) {
    INFO(dtype_name(d));
    const Shape s{3, 5, 7};
    const size_t es = dtype_size(d);
    const int64_t n = span(s);  // 19 elements
    Bytes buf((size_t)(2 * n) * es, es);
    fill_random(d, buf.data(), n, rng);
    const std::vector<unsigned char> before = buf.copy();
    const std::vector<float> lam = random_lambdas(s.batch, rng);
    const std::vector<int64_t> par = make_partners(PartnerKind::permutation, s.batch, rng);
    REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, buf.data(), buf.data() + (size_t)n * es, s.batch,
                          s.elems, s.stride, lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(check_blend(d, s, before.data(), 0, before.data(), buf.data(), buf.size(), n, lam.data(),
                      par.data()) == "");
    // and x right after out
    Bytes buf2((size_t)(2 * n) * es, 0);
    fill_random(d, buf2.data() + (size_t)n * es, n, rng);
    const std::vector<unsigned char> before2 = buf2.copy();
    REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, buf2.data() + (size_t)n * es, buf2.data(), s.batch,
                          s.elems, s.stride, lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(check_blend(d, s, before2.data(), n, before2.data(), buf2.data(), buf2.size(), 0,
                      lam.data(), par.data()) == "");
  }
}
