// fastmix_sample_device_seed and fastmix_mixup_device_seed on the CPU backend
// (issue 6): seed and offset read from memory give bitwise the draw of
// fastmix_sample / fastmix_mixup with the same values; the offset advances by
// offset_increment (mod 2^64) after every successful call, batch 0 included;
// a failed call writes nothing, seed_offset included.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#include <cstring>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

template <class E>
E bad_enum(int v) {
  E e;
  std::memcpy(&e, &v, sizeof e);
  return e;
}

}  // namespace

TEST_CASE(
    "device seed: sample equals fastmix_sample with the stored seed and offset, then advances",
    "[device_seed]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xd5ee);
  for (fastmix_pairing pr : kAllPairings)
    for (int fold : {0, 1})
      for (int64_t batch : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{17}, int64_t{300}}) {
        INFO(pairing_name(pr) << " fold " << fold << " batch " << batch);
        const uint64_t s = rng(), off = rng(), inc = rng() % 3 == 0 ? 0 : rng();
        const float alpha = 0.05f + (float)(rng() % 1000) * 0.01f;
        CAPTURE(s, off, inc, alpha);
        std::vector<float> lam_ref((size_t)batch), lam((size_t)batch);
        std::vector<int64_t> par_ref((size_t)batch), par((size_t)batch);
        poison(lam), poison(par);
        REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, pr, s, off, batch, lam_ref.data(),
                               par_ref.data(), nullptr) == FASTMIX_SUCCESS);
        uint64_t so[2] = {s, off};
        REQUIRE(fastmix_sample_device_seed(FASTMIX_DEVICE_CPU, alpha, fold, pr, so, inc, batch,
                                           lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
        CHECK(std::memcmp(lam.data(), lam_ref.data(), lam.size() * 4) == 0);
        CHECK(par == par_ref);
        CHECK(so[0] == s);
        CHECK(so[1] == off + inc);  // unsigned: wraps mod 2^64
      }
}

TEST_CASE("device seed: mixup equals fastmix_mixup bitwise, every dtype, in and out of place",
          "[device_seed]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xd5ef);
  for (fastmix_dtype d : kAllDtypes)
    for (bool in_place : {false, true})
      for (const Shape &sh : {Shape{5, 7, 9}, Shape{33, 3 * 8 * 8, 3 * 8 * 8}, Shape{1, 4, 4}}) {
        INFO(dtype_name(d) << (in_place ? " in place" : " out of place") << " batch " << sh.batch
                           << " elems " << sh.elems << " stride " << sh.stride);
        const size_t bytes = (size_t)span(sh) * dtype_size(d);
        Bytes x(bytes, 0, 0), x_ref(bytes, 0, 0), out(bytes), out_ref(bytes);
        fill_random(d, x.data(), span(sh), rng);
        std::memcpy(x_ref.data(), x.data(), bytes);
        const uint64_t s = rng(), off = rng(), inc = 1;
        std::vector<float> lam((size_t)sh.batch), lam_ref((size_t)sh.batch);
        std::vector<int64_t> par((size_t)sh.batch), par_ref((size_t)sh.batch);
        poison(lam), poison(par);
        void *o_ref = in_place ? (void *)x_ref.data() : out_ref.data();
        void *o = in_place ? (void *)x.data() : out.data();
        REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, d, 0.4f, 1, FASTMIX_PAIRING_CYCLE, s, off,
                              x_ref.data(), o_ref, sh.batch, sh.elems, sh.stride, lam_ref.data(),
                              par_ref.data(), nullptr) == FASTMIX_SUCCESS);
        uint64_t so[2] = {s, off};
        REQUIRE(fastmix_mixup_device_seed(FASTMIX_DEVICE_CPU, d, 0.4f, 1, FASTMIX_PAIRING_CYCLE, so,
                                          inc, x.data(), o, sh.batch, sh.elems, sh.stride,
                                          lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
        CHECK(std::memcmp(o, o_ref, bytes) == 0);
        CHECK(std::memcmp(lam.data(), lam_ref.data(), lam.size() * 4) == 0);
        CHECK(par == par_ref);
        CHECK(so[0] == s);
        CHECK(so[1] == off + 1);
        // and the output is the blend reference (not only equal to fastmix_mixup)
        if (!in_place) {
          const std::string err = check_blend(d, sh, x.data(), 0, out_ref.data(), out.data(), bytes,
                                              0, lam.data(), par.data());
          CHECK(err == "");
        }
      }
}

