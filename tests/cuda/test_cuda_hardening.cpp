// CUDA hardening tests: every CUDA entry point captured in a graph
// and replayed; the device-seed entry points drawing afresh at every replay;
// several streams at once; corrupt partners and labels on the device with
// guard zones around every buffer; extreme alphas bitwise equal to the CPU.
// (Written without a GPU at hand: see docs/reliability.md for what has run.)
#include "cuda_util.hpp"

#include <fastmix/fastmix.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

// A device buffer with `guard` poisoned bytes before and after the payload;
// guards_intact() checks that nothing wrote into them.
class Guarded {
 public:
  static constexpr size_t kGuard = 4096;
  explicit Guarded(size_t bytes) : all_(kCuda, bytes + 2 * kGuard), bytes_(bytes) {}
  unsigned char *data() { return all_.data() + kGuard; }
  template <class T>
  T *as() {
    return reinterpret_cast<T *>(data());
  }
  void upload(const void *src) {
    FMT_CUDA(cudaMemcpy(data(), src, bytes_, cudaMemcpyHostToDevice));
  }
  std::vector<unsigned char> copy() {
    std::vector<unsigned char> h(bytes_);
    FMT_CUDA(cudaMemcpy(h.data(), data(), bytes_, cudaMemcpyDeviceToHost));
    return h;
  }
  bool guards_intact() {
    const std::vector<unsigned char> h = all_.copy();
    return all_poison(h.data(), kGuard) && all_poison(h.data() + kGuard + bytes_, kGuard);
  }

 private:
  Buffer all_;
  size_t bytes_;
};

// n random float32 samples of `elems` values (random_value()), logits
// ~ N(0, 3^2) for n rows of C classes, and labels in [0, C).
struct Inputs {
  std::vector<float> x, z;
  std::vector<int64_t> labels;
  Inputs(int64_t n, int64_t elems, int64_t C, std::mt19937_64 &rng)
      : x((size_t)(n * elems)), z((size_t)(n * C)), labels((size_t)n) {
    for (float &v : x) v = (float)random_value(FASTMIX_FLOAT32, rng);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (float &v : z) v = normal(rng);
    for (int64_t &y : labels) y = (int64_t)(rng() % C);
  }
};

}  // namespace

TEST_CASE("cuda graphs: sample, blend, cross-entropy and soft targets replay to the direct results",
          "[cuda][graph]") {
  FMT_SEEDED_RNG(0x6a01);
  const Stream stream;
  const int64_t n = 48, elems = 3 * 16 * 16 + 5, C = 1000;
  const Inputs in(n, elems, C, rng);
  const std::vector<float> hl = random_lambdas(n, rng);
  const std::vector<int64_t> hp = make_partners(PartnerKind::permutation, n, rng);
  Buffer x = to_device(kCuda, in.x), z = to_device(kCuda, in.z), y = to_device(kCuda, in.labels),
         l = to_device(kCuda, hl), p = to_device(kCuda, hp);
  Buffer lam(kCuda, n * 4), par(kCuda, n * 8), out(kCuda, in.x.size() * 4), loss(kCuda, n * 4),
      grad(kCuda, in.z.size() * 4), tg(kCuda, in.z.size() * 4);
  const uint64_t s = rng(), off = rng();
  struct Entry {
    const char *name;
    std::function<fastmix_status()> call;
    std::vector<Buffer *> outputs;
  };
  const std::vector<Entry> entries = {
      {"fastmix_sample",
       [&] {
         return fastmix_sample(FASTMIX_DEVICE_CUDA, 0.4f, 1, FASTMIX_PAIRING_CYCLE, s, off, n,
                               lam.as<float>(), par.as<int64_t>(), stream);
       },
       {&lam, &par}},
      {"fastmix_blend",
       [&] {
         return fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, x.data(), out.data(), n, elems,
                              elems, l.as<float>(), p.as<int64_t>(), stream);
       },
       {&out}},
      {"fastmix_cross_entropy",
       [&] {
         return fastmix_cross_entropy(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, z.data(), n, C, C,
                                      y.as<int64_t>(), l.as<float>(), p.as<int64_t>(),
                                      FASTMIX_REDUCTION_NONE, 0.1f, -100, loss.as<float>(),
                                      grad.data(), 1.0f, stream);
       },
       {&loss, &grad}},
      {"fastmix_soft_targets",
       [&] {
         return fastmix_soft_targets(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, y.as<int64_t>(),
                                     l.as<float>(), p.as<int64_t>(), n, C, 0.1f, tg.data(), C,
                                     stream);
       },
       {&tg}},
  };
  for (const Entry &e : entries) {
    INFO(e.name);
    for (Buffer *o : e.outputs) o->poison();
    REQUIRE(e.call() == FASTMIX_SUCCESS);
    FMT_CUDA(cudaStreamSynchronize(stream));
    std::vector<std::vector<unsigned char>> direct;
    for (Buffer *o : e.outputs) direct.push_back(o->copy());
    replay(
        stream, e.call, 3,
        [&] {
          for (Buffer *o : e.outputs) o->poison();
        },
        [&](int) {
          for (size_t k = 0; k < e.outputs.size(); ++k) CHECK(e.outputs[k]->copy() == direct[k]);
        });
  }
}

