// fastmix_sample_device_seed and fastmix_mixup_device_seed on every device:
// the seed and offset read from memory (device memory on CUDA) give bitwise
// the draw and the output of fastmix_sample / fastmix_mixup with the same
// values on that device, the CPU's draw, and the blend reference; the offset
// advances by offset_increment (mod 2^64) after every successful call, batch
// 0 included, and stays as it was with increment 0; a failed call writes
// nothing, seed_offset included.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <cstring>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

// seed_offset in a buffer of `dev` (device memory on CUDA).
Buffer seed_offset_on(fastmix_device dev, uint64_t seed, uint64_t offset) {
  return to_device(dev, std::vector<uint64_t>{seed, offset});
}

}  // namespace

TEST_CASE(
    "device seed: sample equals fastmix_sample with the stored seed and offset, then advances",
    "[device_seed][devices]") {
  FMT_SEEDED_RNG(0xd5ee);
  int round = 0;
  for (fastmix_device dev : test_devices())
    for (fastmix_pairing pr : kAllPairings)
      for (int fold : {0, 1})
        for (int64_t batch : {1, 2, 3, 17, 300, 1000}) {
          INFO(device_name(dev) << " " << pairing_name(pr) << " fold " << fold << " batch "
                                << batch);
          // increment 0 every fifth call (so with every batch): seed_offset is only read
          const uint64_t s = rng(), off = rng(), inc = round++ % 5 == 0 ? 0 : rng();
          const float alpha = 0.05f + (float)(rng() % 1000) * 0.01f;
          CAPTURE(s, off, inc, alpha);
          Buffer lam_ref(dev, (size_t)batch * 4), par_ref(dev, (size_t)batch * 8),
              lam(dev, (size_t)batch * 4), par(dev, (size_t)batch * 8);
          REQUIRE(fastmix_sample(dev, alpha, fold, pr, s, off, batch, lam_ref.as<float>(),
                                 par_ref.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
          Buffer so = seed_offset_on(dev, s, off);
          REQUIRE(fastmix_sample_device_seed(dev, alpha, fold, pr, so.as<uint64_t>(), inc, batch,
                                             lam.as<float>(), par.as<int64_t>(),
                                             nullptr) == FASTMIX_SUCCESS);
          finish(dev);
          const std::vector<float> l = lam.copy_as<float>();
          const std::vector<int64_t> p = par.copy_as<int64_t>();
          CHECK(same_bits(l, lam_ref.copy_as<float>()));
          CHECK(p == par_ref.copy_as<int64_t>());
          check_is_cpu_draw(l, p, alpha, fold, pr, s, off);
          const std::vector<uint64_t> now = so.copy_as<uint64_t>();
          CHECK(now[0] == s);
          CHECK(now[1] == off + inc);  // unsigned: wraps mod 2^64
        }
}

TEST_CASE(
    "device seed: mixup equals fastmix_mixup bitwise and the blend reference, every dtype, in and "
    "out of place",
    "[device_seed][devices]") {
  FMT_SEEDED_RNG(0xd5ef);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (bool in_place : {false, true})
        // rows of 16-byte vectors or not (stride 9, or 4 fp16/bf16 elements)
        for (const Shape &sh : {Shape{5, 7, 9}, Shape{33, 3 * 8 * 8, 3 * 8 * 8}, Shape{1, 4, 4}})
          for (int64_t mis : {0, 1}) {  // x misaligned by `mis` elements, out aligned
            INFO(device_name(dev) << " " << dtype_name(d)
                                  << (in_place ? " in place" : " out of place") << " batch "
                                  << sh.batch << " elems " << sh.elems << " stride " << sh.stride
                                  << " x+" << mis);
            const size_t es = dtype_size(d), bytes = (size_t)span(sh) * es;
            std::vector<unsigned char> x_before(bytes);
            fill_random(d, x_before.data(), span(sh), rng);
            Buffer x(dev, bytes, (size_t)mis * es), x_ref(dev, bytes, (size_t)mis * es),
                out(dev, bytes), out_ref(dev, bytes);
            x.upload(x_before.data()), x_ref.upload(x_before.data());
            const uint64_t s = rng(), off = rng(), inc = 1;
            Buffer lam(dev, (size_t)sh.batch * 4), par(dev, (size_t)sh.batch * 8),
                lam_ref(dev, (size_t)sh.batch * 4), par_ref(dev, (size_t)sh.batch * 8);
            void *o_ref = in_place ? x_ref.data() : out_ref.data();
            void *o = in_place ? x.data() : out.data();
            REQUIRE(fastmix_mixup(dev, d, 0.4f, 1, FASTMIX_PAIRING_CYCLE, s, off, x_ref.data(),
                                  o_ref, sh.batch, sh.elems, sh.stride, lam_ref.as<float>(),
                                  par_ref.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
            Buffer so = seed_offset_on(dev, s, off);
            REQUIRE(fastmix_mixup_device_seed(dev, d, 0.4f, 1, FASTMIX_PAIRING_CYCLE,
                                              so.as<uint64_t>(), inc, x.data(), o, sh.batch,
                                              sh.elems, sh.stride, lam.as<float>(),
                                              par.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
            finish(dev);
            const std::vector<unsigned char> got = in_place ? x.copy() : out.copy();
            const std::vector<unsigned char> want = in_place ? x_ref.copy() : out_ref.copy();
            CHECK(first_difference(got.data(), want.data(), bytes) == -1);
            const std::vector<float> l = lam.copy_as<float>();
            const std::vector<int64_t> p = par.copy_as<int64_t>();
            CHECK(same_bits(l, lam_ref.copy_as<float>()));
            CHECK(p == par_ref.copy_as<int64_t>());
            check_is_cpu_draw(l, p, 0.4f, 1, FASTMIX_PAIRING_CYCLE, s, off);
            const std::vector<uint64_t> now = so.copy_as<uint64_t>();
            CHECK(now[0] == s);
            CHECK(now[1] == off + 1);
            if (!in_place) CHECK(x.copy() == x_before);
            // and the output is the blend reference (not only equal to fastmix_mixup)
            const std::vector<unsigned char> out_before =
                in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
            CHECK(check_blend(d, sh, x_before.data(), 0, out_before.data(), got.data(), bytes, 0,
                              l.data(), p.data()) == "");
          }
}

TEST_CASE("device seed: repeated calls walk the offsets (what a replayed graph does)",
          "[device_seed][devices]") {
  FMT_SEEDED_RNG(0xd5f0);
  const int64_t batch = 24, elems = 50;
  for (fastmix_device dev : test_devices()) {
    INFO(device_name(dev));
    std::vector<float> xh((size_t)(batch * elems));
    for (float &v : xh) v = (float)random_value(FASTMIX_FLOAT32, rng);
    Buffer x = to_device(dev, xh);
    const uint64_t s = rng(), off0 = ~uint64_t{0} - 2;  // crosses the 2^64 wrap
    const uint64_t inc = 1;
    Buffer so = seed_offset_on(dev, s, off0);
    std::vector<std::vector<float>> lams;
    for (int k = 0; k < 6; ++k) {
      CAPTURE(k);
      const size_t n = xh.size() * 4;
      Buffer out(dev, n), out_ref(dev, n), lam(dev, (size_t)batch * 4),
          lam_ref(dev, (size_t)batch * 4), par(dev, (size_t)batch * 8),
          par_ref(dev, (size_t)batch * 8);
      REQUIRE(fastmix_mixup_device_seed(dev, FASTMIX_FLOAT32, 0.8f, 0, FASTMIX_PAIRING_PERMUTATION,
                                        so.as<uint64_t>(), inc, x.data(), out.data(), batch, elems,
                                        elems, lam.as<float>(), par.as<int64_t>(),
                                        nullptr) == FASTMIX_SUCCESS);
      REQUIRE(fastmix_mixup(dev, FASTMIX_FLOAT32, 0.8f, 0, FASTMIX_PAIRING_PERMUTATION, s,
                            off0 + (uint64_t)k, x.data(), out_ref.data(), batch, elems, elems,
                            lam_ref.as<float>(), par_ref.as<int64_t>(),
                            nullptr) == FASTMIX_SUCCESS);
      finish(dev);
      CHECK(out.copy() == out_ref.copy());
      const std::vector<float> l = lam.copy_as<float>();
      CHECK(same_bits(l, lam_ref.copy_as<float>()));
      CHECK(par.copy_as<int64_t>() == par_ref.copy_as<int64_t>());
      CHECK(so.copy_as<uint64_t>()[1] == off0 + (uint64_t)(k + 1));
      lams.push_back(l);
    }
    // fresh draws: no two steps give the same lambdas
    for (size_t a = 0; a < lams.size(); ++a)
      for (size_t b = a + 1; b < lams.size(); ++b) CHECK(lams[a] != lams[b]);
  }
}

TEST_CASE("device seed: batch 0 writes no output but still advances the offset",
          "[device_seed][devices]") {
  for (fastmix_device dev : test_devices()) {
    INFO(device_name(dev));
    Buffer lam(dev, 8), par(dev, 16), out(dev, 8);
    Buffer x = to_device(dev, std::vector<float>{1, 2});
    Buffer so = seed_offset_on(dev, 7, 40);
    REQUIRE(fastmix_sample_device_seed(dev, 0.4f, 1, FASTMIX_PAIRING_CYCLE, so.as<uint64_t>(), 5, 0,
                                       lam.as<float>(), par.as<int64_t>(),
                                       nullptr) == FASTMIX_SUCCESS);
    finish(dev);
    CHECK(so.copy_as<uint64_t>() == std::vector<uint64_t>{7, 45});
    REQUIRE(fastmix_mixup_device_seed(dev, FASTMIX_FLOAT32, 0.4f, 1, FASTMIX_PAIRING_CYCLE,
                                      so.as<uint64_t>(), 5, x.data(), out.data(), 0, 2, 2,
                                      lam.as<float>(), par.as<int64_t>(),
                                      nullptr) == FASTMIX_SUCCESS);
    finish(dev);
    CHECK(so.copy_as<uint64_t>() == std::vector<uint64_t>{7, 50});
    CHECK(all_poison(lam.copy()));
    CHECK(all_poison(par.copy()));
    CHECK(all_poison(out.copy()));
  }
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
