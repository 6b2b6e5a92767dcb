// fastmix_mixup on every device: bitwise the same lambdas, partners and output
// as fastmix_sample followed by fastmix_blend on that device, the draw bitwise
// the CPU's, and the output equal to the independent float32 reference;
// batch 0 and batch 1 in every pairing.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {
constexpr int64_t kGuard = 3;
}  // namespace

TEST_CASE("mixup is sample + blend, bitwise, draws the CPU's lambdas and equals the reference",
          "[mixup][devices][racecheck]") {
  FMT_SEEDED_RNG(0x313c5);
  const float alphas[] = {0.2f, 1.0f, 5.0f, 0.01f};
  std::vector<Shape> shapes = {Shape{1, 1, 1},
                               Shape{1, 17, 20},
                               Shape{2, 3, 3},
                               Shape{3, 17, 19},
                               Shape{7, 1000, 1000},
                               Shape{33, 1031, 1034},
                               Shape{64, 3 * 32 * 32, 3 * 32 * 32 + 2}};
  // The simulator: a vector, a scalar-edged and a many-sample shape, one fold
  // setting per shape (both across the run).
  const bool sim = on_simulator();
  if (sim)
    shapes = {Shape{1, 1, 1}, Shape{3, 17, 19}, Shape{33, 1031, 1034},
              Shape{64, 3 * 8 * 8, 3 * 8 * 8 + 1}};
  int round = 0;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_pairing pairing : kAllPairings)
        for (int fold : {0, 1})
          for (const Shape &s : shapes)
            if (!sim || (fold + (int)pairing + s.batch) % 2 == 0)
              for (bool in_place : {false, true})
                for (int mis : {0, 1, 2}) {
                  // x and out: 0 aligned; 1 off 16-byte alignment by different amounts
                  // (1 and 3 elements); 2 both off by one element, where odd strides put
                  // each partner at another offset than its sample (realigned vectors).
                  if (in_place && mis == 2) continue;  // same pointer: as mis == 1
                  const int64_t x_mis = mis ? 1 : 0, out_mis = mis == 1 ? 3 : mis;
                  const float alpha = alphas[round++ % 4];
                  const uint64_t lib_seed = rng(), offset = rng() >> (rng() % 64);
                  INFO(device_name(dev)
                       << " " << dtype_name(d) << " " << pairing_name(pairing) << " fold " << fold
                       << " alpha " << alpha << " batch " << s.batch << " elems " << s.elems
                       << " stride " << s.stride << (in_place ? " in place" : " out of place")
                       << " misaligned " << mis << " seed " << lib_seed << " offset " << offset);
                  const size_t es = dtype_size(d);
                  const int64_t total = span(s) + 2 * kGuard;
                  const size_t bytes = (size_t)total * es, g = (size_t)kGuard * es;
                  std::vector<unsigned char> x_before(bytes);
                  fill_random(d, x_before.data(), total, rng);
                  Buffer x1(dev, bytes, (size_t)x_mis * es), x2(dev, bytes, (size_t)x_mis * es);
                  x1.upload(x_before.data()), x2.upload(x_before.data());
                  Buffer o1(dev, bytes, (size_t)out_mis * es), o2(dev, bytes, (size_t)out_mis * es);
                  unsigned char *out1 = in_place ? x1.data() + g : o1.data() + g;
                  unsigned char *out2 = in_place ? x2.data() + g : o2.data() + g;
                  Buffer l1(dev, (size_t)s.batch * 4), l2(dev, (size_t)s.batch * 4);
                  Buffer p1(dev, (size_t)s.batch * 8), p2(dev, (size_t)s.batch * 8);

                  REQUIRE(fastmix_mixup(dev, d, alpha, fold, pairing, lib_seed, offset,
                                        x1.data() + g, out1, s.batch, s.elems, s.stride,
                                        l1.as<float>(), p1.as<int64_t>(),
                                        nullptr) == FASTMIX_SUCCESS);
                  REQUIRE(fastmix_sample(dev, alpha, fold, pairing, lib_seed, offset, s.batch,
                                         l2.as<float>(), p2.as<int64_t>(),
                                         nullptr) == FASTMIX_SUCCESS);
                  REQUIRE(fastmix_blend(dev, d, x2.data() + g, out2, s.batch, s.elems, s.stride,
                                        l2.as<float>(), p2.as<int64_t>(),
                                        nullptr) == FASTMIX_SUCCESS);
                  finish(dev);
                  const std::vector<float> lam1 = l1.copy_as<float>(), lam2 = l2.copy_as<float>();
                  const std::vector<int64_t> par1 = p1.copy_as<int64_t>(),
                                             par2 = p2.copy_as<int64_t>();
                  CHECK(first_difference(lam1.data(), lam2.data(), lam1.size() * 4) == -1);
                  CHECK(par1 == par2);
                  check_is_cpu_draw(lam1, par1, alpha, fold, pairing, lib_seed, offset);
                  const std::vector<unsigned char> now1 = in_place ? x1.copy() : o1.copy();
                  const std::vector<unsigned char> now2 = in_place ? x2.copy() : o2.copy();
                  CHECK(first_difference(now1.data(), now2.data(), bytes) == -1);
                  // The draw itself is checked by [sample] and [stats]; here: a valid one.
                  bool lam_ok = true;
                  for (float l : lam1) lam_ok = lam_ok && l >= (fold ? 0.5f : 0.0f) && l <= 1.0f;
                  CHECK(lam_ok);
                  CHECK(is_permutation(par1.data(), s.batch));
                  if (!in_place)
                    CHECK(first_difference(x1.copy().data(), x_before.data(), bytes) == -1);
                  const std::vector<unsigned char> out_before =
                      in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
                  CHECK(check_blend(d, s, x_before.data(), kGuard, out_before.data(), now1.data(),
                                    bytes, kGuard, lam1.data(), par1.data()) == "");
                }
}