TEST_CASE("cuda device seed: bitwise the CPU's, and a replayed graph draws afresh each time",
          "[cuda][graph][device_seed]") {
  FMT_SEEDED_RNG(0x6a02);
  const Stream stream;
  each_dtype_and_place([&](fastmix_dtype d, bool in_place) {
    const Shape sh{40, 3 * 12 * 12 + 3, 3 * 12 * 12 + 3};
    const size_t bytes = (size_t)span(sh) * dtype_size(d);
    Buffer hx(kCpu, bytes, 0, 0);
    fill_random(d, hx.data(), span(sh), rng);
    const uint64_t s = rng(), off0 = rng(), inc = 1 + rng() % 5;
    Buffer x(kCuda, bytes), out(kCuda, bytes), lam(kCuda, sh.batch * 4), par(kCuda, sh.batch * 8),
        so(kCuda, 16);
    const uint64_t so_host[2] = {s, off0};
    so.upload(so_host);
    unsigned char *o = in_place ? x.data() : out.data();
    auto call = [&] {
      return fastmix_mixup_device_seed(FASTMIX_DEVICE_CUDA, d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION,
                                       so.as<uint64_t>(), inc, x.data(), o, sh.batch, sh.elems,
                                       sh.stride, lam.as<float>(), par.as<int64_t>(), stream);
    };
    replay(
        stream, call, 3,
        [&] {
          x.upload(hx.data());
          out.poison(), lam.poison(), par.poison();
        },
        [&](int launch) {
          // the CPU with the offset this launch must have used
          Buffer cx(kCpu, bytes, 0, 0), cout(kCpu, bytes);
          cx.upload(hx.data());
          std::vector<float> cl((size_t)sh.batch);
          std::vector<int64_t> cp((size_t)sh.batch);
          REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, d, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION, s,
                                off0 + (uint64_t)launch * inc, cx.data(),
                                in_place ? cx.data() : cout.data(), sh.batch, sh.elems, sh.stride,
                                cl.data(), cp.data(), nullptr) == FASTMIX_SUCCESS);
          const std::vector<unsigned char> got = in_place ? x.copy() : out.copy();
          CHECK(first_difference_nan_equal(d, got.data(), in_place ? cx.data() : cout.data(),
                                           span(sh)) == -1);
          CHECK(lam.copy_as<float>() == cl);
          CHECK(par.copy_as<int64_t>() == cp);
          const std::vector<uint64_t> now = so.copy_as<uint64_t>();
          CHECK(now[0] == s);
          CHECK(now[1] == off0 + (uint64_t)(launch + 1) * inc);
        });
  });
}

