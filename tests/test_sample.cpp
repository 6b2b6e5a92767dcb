// fastmix_sample: on every device the shape of the draw (partners of the
// right kind, lambdas in range, never NaN) and the draw bitwise the CPU's; on
// the CPU reproducibility and the counter property (lambdas depend only on
// seed, offset and the sample index).  The distributions themselves are
// tested in test_stats.cpp.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <cfloat>
#include <limits>
#include <vector>

using namespace fmt_test;

namespace {

struct Draw {
  std::vector<float> lam;
  std::vector<int64_t> par;
};

// One draw on `dev` into poisoned buffers with one element more than the
// batch, which must stay poison.
Draw draw(float alpha, int fold, fastmix_pairing pairing, uint64_t seed, uint64_t offset,
          int64_t batch, fastmix_device dev = FASTMIX_DEVICE_CPU) {
  Buffer lb(dev, (size_t)(batch + 1) * sizeof(float)),
      pb(dev, (size_t)(batch + 1) * sizeof(int64_t));
  const fastmix_status st = fastmix_sample(dev, alpha, fold, pairing, seed, offset, batch,
                                           lb.as<float>(), pb.as<int64_t>(), nullptr);
  INFO(device_name(dev) << ": " << fastmix_last_error());
  REQUIRE(st == FASTMIX_SUCCESS);
  finish(dev);
  Draw d{lb.copy_as<float>(), pb.copy_as<int64_t>()};
  CHECK(all_poison(&d.lam.back(), sizeof(float)));
  CHECK(all_poison(&d.par.back(), sizeof(int64_t)));
  d.lam.pop_back(), d.par.pop_back();
  return d;
}

}  // namespace

TEST_CASE("sample: every pairing gives partners of its kind, for odd and boundary batch sizes",
          "[sample][devices]") {
  FMT_SEEDED_RNG(0x5a3);
  const bool sim = on_simulator();
  std::vector<int64_t> batches;
  for (int64_t n = 1; n <= 70; ++n) batches.push_back(n);
  // around the sizes where the Feistel domain (a power of 4) changes
  for (int64_t n : {127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536,
                    65537, 1000003})
    if (!sim || n < 5000) batches.push_back(n);  // the 65536 boundary: see the bitwise test below
  for (fastmix_device dev : test_devices())
    for (int64_t n : batches)
      for (fastmix_pairing pairing : kAllPairings)
        for (int rep = 0; rep < (n < 100 && !sim ? 4 : 1); ++rep) {
          const uint64_t s = rng(), off = rng();
          INFO(device_name(dev) << " " << pairing_name(pairing) << " batch " << n << " seed " << s
                                << " offset " << off);
          const Draw d = draw(0.4f, (rep + (int)n) % 2, pairing, s, off, n, dev);
          REQUIRE(is_permutation(d.par.data(), n));
          if (n == 1) CHECK(d.par[0] == 0);
          if (pairing == FASTMIX_PAIRING_FLIP) {
            bool flip = true;
            for (int64_t i = 0; i < n; ++i) flip = flip && d.par[(size_t)i] == n - 1 - i;
            CHECK(flip);
          }
          if (pairing == FASTMIX_PAIRING_ROLL) {
            bool roll = true;
            for (int64_t i = 0; i < n; ++i) roll = roll && d.par[(size_t)i] == (i + n - 1) % n;
            CHECK(roll);
          }
          if (pairing == FASTMIX_PAIRING_CYCLE) {
            CHECK(is_single_cycle(d.par.data(), n));
            bool no_fixed = true, no_swap = true;
            for (int64_t i = 0; i < n; ++i) {
              no_fixed = no_fixed && (n == 1 || d.par[(size_t)i] != i);
              no_swap = no_swap && (n <= 2 || d.par[(size_t)d.par[(size_t)i]] != i);
            }
            CHECK(no_fixed);
            CHECK(no_swap);
          }
        }
}

TEST_CASE("sample: lambdas lie in [0, 1] ([1/2, 1] folded) and are never NaN, for any alpha",
          "[sample][devices]") {
  FMT_SEEDED_RNG(0x5a4);
  const float alphas[] = {std::numeric_limits<float>::denorm_min(),
                          1e-30f,
                          1e-6f,
                          1e-3f,
                          0.05f,
                          0.4f,
                          0.999999f,
                          1.0f,
                          1.000001f,
                          3.0f,
                          1e3f,
                          1e6f,
                          1e30f,
                          FLT_MAX};
  const int64_t n = on_simulator() ? 2000 : 20000;
  for (fastmix_device dev : test_devices())
    for (float alpha : alphas)
      for (int fold : {0, 1}) {
        INFO(device_name(dev) << " alpha " << alpha << " fold " << fold);
        const Draw d = draw(alpha, fold, FASTMIX_PAIRING_PERMUTATION, rng(), rng(), n, dev);
        int bad = 0;
        for (float l : d.lam)
          if (!(l >= (fold ? 0.5f : 0.0f) && l <= 1.0f)) ++bad;
        CHECK(bad == 0);
      }
}

