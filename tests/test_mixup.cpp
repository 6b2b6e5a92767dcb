// fastmix_mixup on the CPU: bitwise the same lambdas, partners and output as
// fastmix_sample followed by fastmix_blend, and the output equal to the
// independent float32 reference; batch 0 and batch 1 in every pairing.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#include <string>
#include <vector>

using namespace fmt_test;

namespace {
constexpr int64_t kGuard = 3;
}

TEST_CASE("mixup is sample + blend, bitwise, and equals the reference", "[mixup]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x313c5);
  const float alphas[] = {0.2f, 1.0f, 5.0f, 0.01f};
  int round = 0;
  for (fastmix_dtype d : kAllDtypes)
    for (fastmix_pairing pairing : kAllPairings)
      for (int fold : {0, 1})
        for (const Shape s :
             {Shape{1, 1, 1}, Shape{1, 17, 20}, Shape{2, 3, 3}, Shape{3, 17, 19},
              Shape{7, 1000, 1000}, Shape{33, 1031, 1034}, Shape{64, 3 * 32 * 32, 3 * 32 * 32 + 2}})
          for (bool in_place : {false, true})
            for (int mis : {0, 1}) {
              const float alpha = alphas[round++ % 4];
              const uint64_t lib_seed = rng(), offset = rng() >> (rng() % 64);
              INFO(dtype_name(d) << " " << pairing_name(pairing) << " fold " << fold << " alpha "
                                 << alpha << " batch " << s.batch << " elems " << s.elems
                                 << " stride " << s.stride
                                 << (in_place ? " in place" : " out of place") << " misaligned "
                                 << mis << " seed " << lib_seed << " offset " << offset);
              const size_t es = dtype_size(d);
              const int64_t total = span(s) + 2 * kGuard;
              const size_t bytes = (size_t)total * es;
              Bytes x1(bytes, (size_t)mis * es, 0);
              fill_random(d, x1.data(), total, rng);
              const std::vector<unsigned char> x_before = x1.copy();
              Bytes x2(bytes, (size_t)mis * es, 0);
              std::memcpy(x2.data(), x1.data(), bytes);
              Bytes o1(bytes, (size_t)(mis ? 3 : 0) * es), o2(bytes, (size_t)(mis ? 3 : 0) * es);
              const size_t g = (size_t)kGuard * es;
              unsigned char *out1 = in_place ? x1.data() + g : o1.data() + g;
              unsigned char *out2 = in_place ? x2.data() + g : o2.data() + g;
              std::vector<float> l1((size_t)s.batch), l2((size_t)s.batch);
              std::vector<int64_t> p1((size_t)s.batch), p2((size_t)s.batch);
              poison(l1), poison(l2), poison(p1), poison(p2);

              REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, d, alpha, fold, pairing, lib_seed, offset,
                                    x1.data() + g, out1, s.batch, s.elems, s.stride, l1.data(),
                                    p1.data(), nullptr) == FASTMIX_SUCCESS);
              REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, pairing, lib_seed, offset,
                                     s.batch, l2.data(), p2.data(), nullptr) == FASTMIX_SUCCESS);
              REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, x2.data() + g, out2, s.batch, s.elems,
                                    s.stride, l2.data(), p2.data(), nullptr) == FASTMIX_SUCCESS);
              CHECK(first_difference(l1.data(), l2.data(), l1.size() * sizeof(float)) == -1);
              CHECK(first_difference(p1.data(), p2.data(), p1.size() * sizeof(int64_t)) == -1);
              const unsigned char *now1 = in_place ? x1.data() : o1.data();
              const unsigned char *now2 = in_place ? x2.data() : o2.data();
              CHECK(first_difference(now1, now2, bytes) == -1);
              // The draw itself is checked by [sample] and [stats]; here: a valid one.
              bool lam_ok = true;
              for (float l : l1) lam_ok = lam_ok && l >= (fold ? 0.5f : 0.0f) && l <= 1.0f;
              CHECK(lam_ok);
              CHECK(is_permutation(p1.data(), s.batch));
              if (!in_place) CHECK(first_difference(x1.data(), x_before.data(), bytes) == -1);
              const std::vector<unsigned char> out_before =
                  in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
              CHECK(check_blend(d, s, x_before.data(), kGuard, out_before.data(), now1, bytes,
                                kGuard, l1.data(), p1.data()) == "");
            }
}

TEST_CASE("mixup with batch 0 succeeds and writes nothing", "[mixup]") {
  for (fastmix_dtype d : kAllDtypes)
    for (fastmix_pairing pairing : kAllPairings) {
      INFO(dtype_name(d) << " " << pairing_name(pairing));
      Bytes x(32, 0, 0x11), out(32);
      std::vector<float> lam(4);
      std::vector<int64_t> par(4);
      poison(lam), poison(par);
      CHECK(fastmix_mixup(FASTMIX_DEVICE_CPU, d, 0.4f, 0, pairing, 1, 2, x.data(), out.data(), 0, 3,
                          3, lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
      CHECK(fastmix_mixup(FASTMIX_DEVICE_CPU, d, 0.4f, 1, pairing, 1, 2, x.data(), x.data(), 0, 3,
                          3, lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
      CHECK(all_poison(out.data(), out.size()));
      CHECK(all_poison(lam));
      CHECK(all_poison(par));
      const std::vector<unsigned char> xs = x.copy();
      CHECK(std::all_of(xs.begin(), xs.end(), [](unsigned char c) { return c == 0x11; }));
    }
}

TEST_CASE("mixup with batch 1 and odd batches works in every pairing", "[mixup]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0x313c6);
  for (fastmix_dtype d : kAllDtypes)
    for (fastmix_pairing pairing : kAllPairings)
      for (int64_t batch : {1, 3, 5, 9, 15, 17, 31}) {
        INFO(dtype_name(d) << " " << pairing_name(pairing) << " batch " << batch);
        const Shape s{batch, 13, 13};
        const size_t es = dtype_size(d);
        const size_t bytes = (size_t)span(s) * es;
        Bytes x(bytes, es, 0), out(bytes, 0);
        fill_random(d, x.data(), span(s), rng);
        const std::vector<unsigned char> x_before = x.copy(), out_before = out.copy();
        std::vector<float> lam((size_t)batch);
        std::vector<int64_t> par((size_t)batch);
        poison(lam), poison(par);
        REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, d, 0.4f, 0, pairing, rng(), rng(), x.data(),
                              out.data(), batch, s.elems, s.stride, lam.data(), par.data(),
                              nullptr) == FASTMIX_SUCCESS);
        if (batch == 1) CHECK(par[0] == 0);
        CHECK(is_permutation(par.data(), batch));
        if (pairing == FASTMIX_PAIRING_CYCLE) CHECK(is_single_cycle(par.data(), batch));
        CHECK(check_blend(d, s, x_before.data(), 0, out_before.data(), out.data(), bytes, 0,
                          lam.data(), par.data()) == "");
      }
}