TEST_CASE("cuda cutmix device seed: a replayed graph draws afresh and equals the CPU",
          "[cuda][graph][device_seed][cutmix]") {
  FMT_SEEDED_RNG(0x6a05);
  const Stream stream;
  fastmix_mix_config cfg{};
  cfg.mixup_alpha = 0.8f, cfg.cutmix_alpha = 1.0f, cfg.prob = 0.9f, cfg.switch_prob = 0.5f;
  cfg.mode = FASTMIX_MIX_ELEM, cfg.pairing = FASTMIX_PAIRING_PERMUTATION, cfg.correct_lam = 1;
  each_dtype_and_place([&](fastmix_dtype d, bool in_place) {
    for (fastmix_layout layout : {FASTMIX_LAYOUT_NCHW, FASTMIX_LAYOUT_NHWC}) {
      INFO("layout " << (int)layout);
      const int64_t n = 24, c = 3, h = 20, w = 28, elems = c * h * w;
      const size_t bytes = (size_t)(n * elems) * dtype_size(d);
      Buffer hx(kCpu, bytes, 0, 0);
      fill_random(d, hx.data(), n * elems, rng);
      const uint64_t s = rng(), off0 = rng(), inc = 1 + rng() % 5;
      Buffer x(kCuda, bytes), out(kCuda, bytes), lam(kCuda, n * 4), par(kCuda, n * 8),
          box(kCuda, n * 16), so(kCuda, 16);
      const uint64_t so_host[2] = {s, off0};
      so.upload(so_host);
      unsigned char *o = in_place ? x.data() : out.data();
      auto call = [&] {
        return fastmix_cutmix_device_seed(FASTMIX_DEVICE_CUDA, d, &cfg, so.as<uint64_t>(), inc,
                                          layout, x.data(), o, n, c, h, w, elems, lam.as<float>(),
                                          par.as<int64_t>(), box.as<int32_t>(), stream);
      };
      replay(
          stream, call, 3,
          [&] {
            x.upload(hx.data());
            out.poison(), lam.poison(), par.poison(), box.poison();
          },
          [&](int launch) {
            Buffer cx(kCpu, bytes, 0, 0), cout(kCpu, bytes);
            cx.upload(hx.data());
            std::vector<float> cl((size_t)n);
            std::vector<int64_t> cp((size_t)n);
            std::vector<int32_t> cb((size_t)n * 4);
            REQUIRE(fastmix_cutmix(FASTMIX_DEVICE_CPU, d, &cfg, s, off0 + (uint64_t)launch * inc,
                                   layout, cx.data(), in_place ? cx.data() : cout.data(), n, c, h,
                                   w, elems, cl.data(), cp.data(), cb.data(),
                                   nullptr) == FASTMIX_SUCCESS);
            const std::vector<unsigned char> got = in_place ? x.copy() : out.copy();
            CHECK(first_difference(got.data(), in_place ? cx.data() : cout.data(), bytes) == -1);
            CHECK(lam.copy_as<float>() == cl);
            CHECK(par.copy_as<int64_t>() == cp);
            CHECK(box.copy_as<int32_t>() == cb);
            CHECK(so.copy_as<uint64_t>()[1] == off0 + (uint64_t)(launch + 1) * inc);
          });
    }
  });
}