TEST_CASE("mixup with batch 0 succeeds and writes nothing", "[mixup][devices]") {
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_pairing pairing : kAllPairings) {
        INFO(device_name(dev) << " " << dtype_name(d) << " " << pairing_name(pairing));
        Buffer x(dev, 32, 0, 0x11), out(dev, 32), lam(dev, 16), par(dev, 32);
        CHECK(fastmix_mixup(dev, d, 0.4f, 0, pairing, 1, 2, x.data(), out.data(), 0, 3, 3,
                            lam.as<float>(), par.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        CHECK(fastmix_mixup(dev, d, 0.4f, 1, pairing, 1, 2, x.data(), x.data(), 0, 3, 3,
                            lam.as<float>(), par.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        CHECK(all_poison(out.copy()));
        CHECK(all_poison(lam.copy()));
        CHECK(all_poison(par.copy()));
        CHECK(all_bytes(x.copy(), 0x11));
      }
}

TEST_CASE("mixup with batch 1 and odd batches works in every pairing", "[mixup][devices]") {
  FMT_SEEDED_RNG(0x313c6);
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (fastmix_pairing pairing : kAllPairings)
        for (int64_t batch : {1, 3, 5, 9, 15, 17, 31}) {
          INFO(device_name(dev) << " " << dtype_name(d) << " " << pairing_name(pairing) << " batch "
                                << batch);
          const Shape s{batch, 13, 13};
          const size_t es = dtype_size(d);
          const size_t bytes = (size_t)span(s) * es;
          std::vector<unsigned char> x_before(bytes);
          fill_random(d, x_before.data(), span(s), rng);
          Buffer x(dev, bytes, es), out(dev, bytes);
          x.upload(x_before.data());
          Buffer lb(dev, (size_t)batch * 4), pb(dev, (size_t)batch * 8);
          REQUIRE(fastmix_mixup(dev, d, 0.4f, 0, pairing, rng(), rng(), x.data(), out.data(), batch,
                                s.elems, s.stride, lb.as<float>(), pb.as<int64_t>(),
                                nullptr) == FASTMIX_SUCCESS);
          finish(dev);
          const std::vector<float> lam = lb.copy_as<float>();
          const std::vector<int64_t> par = pb.copy_as<int64_t>();
          if (batch == 1) CHECK(par[0] == 0);
          CHECK(is_permutation(par.data(), batch));
          if (pairing == FASTMIX_PAIRING_CYCLE) CHECK(is_single_cycle(par.data(), batch));
          const std::vector<unsigned char> out_before(bytes, kPoison), now = out.copy();
          CHECK(check_blend(d, s, x_before.data(), 0, out_before.data(), now.data(), bytes, 0,
                            lam.data(), par.data()) == "");
        }
}

TEST_CASE(
    "in place with batches too large for a tile of vectors: blend, mixup and device-seed mixup",
    "[mixup][devices]") {
  FMT_SEEDED_RNG(0x313c7);
  // In place, CUDA stages a strip of every sample in shared memory: a tile of
  // vectors takes at least 8 bytes of lambda and partner and four 16-byte
  // vectors per sample (72 bytes).  A batch past opt-in / 40 leaves room only
  // for a strip of elements (8 + 4 bytes per sample at most).
  const int64_t batch = (int64_t)(smem_optin() / 40) + 37;
  for (fastmix_device dev : test_devices())
    for (fastmix_dtype d : kAllDtypes)
      for (const Shape &s : {Shape{batch, 8, 8}, Shape{batch, 5, 5}}) {
        INFO(device_name(dev) << " " << dtype_name(d) << " batch " << s.batch << " elems "
                              << s.elems << " stride " << s.stride);
        const size_t es = dtype_size(d), bytes = (size_t)span(s) * es;
        std::vector<unsigned char> x_before(bytes);
        fill_random(d, x_before.data(), span(s), rng);

        // fastmix_blend in place, partners that are no permutation
        const std::vector<float> lam = random_lambdas(s.batch, rng);
        const std::vector<int64_t> par = make_partners(PartnerKind::random_map, s.batch, rng);
        Buffer lb = to_device(dev, lam), pb = to_device(dev, par);
        Buffer x(dev, bytes, es);
        x.upload(x_before.data());
        REQUIRE(fastmix_blend(dev, d, x.data(), x.data(), s.batch, s.elems, s.stride,
                              lb.as<float>(), pb.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        CHECK(check_blend(d, s, x_before.data(), 0, x_before.data(), x.copy().data(), bytes, 0,
                          lam.data(), par.data()) == "");

        // fastmix_mixup in place: the CPU's draw, and the reference blend of it
        const uint64_t lib_seed = rng(), offset = rng();
        Buffer xm(dev, bytes, es), lm(dev, (size_t)s.batch * 4), pm(dev, (size_t)s.batch * 8);
        xm.upload(x_before.data());
        REQUIRE(fastmix_mixup(dev, d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, lib_seed, offset,
                              xm.data(), xm.data(), s.batch, s.elems, s.stride, lm.as<float>(),
                              pm.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        const std::vector<float> lam_m = lm.copy_as<float>();
        const std::vector<int64_t> par_m = pm.copy_as<int64_t>();
        check_is_cpu_draw(lam_m, par_m, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, lib_seed, offset);
        const std::vector<unsigned char> mixed = xm.copy();
        CHECK(check_blend(d, s, x_before.data(), 0, x_before.data(), mixed.data(), bytes, 0,
                          lam_m.data(), par_m.data()) == "");

        // fastmix_mixup_device_seed in place with the same seed and offset: bitwise the same
        Buffer xs(dev, bytes, es), ls(dev, (size_t)s.batch * 4), ps(dev, (size_t)s.batch * 8);
        xs.upload(x_before.data());
        Buffer so = to_device(dev, std::vector<uint64_t>{lib_seed, offset});
        REQUIRE(fastmix_mixup_device_seed(dev, d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION,
                                          so.as<uint64_t>(), 1, xs.data(), xs.data(), s.batch,
                                          s.elems, s.stride, ls.as<float>(), ps.as<int64_t>(),
                                          nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        CHECK(first_difference(xs.copy().data(), mixed.data(), bytes) == -1);
        CHECK(same_bits(ls.copy_as<float>(), lam_m));
        CHECK(ps.copy_as<int64_t>() == par_m);
      }
}

TEST_CASE("mixup of a batch that takes the walk along the partner chains is sample + blend",
          "[mixup][devices]") {
  FMT_SEEDED_RNG(0x313c6);
  const fastmix_dtype d = FASTMIX_FLOAT32;
  const Shape s = walk_shape(d);
  const size_t es = dtype_size(d);
  const size_t bytes = (size_t)span(s) * es;
  for (fastmix_device dev : test_devices()) {
    const uint64_t lib_seed = rng(), offset = rng() >> 8;
    INFO(device_name(dev) << " batch " << s.batch << " elems " << s.elems << " seed " << lib_seed
                          << " offset " << offset);
    std::vector<unsigned char> x_before(bytes);
    fill_random(d, x_before.data(), span(s), rng);
    Buffer x(dev, bytes), o1(dev, bytes), o2(dev, bytes);
    x.upload(x_before.data());
    Buffer l1(dev, (size_t)s.batch * 4), l2(dev, (size_t)s.batch * 4);
    Buffer p1(dev, (size_t)s.batch * 8), p2(dev, (size_t)s.batch * 8);
    REQUIRE(fastmix_mixup(dev, d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, lib_seed, offset, x.data(),
                          o1.data(), s.batch, s.elems, s.stride, l1.as<float>(), p1.as<int64_t>(),
                          nullptr) == FASTMIX_SUCCESS);
    REQUIRE(fastmix_sample(dev, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, lib_seed, offset, s.batch,
                           l2.as<float>(), p2.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
    REQUIRE(fastmix_blend(dev, d, x.data(), o2.data(), s.batch, s.elems, s.stride, l2.as<float>(),
                          p2.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
    finish(dev);
    const std::vector<float> lam = l1.copy_as<float>();
    const std::vector<int64_t> par = p1.copy_as<int64_t>();
    CHECK(first_difference(lam.data(), l2.copy_as<float>().data(), lam.size() * 4) == -1);
    CHECK(par == p2.copy_as<int64_t>());
    const std::vector<unsigned char> now = o1.copy();
    CHECK(first_difference(now.data(), o2.copy().data(), bytes) == -1);
    const std::vector<unsigned char> poison(bytes, kPoison);
    CHECK(check_blend(d, s, x_before.data(), 0, poison.data(), now.data(), bytes, 0, lam.data(),
                      par.data()) == "");
  }
}