TEST_CASE("device seed: repeated calls walk the offsets (what a replayed graph does)",
          "[device_seed]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng = make_rng(0xd5f0);
  const int64_t batch = 24, elems = 50;
  std::vector<float> x((size_t)(batch * elems));
  for (float &v : x) v = (float)random_value(FASTMIX_FLOAT32, rng);
  const uint64_t s = rng(), off0 = ~uint64_t{0} - 2;  // crosses the 2^64 wrap
  const uint64_t inc = 1;
  uint64_t so[2] = {s, off0};
  std::vector<std::vector<float>> lams;
  for (int k = 0; k < 6; ++k) {
    CAPTURE(k);
    std::vector<float> out((size_t)(batch * elems)), out_ref(out.size()), lam((size_t)batch),
        lam_ref((size_t)batch);
    std::vector<int64_t> par((size_t)batch), par_ref((size_t)batch);
    poison(out), poison(lam), poison(par);
    REQUIRE(fastmix_mixup_device_seed(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.8f, 0,
                                      FASTMIX_PAIRING_PERMUTATION, so, inc, x.data(), out.data(),
                                      batch, elems, elems, lam.data(), par.data(),
                                      nullptr) == FASTMIX_SUCCESS);
    REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.8f, 0, FASTMIX_PAIRING_PERMUTATION,
                          s, off0 + (uint64_t)k, x.data(), out_ref.data(), batch, elems, elems,
                          lam_ref.data(), par_ref.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(std::memcmp(out.data(), out_ref.data(), out.size() * 4) == 0);
    CHECK(std::memcmp(lam.data(), lam_ref.data(), lam.size() * 4) == 0);
    CHECK(par == par_ref);
    CHECK(so[1] == off0 + (uint64_t)(k + 1));
    lams.push_back(lam);
  }
  // fresh draws: no two steps give the same lambdas
  for (size_t a = 0; a < lams.size(); ++a)
    for (size_t b = a + 1; b < lams.size(); ++b) CHECK(lams[a] != lams[b]);
}

TEST_CASE("device seed: batch 0 writes no output but still advances the offset", "[device_seed]") {
  float lam[2];
  int64_t par[2];
  float x[2] = {1, 2}, out[2];
  std::memset(lam, kPoison, sizeof lam), std::memset(par, kPoison, sizeof par),
      std::memset(out, kPoison, sizeof out);
  uint64_t so[2] = {7, 40};
  REQUIRE(fastmix_sample_device_seed(FASTMIX_DEVICE_CPU, 0.4f, 1, FASTMIX_PAIRING_CYCLE, so, 5, 0,
                                     lam, par, nullptr) == FASTMIX_SUCCESS);
  CHECK(so[0] == 7);
  CHECK(so[1] == 45);
  REQUIRE(fastmix_mixup_device_seed(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.4f, 1,
                                    FASTMIX_PAIRING_CYCLE, so, 5, x, out, 0, 2, 2, lam, par,
                                    nullptr) == FASTMIX_SUCCESS);
  CHECK(so[1] == 50);
  CHECK(all_poison(lam, sizeof lam));
  CHECK(all_poison(par, sizeof par));
  CHECK(all_poison(out, sizeof out));
}

