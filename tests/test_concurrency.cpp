// Concurrency: every entry point called from many threads at once,
// with different seeds, shared read-only inputs and separate outputs, gives
// bitwise the single-threaded result; fastmix_last_error() stays per thread
// while other threads fail and succeed around it.
//
// Catch2 v2 assertions are not thread-safe: the workers only count
// mismatches, the main thread checks the counts.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace fmt_test;

namespace {

constexpr int kThreads = 8;
constexpr int kIters = 6;

// One call of an entry point for "thread" t: its status byte, then its
// outputs, as bytes.
using Call = std::function<std::vector<unsigned char>(int t)>;

template <class T>
void append(std::vector<unsigned char> &v, const T *p, size_t count) {
  const unsigned char *b = reinterpret_cast<const unsigned char *>(p);
  v.insert(v.end(), b, b + count * sizeof(T));
}

struct Calls {
  // shared, read-only inputs
  int64_t batch = 32, elems = 2048 + 3;  // 32 x 2051: above the OpenMP grain
  int64_t ce_batch = 48, classes = 1000 + 7;
  std::vector<unsigned char> x32, x16, logits16;
  std::vector<float> logits32, lambdas, ce_lambdas;
  std::vector<int64_t> partners, labels, ce_partners;
  std::vector<std::pair<std::string, Call>> all;