TEST_CASE("sample: the same arguments give bitwise the same draw", "[sample]") {
  FMT_SEEDED_RNG(0x5a5);
  for (fastmix_pairing pairing : kAllPairings)
    for (int64_t n : {1, 7, 1000, 300001}) {
      const uint64_t s = rng(), off = rng();
      INFO(pairing_name(pairing) << " batch " << n);
      const Draw a = draw(0.3f, 0, pairing, s, off, n);
      const Draw b = draw(0.3f, 0, pairing, s, off, n);
      CHECK(same_bits(a.lam, b.lam));
      CHECK(a.par == b.par);
    }
}

TEST_CASE("sample: lambdas depend only on (seed, offset, i): not on batch or pairing", "[sample]") {
  FMT_SEEDED_RNG(0x5a6);
  for (float alpha : {0.01f, 0.4f, 1.0f, 7.5f})
    for (int fold : {0, 1}) {
      const uint64_t s = rng(), off = rng();
      INFO("alpha " << alpha << " fold " << fold << " seed " << s << " offset " << off);
      const Draw big = draw(alpha, fold, FASTMIX_PAIRING_PERMUTATION, s, off, 70001);
      for (int64_t n : {1, 2, 3, 7, 33, 1000, 4097, 70000})
        for (fastmix_pairing pairing : kAllPairings) {
          const Draw small = draw(alpha, fold, pairing, s, off, n);
          CHECK(first_difference(small.lam.data(), big.lam.data(), (size_t)n * sizeof(float)) ==
                -1);
        }
    }
}

TEST_CASE("sample: folding maps lambda to max(lambda, 1 - lambda)", "[sample]") {
  FMT_SEEDED_RNG(0x5a7);
  for (float alpha : {0.05f, 0.4f, 1.0f, 4.0f, 300.0f}) {
    const uint64_t s = rng(), off = rng();
    INFO("alpha " << alpha);
    const Draw plain = draw(alpha, 0, FASTMIX_PAIRING_CYCLE, s, off, 10000);
    const Draw folded = draw(alpha, 1, FASTMIX_PAIRING_CYCLE, s, off, 10000);
    CHECK(plain.par == folded.par);
    int bad = 0;
    for (size_t i = 0; i < plain.lam.size(); ++i) {
      const double l = plain.lam[i];
      const double want = l > 0.5 ? l : 1.0 - l;
      // Both are rounded float computations of the same draw: a few float units.
      if (!(std::fabs((double)folded.lam[i] - want) <= 4e-7)) ++bad;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("sample: different seeds or offsets give different draws (all 64 bits count)",
          "[sample]") {
  FMT_SEEDED_RNG(0x5a8);
  const uint64_t s = rng(), off = rng();
  CAPTURE(s, off);
  const int64_t n = 4096;
  const Draw base = draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s, off, n);
  const Draw others[] = {
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s, off + 1, n),
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s, off ^ (UINT64_C(1) << 32), n),
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s, off ^ (UINT64_C(1) << 63), n),
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s + 1, off, n),
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s ^ (UINT64_C(1) << 32), off, n),
      draw(0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s ^ (UINT64_C(1) << 63), off, n),
  };
  for (const Draw &o : others) {
    int same_lam = 0, same_par = 0;
    for (int64_t i = 0; i < n; ++i) {
      same_lam += base.lam[(size_t)i] == o.lam[(size_t)i];
      same_par += base.par[(size_t)i] == o.par[(size_t)i];
    }
    // Independent draws: equal lambdas are rare (for Beta(0.4, 0.4) only the
    // float values 0 and 1 carry noticeable mass, about 1e-3 each); equal
    // partners have a Poisson(1) count.
    CHECK(same_lam < 20);
    CHECK(same_par < 15);
  }
}

TEST_CASE("sample with batch 0 succeeds and writes nothing", "[sample][devices]") {
  for (fastmix_device dev : test_devices())
    for (fastmix_pairing pairing : kAllPairings) {
      INFO(device_name(dev) << " " << pairing_name(pairing));
      const Draw d = draw(0.4f, 0, pairing, 1, 2, 0, dev);  // checks the poison itself
      CHECK(d.lam.empty());
    }
}