TEST_CASE("cuda streams: the same calls on several streams at once equal the CPU",
          "[cuda][concurrency]") {
  FMT_SEEDED_RNG(0x6a03);
  constexpr int kStreams = 6;
  const bool sim = on_simulator();  // same calls, smaller batches
  const int64_t n = sim ? 16 : 64, elems = sim ? 3 * 8 * 8 : 3 * 32 * 32, C = 517;
  const Inputs in(n, elems, C, rng);
  Buffer x = to_device(kCuda, in.x), z = to_device(kCuda, in.z),
         y = to_device(kCuda, in.labels);  // shared, read only
  std::vector<cudaStream_t> streams(kStreams);
  std::vector<Buffer> out, lam, par, loss, grad;
  for (int k = 0; k < kStreams; ++k) {
    FMT_CUDA(cudaStreamCreateWithFlags(&streams[(size_t)k], cudaStreamNonBlocking));
    out.emplace_back(kCuda, in.x.size() * 4), lam.emplace_back(kCuda, n * 4),
        par.emplace_back(kCuda, n * 8), loss.emplace_back(kCuda, n * 4),
        grad.emplace_back(kCuda, in.z.size() * 4);
  }
  for (int round = 0; round < 3; ++round)
    for (int k = 0; k < kStreams; ++k) {
      cudaStream_t st = streams[(size_t)k];
      REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 1, kAllPairings[k % 3],
                            100 + (uint64_t)k, 7, x.data(), out[(size_t)k].data(), n, elems, elems,
                            lam[(size_t)k].as<float>(), par[(size_t)k].as<int64_t>(),
                            st) == FASTMIX_SUCCESS);
      REQUIRE(fastmix_cross_entropy(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, z.data(), n, C, C,
                                    y.as<int64_t>(), lam[(size_t)k].as<float>(),
                                    par[(size_t)k].as<int64_t>(), FASTMIX_REDUCTION_NONE, 0.0f,
                                    -100, loss[(size_t)k].as<float>(), grad[(size_t)k].data(), 1.0f,
                                    st) == FASTMIX_SUCCESS);
    }
  finish(kCuda);
  for (int k = 0; k < kStreams; ++k) {
    INFO("stream " << k);
    std::vector<float> co(in.x.size()), cl((size_t)n), closs((size_t)n), cg(in.z.size());
    std::vector<int64_t> cp((size_t)n);
    REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.4f, 1, kAllPairings[k % 3],
                          100 + (uint64_t)k, 7, in.x.data(), co.data(), n, elems, elems, cl.data(),
                          cp.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(first_difference_nan_equal(FASTMIX_FLOAT32, out[(size_t)k].copy().data(), co.data(),
                                     n * elems) == -1);
    CHECK(lam[(size_t)k].copy_as<float>() == cl);
    CHECK(par[(size_t)k].copy_as<int64_t>() == cp);
    REQUIRE(fastmix_cross_entropy(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, in.z.data(), n, C, C,
                                  in.labels.data(), cl.data(), cp.data(), FASTMIX_REDUCTION_NONE,
                                  0.0f, -100, closs.data(), cg.data(), 1.0f,
                                  nullptr) == FASTMIX_SUCCESS);
    const std::vector<float> gl = loss[(size_t)k].copy_as<float>();
    for (int64_t i = 0; i < n; ++i)
      CHECK(std::fabs(gl[(size_t)i] - closs[(size_t)i]) <=
            1e-5f * (std::fabs(closs[(size_t)i]) + 10.0f));
  }
  for (cudaStream_t st : streams) FMT_CUDA(cudaStreamDestroy(st));
}