  explicit Calls(std::mt19937_64 &rng) {
    const int64_t n = batch * elems;
    x32.resize((size_t)n * 4), x16.resize((size_t)n * 2);
    fill_random(FASTMIX_FLOAT32, x32.data(), n, rng);
    fill_random(FASTMIX_FLOAT16, x16.data(), n, rng);
    lambdas = random_lambdas(batch, rng);
    partners = make_partners(PartnerKind::random_map, batch, rng);
    std::normal_distribution<float> normal(0.0f, 4.0f);
    logits32.resize((size_t)(ce_batch * classes));
    for (float &z : logits32) z = normal(rng);
    logits16.resize(logits32.size() * 2);
    for (size_t k = 0; k < logits32.size(); ++k)
      encode(FASTMIX_BFLOAT16, logits16.data(), (int64_t)k, logits32[k]);
    for (int64_t i = 0; i < ce_batch; ++i) labels.push_back((int64_t)(rng() % (uint64_t)classes));
    labels[3] = -100;  // ignored
    ce_lambdas = random_lambdas(ce_batch, rng);
    ce_partners = make_partners(PartnerKind::permutation, ce_batch, rng);

    all.emplace_back("fastmix_sample", [this](int t) {
      const int64_t b = 1000 + t;
      std::vector<float> lam((size_t)b);
      std::vector<int64_t> par((size_t)b);
      poison(lam), poison(par);
      std::vector<unsigned char> r{(unsigned char)fastmix_sample(
          FASTMIX_DEVICE_CPU, 0.2f + 0.1f * (float)t, t & 1, kAllPairings[t % 3], 77 + (uint64_t)t,
          (uint64_t)t * 3, b, lam.data(), par.data(), nullptr)};
      append(r, lam.data(), lam.size()), append(r, par.data(), par.size());
      return r;
    });
    all.emplace_back("fastmix_blend", [this](int t) {
      const fastmix_dtype d = t & 1 ? FASTMIX_FLOAT16 : FASTMIX_FLOAT32;
      const std::vector<unsigned char> &x = t & 1 ? x16 : x32;
      std::vector<unsigned char> out(x.size(), kPoison);
      // per thread: a rotation of the shared partners and lambdas
      std::vector<int64_t> par(partners);
      std::rotate(par.begin(), par.begin() + t % batch, par.end());
      std::vector<float> lam(lambdas);
      std::rotate(lam.begin(), lam.begin() + (2 * t) % batch, lam.end());
      std::vector<unsigned char> r{(unsigned char)fastmix_blend(FASTMIX_DEVICE_CPU, d, x.data(),
                                                                out.data(), batch, elems, elems,
                                                                lam.data(), par.data(), nullptr)};
      append(r, out.data(), out.size());
      return r;
    });
    all.emplace_back("fastmix_blend in place", [this](int t) {
      std::vector<unsigned char> xy(x16);  // the thread's own copy
      std::vector<int64_t> par(partners);
      std::rotate(par.begin(), par.begin() + (3 * t) % batch, par.end());
      std::vector<unsigned char> r{
          (unsigned char)fastmix_blend(FASTMIX_DEVICE_CPU, FASTMIX_BFLOAT16, xy.data(), xy.data(),
                                       batch, elems, elems, lambdas.data(), par.data(), nullptr)};
      append(r, xy.data(), xy.size());
      return r;
    });
    all.emplace_back("fastmix_mixup", [this](int t) {
      std::vector<unsigned char> out(x32.size(), kPoison);
      std::vector<float> lam((size_t)batch);
      std::vector<int64_t> par((size_t)batch);
      poison(lam), poison(par);
      std::vector<unsigned char> r{(unsigned char)fastmix_mixup(
          FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.4f, 1, kAllPairings[t % 3], 1234 + (uint64_t)t, 9,
          x32.data(), out.data(), batch, elems, elems, lam.data(), par.data(), nullptr)};
      append(r, out.data(), out.size()), append(r, lam.data(), lam.size()),
          append(r, par.data(), par.size());
      return r;
    });
    all.emplace_back("fastmix_cross_entropy", [this](int t) {
      const bool f32 = t % 2 == 0, mix = t % 3 != 0;
      const fastmix_reduction red = t % 4 == 1   ? FASTMIX_REDUCTION_NONE
                                    : t % 4 == 2 ? FASTMIX_REDUCTION_SUM
                                                 : FASTMIX_REDUCTION_MEAN;
      const fastmix_dtype d = f32 ? FASTMIX_FLOAT32 : FASTMIX_BFLOAT16;
      const void *z = f32 ? (const void *)logits32.data() : (const void *)logits16.data();
      std::vector<unsigned char> grad((size_t)(ce_batch * classes) * dtype_size(d), kPoison);
      std::vector<float> loss((size_t)ce_batch);
      poison(loss);
      std::vector<unsigned char> r{(unsigned char)fastmix_cross_entropy(
          FASTMIX_DEVICE_CPU, d, z, ce_batch, classes, classes, labels.data(),
          mix ? ce_lambdas.data() : nullptr, mix ? ce_partners.data() : nullptr, red,
          0.05f * (float)(t % 3), -100, loss.data(), grad.data(), 1.0f + (float)t, nullptr)};
      append(r, loss.data(), loss.size()), append(r, grad.data(), grad.size());
      return r;
    });
    all.emplace_back("fastmix_soft_targets", [this](int t) {
      std::vector<int64_t> lab(labels);
      lab[3] = t % classes;  // no ignore_index in soft targets
      std::vector<float> tg((size_t)(ce_batch * classes));
      poison(tg);
      std::vector<unsigned char> r{(unsigned char)fastmix_soft_targets(
          FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, lab.data(), ce_lambdas.data(), ce_partners.data(),
          ce_batch, classes, 0.01f * (float)t, tg.data(), classes, nullptr)};
      append(r, tg.data(), tg.size());
      return r;
    });
    all.emplace_back("fastmix_sample_device_seed", [](int t) {
      const int64_t b = 700 + 3 * t;
      std::vector<float> lam((size_t)b);
      std::vector<int64_t> par((size_t)b);
      poison(lam), poison(par);
      uint64_t so[2] = {55 + (uint64_t)t, 1000 + (uint64_t)t};
      std::vector<unsigned char> r{(unsigned char)fastmix_sample_device_seed(
          FASTMIX_DEVICE_CPU, 0.3f, 0, kAllPairings[(t + 1) % 3], so, 1 + (uint64_t)t, b,
          lam.data(), par.data(), nullptr)};
      append(r, lam.data(), lam.size()), append(r, par.data(), par.size()), append(r, so, 2);
      return r;
    });
    all.emplace_back("fastmix_mixup_device_seed", [this](int t) {
      std::vector<unsigned char> out(x16.size(), kPoison);
      std::vector<float> lam((size_t)batch);
      std::vector<int64_t> par((size_t)batch);
      poison(lam), poison(par);
      uint64_t so[2] = {99 + (uint64_t)t, (uint64_t)t};
      std::vector<unsigned char> r{(unsigned char)fastmix_mixup_device_seed(
          FASTMIX_DEVICE_CPU, FASTMIX_FLOAT16, 1.0f, 0, FASTMIX_PAIRING_PERMUTATION, so, 1,
          x16.data(), out.data(), batch, elems, elems, lam.data(), par.data(), nullptr)};
      append(r, out.data(), out.size()), append(r, lam.data(), lam.size()),
          append(r, par.data(), par.size()), append(r, so, 2);
      return r;
    });
    all.emplace_back("status_string, version, last_error", [](int t) {
      std::vector<unsigned char> r{0};
      const std::string s = std::string(fastmix_status_string((fastmix_status)(t % 8))) + "|" +
                            std::to_string(fastmix_version());
      r.insert(r.end(), s.begin(), s.end());
      return r;
    });
  }
};

// Runs fn(t) on kThreads threads that start together; returns when all end.
void run_together(const std::function<void(int)> &fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      fn(t);
    });
  for (std::thread &th : threads) th.join();
}

}  // namespace