TEST_CASE("device seed: bad arguments fail, name the parameter and change nothing",
          "[device_seed][errors]") {
  const int64_t batch = 6, elems = 4;
  alignas(16) unsigned char arena[1024];
  struct Case {
    const char *what, *param;
    int which;  // 0: NULL, 1: misaligned, 2: in lambdas, 3: in partners, 4: in x, 5: in out,
                // 6: bad alpha, 7: bad pairing, 8: bad batch, 9: bad dtype (mixup), 10: bad device
  };
  const Case cases[] = {{"NULL seed_offset", "seed_offset", 0},
                        {"misaligned seed_offset", "seed_offset", 1},
                        {"seed_offset inside lambdas", "seed_offset", 2},
                        {"seed_offset inside partners", "seed_offset", 3},
                        {"seed_offset inside x", "seed_offset", 4},
                        {"seed_offset inside out", "seed_offset", 5},
                        {"alpha NaN", "alpha", 6},
                        {"pairing 9", "pairing", 7},
                        {"batch -1", "batch", 8},
                        {"dtype 3", "dtype", 9},
                        {"device 5", "device", 10}};
  for (bool mixup : {false, true})
    for (const Case &c : cases) {
      if (!mixup && (c.which == 4 || c.which == 5 || c.which == 9)) continue;
      INFO((mixup ? "fastmix_mixup_device_seed: " : "fastmix_sample_device_seed: ") << c.what);
      // Layout in the arena: lambdas [0, 24), partners [64, 112), x [128, 224), out [256, 352),
      // seed_offset at 512 unless the case moves it.
      std::memset(arena, kPoison, sizeof arena);
      float *lam = reinterpret_cast<float *>(arena);
      int64_t *par = reinterpret_cast<int64_t *>(arena + 64);
      float *x = reinterpret_cast<float *>(arena + 128);
      float *out = reinterpret_cast<float *>(arena + 256);
      for (int k = 0; k < batch * elems; ++k) x[k] = (float)k;
      uint64_t *so = reinterpret_cast<uint64_t *>(arena + 512);
      switch (c.which) {
        case 0:
          so = nullptr;
          break;
        case 1:
          so = reinterpret_cast<uint64_t *>(arena + 516);
          break;
        case 2:
          so = reinterpret_cast<uint64_t *>(arena + 8);
          break;
        case 3:
          so = reinterpret_cast<uint64_t *>(arena + 64 + 40);
          break;
        case 4:
          so = reinterpret_cast<uint64_t *>(arena + 128 + 88);
          break;
        case 5:
          so = reinterpret_cast<uint64_t *>(arena + 256);
          break;
        default:
          break;
      }
      if (so && c.which != 1) so[0] = 11, so[1] = 22;
      if (c.which == 1) {
        const uint64_t v[2] = {11, 22};
        std::memcpy(arena + 516, v, sizeof v);
      }
      std::vector<unsigned char> before(arena, arena + sizeof arena);
      const float alpha = c.which == 6 ? std::nanf("") : 0.4f;
      const fastmix_pairing pr =
          c.which == 7 ? bad_enum<fastmix_pairing>(9) : FASTMIX_PAIRING_PERMUTATION;
      const int64_t b = c.which == 8 ? -1 : batch;
      const fastmix_dtype d = c.which == 9 ? bad_enum<fastmix_dtype>(3) : FASTMIX_FLOAT32;
      const fastmix_device dev = c.which == 10 ? bad_enum<fastmix_device>(5) : FASTMIX_DEVICE_CPU;
      const fastmix_status st =
          mixup ? fastmix_mixup_device_seed(dev, d, alpha, 1, pr, so, 1, x, out, b, elems, elems,
                                            lam, par, nullptr)
                : fastmix_sample_device_seed(dev, alpha, 1, pr, so, 1, b, lam, par, nullptr);
      CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
      const std::string msg = fastmix_last_error();
      INFO("fastmix_last_error(): " << msg);
      CHECK(has_word(msg, c.param));
      CHECK(has_word(msg, mixup ? "fastmix_mixup_device_seed" : "fastmix_sample_device_seed"));
      CHECK(first_difference(before.data(), arena, sizeof arena) == -1);  // nothing written
    }
}

TEST_CASE("device seed: FASTMIX_DEVICE_CUDA with host memory changes nothing",
          "[device_seed][errors]") {
  float lam[4], x[8] = {0}, out[8];
  int64_t par[4];
  std::memset(lam, kPoison, sizeof lam), std::memset(par, kPoison, sizeof par),
      std::memset(out, kPoison, sizeof out);
  uint64_t so[2] = {1, 2};
  // NO_DEVICE without a GPU (or a CUDA-less build), INVALID_VALUE (host pointer) with one.
  fastmix_status st = fastmix_sample_device_seed(
      FASTMIX_DEVICE_CUDA, 0.4f, 1, FASTMIX_PAIRING_CYCLE, so, 1, 4, lam, par, nullptr);
  CHECK((st == FASTMIX_ERROR_NO_DEVICE || st == FASTMIX_ERROR_INVALID_VALUE));
  CHECK(std::string(fastmix_last_error()) != "");
  st = fastmix_mixup_device_seed(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 1,
                                 FASTMIX_PAIRING_CYCLE, so, 1, x, out, 4, 2, 2, lam, par, nullptr);
  CHECK((st == FASTMIX_ERROR_NO_DEVICE || st == FASTMIX_ERROR_INVALID_VALUE));
  CHECK(so[0] == 1);
  CHECK(so[1] == 2);
  CHECK(all_poison(lam, sizeof lam));
  CHECK(all_poison(par, sizeof par));
  CHECK(all_poison(out, sizeof out));
}