TEST_CASE(
    "cuda faults: corrupt partners and labels make rows NaN, write nothing outside, and the next "
    "call works",
    "[cuda][errors]") {
  FMT_SEEDED_RNG(0x6a04);
  const int64_t n = 16, elems = 257, C = 33;
  std::vector<float> hx((size_t)(n * elems)), hz((size_t)(n * C));
  for (float &v : hx) v = (float)random_value(FASTMIX_FLOAT32, rng);
  for (float &v : hz) v = (float)(rng() % 1000) * 0.01f - 5.0f;
  std::vector<int64_t> partners = make_partners(PartnerKind::permutation, n, rng),
                       labels((size_t)n);
  for (int64_t &y : labels) y = (int64_t)(rng() % C);
  const std::vector<float> hl = random_lambdas(n, rng);
  std::vector<int64_t> bad_p(partners), bad_y(labels);
  bad_p[1] = -1, bad_p[4] = n, bad_p[7] = INT64_MIN, bad_p[9] = INT64_MAX;
  bad_y[2] = C, bad_y[5] = -7, bad_y[11] = INT64_MAX;
  Guarded x(hx.size() * 4), z(hz.size() * 4), l(n * 4), p(n * 8), y(n * 8), out(hx.size() * 4),
      loss(n * 4), grad(hz.size() * 4), tg(hz.size() * 4);
  x.upload(hx.data()), z.upload(hz.data()), l.upload(hl.data()), p.upload(bad_p.data()),
      y.upload(bad_y.data());
  REQUIRE(fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, x.data(), out.data(), n, elems, elems,
                        l.as<float>(), p.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
  REQUIRE(fastmix_cross_entropy(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, z.data(), n, C, C,
                                y.as<int64_t>(), l.as<float>(), p.as<int64_t>(),
                                FASTMIX_REDUCTION_NONE, 0.0f, -100, loss.as<float>(), grad.data(),
                                1.0f, nullptr) == FASTMIX_SUCCESS);
  REQUIRE(fastmix_soft_targets(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, y.as<int64_t>(), l.as<float>(),
                               p.as<int64_t>(), n, C, 0.0f, tg.data(), C,
                               nullptr) == FASTMIX_SUCCESS);
  finish(kCuda);  // no trap, no sticky error
  for (Guarded *g : {&x, &z, &l, &p, &y, &out, &loss, &grad, &tg}) CHECK(g->guards_intact());
  const std::vector<unsigned char> o = out.copy(), ls = loss.copy();
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const bool bad_partner = bad_p[(size_t)i] < 0 || bad_p[(size_t)i] >= n;
    int64_t nans = 0;
    for (int64_t j = 0; j < elems; ++j)
      nans += std::isnan(decode(FASTMIX_FLOAT32, o.data(), i * elems + j));
    if (bad_partner) CHECK(nans == elems);
    // a row's loss is NaN when its label, its partner or its partner's label is bad
    const bool bad_label = bad_y[(size_t)i] < 0 || bad_y[(size_t)i] >= C;
    const bool bad_row =
        bad_label || bad_partner ||
        (bad_y[(size_t)bad_p[(size_t)i]] < 0 || bad_y[(size_t)bad_p[(size_t)i]] >= C);
    float li;
    std::memcpy(&li, ls.data() + 4 * i, 4);
    if (bad_row)
      CHECK(std::isnan(li));
    else
      CHECK(std::isfinite(li));
  }
  // the next good call works and matches the CPU
  p.upload(partners.data()), y.upload(labels.data()),
      out.upload(std::vector<unsigned char>(hx.size() * 4, kPoison).data());
  REQUIRE(fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, x.data(), out.data(), n, elems, elems,
                        l.as<float>(), p.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
  finish(kCuda);
  std::vector<float> co(hx.size());
  REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, hx.data(), co.data(), n, elems, elems,
                        hl.data(), partners.data(), nullptr) == FASTMIX_SUCCESS);
  CHECK(first_difference_nan_equal(FASTMIX_FLOAT32, out.copy().data(), co.data(), n * elems) == -1);
  CHECK(out.guards_intact());
}

TEST_CASE("cuda edge: extreme alphas give bitwise the CPU's lambdas", "[cuda][sample]") {
  FMT_SEEDED_RNG(0x6a05);
  const int64_t n = 5000;
  Buffer lam(kCuda, n * 4), par(kCuda, n * 8);
  for (float alpha : {1e-3f, 1e-2f, 1e2f, 1e3f}) {
    CAPTURE(alpha);
    const uint64_t s = rng(), off = rng();
    REQUIRE(fastmix_sample(FASTMIX_DEVICE_CUDA, alpha, 0, FASTMIX_PAIRING_PERMUTATION, s, off, n,
                           lam.as<float>(), par.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
    finish(kCuda);
    std::vector<float> cl((size_t)n);
    std::vector<int64_t> cp((size_t)n);
    REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, 0, FASTMIX_PAIRING_PERMUTATION, s, off, n,
                           cl.data(), cp.data(), nullptr) == FASTMIX_SUCCESS);
    CHECK(lam.copy_as<float>() == cl);
    CHECK(par.copy_as<int64_t>() == cp);
  }
}