TEST_CASE("concurrency: each entry point from many threads equals the single-threaded result",
          "[concurrency]") {
  FMT_SEEDED_RNG(0xc0c0);
  const Calls calls(rng);
  for (const auto &entry : calls.all) {
    INFO(entry.first);
    std::vector<std::vector<unsigned char>> ref;
    for (int t = 0; t < kThreads; ++t) {
      ref.push_back(entry.second(t));
      REQUIRE(ref.back()[0] == FASTMIX_SUCCESS);
      REQUIRE(entry.second(t) == ref.back());  // deterministic on one thread
    }
    for (int t = 1; t < kThreads; ++t) CHECK(ref[(size_t)t] != ref[0]);  // the threads do differ
    std::atomic<int> mismatches{0};
    run_together([&](int t) {
      for (int k = 0; k < kIters; ++k)
        if (entry.second(t) != ref[(size_t)t]) mismatches.fetch_add(1);
    });
    CHECK(mismatches.load() == 0);
  }
}

TEST_CASE("concurrency: all entry points at once, in a different order on each thread",
          "[concurrency]") {
  FMT_SEEDED_RNG(0xc0c1);
  const Calls calls(rng);
  const size_t n = calls.all.size();
  std::vector<std::vector<std::vector<unsigned char>>> ref(n);
  for (size_t e = 0; e < n; ++e)
    for (int t = 0; t < kThreads; ++t) ref[e].push_back(calls.all[e].second(t));
  std::vector<std::atomic<int>> mismatches(n);
  run_together([&](int t) {
    for (int k = 0; k < 2; ++k)
      for (size_t j = 0; j < n; ++j) {
        const size_t e =
            (j * (size_t)(2 * t + 1) + (size_t)t) % n;  // odd stride: every entry, own order
        if (calls.all[e].second(t) != ref[e][(size_t)t]) mismatches[e].fetch_add(1);
      }
  });
  for (size_t e = 0; e < n; ++e) {
    INFO(calls.all[e].first);
    CHECK(mismatches[e].load() == 0);
  }
}

TEST_CASE("concurrency: fastmix_last_error stays per thread while other threads fail and succeed",
          "[concurrency][errors]") {
  std::atomic<int> wrong{0}, empty{0};
  run_together([&](int t) {
    float lam[4];
    int64_t par[4];
    for (int k = 0; k < 2000; ++k) {
      // A failure whose message carries a number unique to (thread, k) ...
      const int64_t bad = -(int64_t)(1000000 * (t + 1) + k);
      if (fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_FLIP, 0, 0, bad, lam, par,
                         nullptr) != FASTMIX_ERROR_INVALID_VALUE)
        wrong.fetch_add(1);
      // ... then a successful call, which leaves the message alone ...
      if (fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_FLIP, 0, 0, 4, lam, par,
                         nullptr) != FASTMIX_SUCCESS)
        wrong.fetch_add(1);
      // ... while the other threads write their own messages.
      const std::string msg = fastmix_last_error();
      if (msg.empty()) empty.fetch_add(1);
      if (!has_word(msg, std::to_string(bad).substr(1))) wrong.fetch_add(1);
    }
  });
  CHECK(empty.load() == 0);
  CHECK(wrong.load() == 0);
}