TEST_CASE("sample on every device is bitwise the CPU's draw, grid-stride sizes included",
          "[sample][devices]") {
  FMT_SEEDED_RNG(0xc0a1);
  // On CUDA, sizes past one grid of 480 blocks of 256 threads run the
  // kernel's grid-stride loop; 130001 does so on the simulator's 30 SMs.
  // The big sizes run for a quarter of the settings, and on the simulator
  // (about 1.7 million thread-instructions a second, a draw taking hundreds)
  // for one setting.
  const bool sim = on_simulator();
  std::vector<int64_t> sizes = {0, 1, 2, 3, 7, 33, 1000, 4097, 65537, (1 << 20) + 7};
  if (sim) sizes = {0, 1, 2, 3, 7, 33, 1000, 4097, 65536, 130001};
  int round = 0;
  for (fastmix_device dev : test_devices())
    for (fastmix_pairing pairing : kAllPairings)
      for (int fold : {0, 1})
        for (float alpha : {1e-3f, 0.01f, 0.4f, 1.0f, 3.0f, 1000.0f})
          for (int64_t n : sizes) {
            const bool chosen = sim ? pairing == FASTMIX_PAIRING_CYCLE && fold == 1 && alpha == 0.4f
                                    : round++ % 4 == 0;
            if (n > 5000 && !chosen) continue;
            const uint64_t s = rng(), off = rng();
            INFO(device_name(dev) << " " << pairing_name(pairing) << " fold " << fold << " alpha "
                                  << alpha << " batch " << n << " seed " << s << " offset " << off);
            const Draw cpu = draw(alpha, fold, pairing, s, off, n);
            const Draw got = draw(alpha, fold, pairing, s, off, n, dev);
            CHECK(same_bits(got.lam, cpu.lam));
            CHECK(got.par == cpu.par);
          }
}

#if FASTMIX_TEST_CUDA
// The CUDA draw runs the rejection trials of each gamma several at a time, one
// lane each, and takes the first accepted; where none of a round is accepted
// it runs further rounds.  These batches are searched on the host (with the
// serial trial of kernels/math/sampler.cuh) so that they hold a sample one of
// whose gammas needs more than 8 trials, past the first round however many
// lanes a sample gets (at most 16: 8 trials of each gamma a round), and the
// draw, from a seed value and from a seed in device memory, must still be
// bitwise the CPU backend's.  The batch sizes run every launch geometry of the
// draw: 16, 8 and 4 lanes per sample and one thread per sample (the sizes past
// what is in flight at once: the simulator has 30 SMs, a GPU may have more).
#include "../kernels/math/sampler.cuh"

namespace {

// The trials the serial loop runs for the gamma whose trial t uses Philox
// block first + 2t (kMaxTrials + 1: none accepted).
uint32_t serial_trials(const fm::BetaParams &bp, uint64_t seed, uint64_t offset, uint32_t index,
                       uint32_t first) {
  float lg = 0.0f;
  for (uint32_t t = 0; t < fm::kMaxTrials; ++t)
    if (fm::gamma_trial(bp, fm::philox(seed, first + 2u * t, index, offset), &lg)) return t + 1;
  return fm::kMaxTrials + 1;
}

// The most trials either gamma of any sample of the batch needs.
uint32_t most_trials(const fm::BetaParams &bp, uint64_t seed, uint64_t offset, int64_t batch) {
  uint32_t most = 0;
  for (int64_t i = 0; i < batch; ++i)
    for (uint32_t first : {1u, 2u}) {
      const uint32_t t = serial_trials(bp, seed, offset, (uint32_t)i, first);
      most = t > most ? t : most;
    }
  return most;
}

}  // namespace

TEST_CASE("sample: draws whose trials run past the first round are bitwise the CPU's",
          "[sample][devices]") {
  FMT_SEEDED_RNG(0x5a9);
  std::vector<int64_t> sizes = {1, 2, 3, 33, 1000, 1025, 4097, 8000};
  if (!on_simulator())
    for (int64_t n : {6000, 20000, 40000}) sizes.push_back(n);
  int combo = 0;
  for (fastmix_device dev : test_devices())
    for (int64_t n : sizes)
      for (float alpha : {0.01f, 0.4f, 1.0f, 50.0f}) {
        // Every pairing and fold in turn; one alpha per size for the biggest.
        const fastmix_pairing pairing = kAllPairings[combo % 4];
        const int fold = combo / 4 % 2;
        ++combo;
        if (n > 5000 && alpha != 0.4f) continue;
        const fm::BetaParams bp = fm::make_beta_params(alpha, fold);
        const uint64_t s = rng();
        uint64_t off = rng();
        while (most_trials(bp, s, off, n) <= 8) ++off;
        INFO(device_name(dev) << " " << pairing_name(pairing) << " fold " << fold << " alpha "
                              << alpha << " batch " << n << " seed " << s << " offset " << off);
        REQUIRE(most_trials(bp, s, off, n) > 8);
        const Draw got = draw(alpha, fold, pairing, s, off, n, dev);
        check_is_cpu_draw(got.lam, got.par, alpha, fold, pairing, s, off);
        Buffer so = to_device(dev, std::vector<uint64_t>{s, off});
        Buffer lam(dev, (size_t)n * sizeof(float)), par(dev, (size_t)n * sizeof(int64_t));
        REQUIRE(fastmix_sample_device_seed(dev, alpha, fold, pairing, so.as<uint64_t>(), 1, n,
                                           lam.as<float>(), par.as<int64_t>(),
                                           nullptr) == FASTMIX_SUCCESS);
        finish(dev);
        check_is_cpu_draw(lam.copy_as<float>(), par.copy_as<int64_t>(), alpha, fold, pairing, s,
                          off);
      }
}
#endif
