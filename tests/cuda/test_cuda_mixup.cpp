// What only the CUDA backend has (the cases both backends share are in
// tests/test_*.cpp): a full-size batch, non-default streams, managed memory,
// partners out of range on the device, CUDA graph capture, host pointers
// refused.  Results are compared with the CPU backend and the independent
// reference of test_util.hpp.
#include "cuda_util.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace fmt_test;

namespace {

constexpr int64_t kGuard = 4;  // elements before and after the batch

std::string describe(fastmix_dtype d, const Shape &s, int64_t x_mis, int64_t out_mis,
                     bool in_place) {
  std::ostringstream o;
  o << dtype_name(d) << " batch " << s.batch << " elems " << s.elems << " stride " << s.stride
    << " x+" << x_mis << " out+" << out_mis << (in_place ? " in place" : " out of place");
  return o.str();
}

// One blend (or mixup when `draw`) on the GPU and on the CPU with the same
// buffers; compares them and the GPU result against the reference.
struct Run {
  fastmix_dtype dtype;
  Shape shape;
  int64_t x_mis, out_mis;  // elements past 256-byte alignment
  bool in_place;
  PartnerKind kind;  // blend only
  bool mixup = false;
  float alpha = 0.4f;
  int fold = 0;
  fastmix_pairing pairing = FASTMIX_PAIRING_PERMUTATION;
  bool reference = true;  // also check against the float64-derived reference
};

void run_and_compare(const Run &r, std::mt19937_64 &rng, cudaStream_t stream = nullptr) {
  const size_t es = dtype_size(r.dtype);
  const int64_t total = span(r.shape) + 2 * kGuard;
  const size_t bytes = (size_t)total * es, g = (size_t)kGuard * es;
  const int64_t n = r.shape.batch;
  Buffer hx(kCpu, bytes, (size_t)r.x_mis * es, 0);
  fill_random(r.dtype, hx.data(), total, rng);
  const std::vector<unsigned char> x_before = hx.copy();
  // One element more than the batch (never NULL, also for batch 0): never read, and
  // for mixup never written.
  std::vector<float> lam = random_lambdas(n + 1, rng);
  std::vector<int64_t> par = make_partners(r.kind, n, rng);
  par.push_back(-7);
  const uint64_t seed = rng(), offset = rng();
  INFO("seed " << seed << " offset " << offset);
  if (r.mixup) poison(lam), poison(par);

  // CPU
  Buffer hout(kCpu, bytes, (size_t)r.out_mis * es);
  std::vector<float> cpu_lam = lam;
  std::vector<int64_t> cpu_par = par;
  unsigned char *cx = hx.data() + g, *cout = r.in_place ? cx : hout.data() + g;
  fastmix_status st = r.mixup
                          ? fastmix_mixup(FASTMIX_DEVICE_CPU, r.dtype, r.alpha, r.fold, r.pairing,
                                          seed, offset, cx, cout, n, r.shape.elems, r.shape.stride,
                                          cpu_lam.data(), cpu_par.data(), nullptr)
                          : fastmix_blend(FASTMIX_DEVICE_CPU, r.dtype, cx, cout, n, r.shape.elems,
                                          r.shape.stride, cpu_lam.data(), cpu_par.data(), nullptr);
  INFO("CPU: " << fastmix_last_error());
  REQUIRE(st == FASTMIX_SUCCESS);
  const std::vector<unsigned char> cpu_result = r.in_place ? hx.copy() : hout.copy();

  // GPU
  Buffer dx(kCuda, bytes, (size_t)r.x_mis * es), dout(kCuda, bytes, (size_t)r.out_mis * es);
  dx.upload(x_before.data());
  Buffer dlam = to_device(kCuda, lam), dpar = to_device(kCuda, par);
  unsigned char *gx = dx.data() + g, *gout = r.in_place ? gx : dout.data() + g;
  st = r.mixup ? fastmix_mixup(FASTMIX_DEVICE_CUDA, r.dtype, r.alpha, r.fold, r.pairing, seed,
                               offset, gx, gout, n, r.shape.elems, r.shape.stride, dlam.as<float>(),
                               dpar.as<int64_t>(), stream)
               : fastmix_blend(FASTMIX_DEVICE_CUDA, r.dtype, gx, gout, n, r.shape.elems,
                               r.shape.stride, dlam.as<float>(), dpar.as<int64_t>(), stream);
  INFO("CUDA: " << fastmix_last_error());
  REQUIRE(st == FASTMIX_SUCCESS);
  finish(kCuda);
  const std::vector<unsigned char> gpu_result = r.in_place ? dx.copy() : dout.copy();
  const std::vector<float> gpu_lam = dlam.copy_as<float>();
  const std::vector<int64_t> gpu_par = dpar.copy_as<int64_t>();

  CHECK(first_difference(gpu_lam.data(), cpu_lam.data(), cpu_lam.size() * sizeof(float)) == -1);
  CHECK(gpu_par == cpu_par);
  const int64_t diff =
      first_difference_nan_equal(r.dtype, gpu_result.data(), cpu_result.data(), total);
  std::ostringstream where;
  if (diff >= 0)
    where << "first difference at element " << diff << " (sample "
          << (diff - kGuard) / std::max<int64_t>(r.shape.stride, 1) << "): GPU "
          << decode(r.dtype, gpu_result.data(), diff) << ", CPU "
          << decode(r.dtype, cpu_result.data(), diff);
  INFO(where.str());
  CHECK(diff == -1);
  if (!r.in_place) CHECK(first_difference(dx.copy().data(), x_before.data(), bytes) == -1);
  if (r.reference) {
    const std::vector<unsigned char> out_before =
        r.in_place ? x_before : std::vector<unsigned char>(bytes, kPoison);
    CHECK(check_blend(r.dtype, r.shape, x_before.data(), kGuard, out_before.data(),
                      gpu_result.data(), bytes, kGuard, gpu_lam.data(), gpu_par.data()) == "");
  }
}

}  // namespace

// A full-size batch (9.6M elements): on a GPU only; the simulator runs the
// same paths at smaller sizes in test_blend.cpp.
TEST_CASE("cuda blend: a batch of 64 x 3 x 224 x 224 images", "[cuda][blend][large]") {
  FMT_SEEDED_RNG(0xc0a3);
  const Shape s{64, 3 * 224 * 224, 3 * 224 * 224};
  for (fastmix_dtype d : kAllDtypes)
    for (bool in_place : {false, true}) {
      const int64_t mis = in_place ? 1 : 0;
      INFO(describe(d, s, mis, mis, in_place));
      run_and_compare(Run{d, s, mis, mis, in_place, PartnerKind::permutation}, rng);
    }
}

TEST_CASE("cuda blend on a non-default stream", "[cuda][blend]") {
  FMT_SEEDED_RNG(0xc0a5);
  const Stream stream;
  each_dtype_and_place([&](fastmix_dtype d, bool in_place) {
    run_and_compare(Run{d, {9, 3001, 3004}, 1, 1, in_place, PartnerKind::random_map}, rng, stream);
  });
}

TEST_CASE("cuda mixup with every buffer in managed memory", "[cuda][mixup][managed]") {
  FMT_SEEDED_RNG(0xc0a8);
  const Shape s{5, 77, 80};
  const int64_t n = span(s);
  Buffer x = Buffer::managed((size_t)n * 4), out = Buffer::managed((size_t)n * 4),
         lam = Buffer::managed(5 * 4), par = Buffer::managed(5 * 8);
  fill_random(FASTMIX_FLOAT32, x.data(), n, rng);
  const std::vector<unsigned char> x_before(x.data(), x.data() + x.size());
  REQUIRE(fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 3, 4,
                        x.data(), out.data(), s.batch, s.elems, s.stride, lam.as<float>(),
                        par.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
  finish(kCuda);
  CHECK(is_single_cycle(par.as<int64_t>(), 5));
  const std::vector<unsigned char> poisoned((size_t)n * 4, kPoison);
  CHECK(check_blend(FASTMIX_FLOAT32, s, x_before.data(), 0, poisoned.data(), out.data(), out.size(),
                    0, lam.as<float>(), par.as<int64_t>()) == "");
}

TEST_CASE(
    "cuda blend: a partner out of range makes its sample NaN, the others are right, the next call "
    "works",
    "[cuda][blend][errors]") {
  FMT_SEEDED_RNG(0xc0a6);
  for (fastmix_dtype d : kAllDtypes)
    for (const Shape &s : {Shape{7, 1000, 1000}, Shape{7, 37, 40}, Shape{33, 4097, 4100}})
      for (bool in_place : {false, true}) {
        INFO(describe(d, s, 1, 1, in_place));
        const size_t es = dtype_size(d);
        const int64_t total = span(s);
        const size_t bytes = (size_t)total * es;
        Buffer hx(kCpu, bytes, es, 0);
        fill_random(d, hx.data(), total, rng);
        const std::vector<unsigned char> x_before = hx.copy();
        const std::vector<float> lam = random_lambdas(s.batch, rng);
        std::vector<int64_t> par = make_partners(PartnerKind::permutation, s.batch, rng);
        std::vector<int64_t> good = par;
        const int64_t bad_rows[] = {1, 4, s.batch - 1};
        const int64_t bad_values[] = {s.batch, -1, INT64_MIN};
        for (int k = 0; k < 3; ++k)
          par[(size_t)bad_rows[k]] = bad_values[k], good[(size_t)bad_rows[k]] = 0;

        // the CPU with valid partners in the bad rows: the other rows must match
        Buffer hout(kCpu, bytes, es);
        unsigned char *cout = in_place ? hx.data() : hout.data();
        REQUIRE(fastmix_blend(FASTMIX_DEVICE_CPU, d, hx.data(), cout, s.batch, s.elems, s.stride,
                              lam.data(), good.data(), nullptr) == FASTMIX_SUCCESS);
        const std::vector<unsigned char> cpu = in_place ? hx.copy() : hout.copy();

        Buffer dx(kCuda, bytes, es), dout(kCuda, bytes, es);
        dx.upload(x_before.data());
        Buffer dlam = to_device(kCuda, lam), dpar = to_device(kCuda, par);
        unsigned char *gout = in_place ? dx.data() : dout.data();
        REQUIRE(fastmix_blend(FASTMIX_DEVICE_CUDA, d, dx.data(), gout, s.batch, s.elems, s.stride,
                              dlam.as<float>(), dpar.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(kCuda);  // no trap, no sticky error
        const std::vector<unsigned char> gpu = in_place ? dx.copy() : dout.copy();
        int64_t wrong = 0, not_nan = 0;
        for (int64_t i = 0; i < s.batch; ++i) {
          const bool bad = i == bad_rows[0] || i == bad_rows[1] || i == bad_rows[2];
          for (int64_t j = 0; j < s.stride && i * s.stride + j < total; ++j) {
            const int64_t at = i * s.stride + j;
            if (bad && j < s.elems)
              not_nan += !std::isnan(decode(d, gpu.data(), at));
            else
              wrong += first_difference_nan_equal(d, gpu.data() + (size_t)at * es,
                                                  cpu.data() + (size_t)at * es, 1) != -1;
          }
        }
        CHECK(not_nan == 0);
        CHECK(wrong == 0);

        // the next good call works
        dx.upload(x_before.data());
        dout.poison();
        Buffer dgood = to_device(kCuda, good);
        REQUIRE(fastmix_blend(FASTMIX_DEVICE_CUDA, d, dx.data(), gout, s.batch, s.elems, s.stride,
                              dlam.as<float>(), dgood.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
        finish(kCuda);
        const std::vector<unsigned char> again = in_place ? dx.copy() : dout.copy();
        CHECK(first_difference_nan_equal(d, again.data(), cpu.data(), total) == -1);
      }
}

TEST_CASE("cuda mixup captured in a CUDA graph equals the direct call", "[cuda][mixup][graph]") {
  FMT_SEEDED_RNG(0xc0a7);
  const Stream stream;
  each_dtype_and_place([&](fastmix_dtype d, bool in_place) {
    const Shape s{32, 3 * 32 * 32 + 1, 3 * 32 * 32 + 1};
    const size_t es = dtype_size(d);
    const size_t bytes = (size_t)span(s) * es;
    Buffer hx(kCpu, bytes, 0, 0);
    fill_random(d, hx.data(), span(s), rng);
    const uint64_t lib_seed = rng(), offset = rng();
    Buffer x(kCuda, bytes), out(kCuda, bytes), lam(kCuda, 32 * 4), par(kCuda, 32 * 8);
    unsigned char *o = in_place ? x.data() : out.data();
    auto call = [&] {
      return fastmix_mixup(FASTMIX_DEVICE_CUDA, d, 0.4f, 1, FASTMIX_PAIRING_CYCLE, lib_seed, offset,
                           x.data(), o, s.batch, s.elems, s.stride, lam.as<float>(),
                           par.as<int64_t>(), stream);
    };
    // direct
    x.upload(hx.data());
    REQUIRE(call() == FASTMIX_SUCCESS);
    FMT_CUDA(cudaStreamSynchronize(stream));
    const std::vector<unsigned char> direct = in_place ? x.copy() : out.copy();
    const std::vector<unsigned char> direct_lam = lam.copy(), direct_par = par.copy();
    // captured
    replay(
        stream, call, 2,
        [&] {
          x.upload(hx.data());
          out.poison(), lam.poison(), par.poison();
        },
        [&](int) {
          CHECK(first_difference_nan_equal(d, (in_place ? x.copy() : out.copy()).data(),
                                           direct.data(), span(s)) == -1);
          CHECK(lam.copy() == direct_lam);
          CHECK(par.copy() == direct_par);
        });
  });
}

TEST_CASE("cuda: host pointers are INVALID_VALUE and nothing is written", "[cuda][errors]") {
  const Shape s{4, 8, 8};
  const int64_t n = span(s);
  Buffer dx(kCuda, (size_t)n * 4, 0), dout(kCuda, (size_t)n * 4), dlam(kCuda, 16), dpar(kCuda, 32);
  std::vector<float> hx((size_t)n, 1.0f), hout((size_t)n), hlam(4);
  std::vector<int64_t> hpar = {1, 2, 3, 0};
  poison(hout), poison(hlam);
  // After a refused call: the device outputs and the host lambdas still poisoned.
  auto nothing_written = [&] {
    finish(kCuda);
    CHECK(all_poison(dout.copy()));
    CHECK(all_poison(dlam.copy()));
    CHECK(all_poison(dpar.copy()));
    CHECK(all_poison(hlam));
  };
  dx.upload(hx.data());
  const std::vector<float> dl_host(4, 0.5f);
  struct Case {
    const char *param;
    bool host_x, host_out, host_lam, host_par;
  };
  for (const Case &c :
       {Case{"x", true, false, false, false}, Case{"out", false, true, false, false},
        Case{"lambdas", false, false, true, false}, Case{"partners", false, false, false, true}}) {
    INFO("host " << c.param);
    void *x = c.host_x ? (void *)hx.data() : (void *)dx.data();
    void *out = c.host_out ? (void *)hout.data() : (void *)dout.data();
    float *lam = c.host_lam ? hlam.data() : dlam.as<float>();
    int64_t *par = c.host_par ? hpar.data() : dpar.as<int64_t>();
    dout.poison(), dlam.poison(), dpar.poison();
    fastmix_status st =
        fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 1,
                      2, x, out, s.batch, s.elems, s.stride, lam, par, nullptr);
    CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
    CHECK(has_word(fastmix_last_error(), c.param));
    nothing_written();
    CHECK(all_poison(hout));
    if (!c.host_lam && !c.host_par) continue;
    // blend and sample too (lambdas and partners are inputs of blend)
    if (c.host_lam) {
      std::vector<float> l(4, 0.5f);
      st = fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, dx.data(), dout.data(), s.batch,
                         s.elems, s.stride, l.data(), dpar.as<int64_t>(), nullptr);
    } else {
      Buffer dl = to_device(kCuda, dl_host);
      st = fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, dx.data(), dout.data(), s.batch,
                         s.elems, s.stride, dl.as<float>(), hpar.data(), nullptr);
    }
    CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
    CHECK(has_word(fastmix_last_error(), c.param));
    st = fastmix_sample(FASTMIX_DEVICE_CUDA, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 1, 2, s.batch,
                        lam, par, nullptr);
    CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
    CHECK(has_word(fastmix_last_error(), c.param));
    nothing_written();
  }
  // host x for blend
  Buffer dl = to_device(kCuda, dl_host);
  Buffer dp = to_device(kCuda, hpar);
  CHECK(fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, hx.data(), dout.data(), s.batch,
                      s.elems, s.stride, dl.as<float>(), dp.as<int64_t>(),
                      nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has_word(fastmix_last_error(), "x"));
  finish(kCuda);
  CHECK(all_poison(dout.copy()));
}

TEST_CASE("cuda: CutMix, uint8, soft targets and device seeds name the host pointer they refuse",
          "[cuda][errors]") {
  const int64_t n = 4, c = 3, h = 4, w = 5, elems = c * h * w, classes = 10;
  fastmix_mix_config cfg{};
  cfg.mixup_alpha = 0.8f, cfg.cutmix_alpha = 1.0f, cfg.prob = 1.0f, cfg.switch_prob = 0.5f;
  cfg.mode = FASTMIX_MIX_ELEM, cfg.pairing = FASTMIX_PAIRING_PERMUTATION, cfg.correct_lam = 1;
  const float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.25f, 0.25f, 0.25f};
  // Every pointer parameter on the device, and a host twin of each: one
  // parameter at a time points to its twin.  Everything starts poisoned and
  // must stay so: a refused call queues nothing.
  const std::vector<std::string> names = {"seed_offset", "x",     "out",    "lambdas",
                                          "partners",    "boxes", "labels", "targets"};
  const size_t bytes = (size_t)(n * elems) * 4 + 256;
  std::vector<Buffer> dev;
  std::vector<std::vector<unsigned char>> host;
  for (size_t k = 0; k < names.size(); ++k)
    dev.emplace_back(kCuda, bytes), host.emplace_back(bytes, (unsigned char)kPoison);
  std::string on_host;
  auto ptr = [&](const char *name) -> void * {
    const size_t k = (size_t)(std::find(names.begin(), names.end(), name) - names.begin());
    return on_host == name ? (void *)host[k].data() : (void *)dev[k].data();
  };
  auto f32 = [&](const char *name) { return static_cast<float *>(ptr(name)); };
  auto i64 = [&](const char *name) { return static_cast<int64_t *>(ptr(name)); };
  auto i32 = [&](const char *name) { return static_cast<int32_t *>(ptr(name)); };
  auto u64 = [&](const char *name) { return static_cast<uint64_t *>(ptr(name)); };
  auto u8 = [&](const char *name) { return static_cast<const uint8_t *>(ptr(name)); };
  struct Call {
    const char *entry;
    std::vector<const char *> params;
    std::function<fastmix_status()> run;
  };
  const fastmix_device cu = FASTMIX_DEVICE_CUDA;
  const fastmix_layout nchw = FASTMIX_LAYOUT_NCHW;
  const std::vector<Call> calls = {
      {"fastmix_cutmix_sample",
       {"lambdas", "partners", "boxes"},
       [&] {
         return fastmix_cutmix_sample(cu, &cfg, 1, 2, n, h, w, f32("lambdas"), i64("partners"),
                                      i32("boxes"), nullptr);
       }},
      {"fastmix_cutmix_apply",
       {"x", "out", "lambdas", "partners", "boxes"},
       [&] {
         return fastmix_cutmix_apply(cu, FASTMIX_FLOAT32, nchw, ptr("x"), ptr("out"), n, c, h, w,
                                     elems, f32("lambdas"), i64("partners"), i32("boxes"), nullptr);
       }},
      {"fastmix_cutmix_device_seed",
       {"seed_offset", "x", "out", "lambdas", "partners", "boxes"},
       [&] {
         return fastmix_cutmix_device_seed(cu, FASTMIX_FLOAT32, &cfg, u64("seed_offset"), 1, nchw,
                                           ptr("x"), ptr("out"), n, c, h, w, elems, f32("lambdas"),
                                           i64("partners"), i32("boxes"), nullptr);
       }},
      {"fastmix_cutmix_apply_u8",
       {"x", "out", "lambdas", "partners", "boxes"},
       [&] {
         return fastmix_cutmix_apply_u8(cu, FASTMIX_LAYOUT_NHWC, u8("x"), n, c, h, w, elems, mean,
                                        stdv, FASTMIX_FLOAT32, nchw, ptr("out"), elems,
                                        f32("lambdas"), i64("partners"), i32("boxes"), nullptr);
       }},
      {"fastmix_cutmix_u8_device_seed",
       {"seed_offset", "x", "out", "lambdas", "partners", "boxes"},
       [&] {
         return fastmix_cutmix_u8_device_seed(
             cu, &cfg, u64("seed_offset"), 1, FASTMIX_LAYOUT_NHWC, u8("x"), n, c, h, w, elems, mean,
             stdv, FASTMIX_FLOAT32, nchw, ptr("out"), elems, f32("lambdas"), i64("partners"),
             i32("boxes"), nullptr);
       }},
      {"fastmix_mixup_device_seed",
       {"seed_offset", "x", "out", "lambdas", "partners"},
       [&] {
         return fastmix_mixup_device_seed(cu, FASTMIX_FLOAT32, 0.4f, 1, FASTMIX_PAIRING_PERMUTATION,
                                          u64("seed_offset"), 1, ptr("x"), ptr("out"), n, elems,
                                          elems, f32("lambdas"), i64("partners"), nullptr);
       }},
      {"fastmix_soft_targets",
       {"labels", "lambdas", "partners", "targets"},
       [&] {
         return fastmix_soft_targets(cu, FASTMIX_FLOAT32, i64("labels"), f32("lambdas"),
                                     i64("partners"), n, classes, 0.1f, ptr("targets"), classes,
                                     nullptr);
       }},
  };
  for (const Call &call : calls)
    for (const char *param : call.params) {
      INFO(call.entry << " with host " << param);
      on_host = param;
      const fastmix_status st = call.run();
      CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
      CHECK(has_word(fastmix_last_error(), param));
      finish(kCuda);
      for (size_t k = 0; k < names.size(); ++k) {
        INFO("buffer " << names[k]);
        CHECK(all_poison(dev[k].copy().data(), bytes));
        CHECK(all_poison(host[k].data(), bytes));
      }
    }
}

TEST_CASE("cuda: bad arguments, batch 0, and in place beyond shared memory", "[cuda][errors]") {
  Buffer dx(kCuda, 4096, 0), dout(kCuda, 4096), dlam(kCuda, 64), dpar(kCuda, 128);
  // argument checks are the same as on the CPU
  CHECK(fastmix_sample(FASTMIX_DEVICE_CUDA, std::numeric_limits<float>::quiet_NaN(), 0,
                       FASTMIX_PAIRING_FLIP, 1, 2, 4, dlam.as<float>(), dpar.as<int64_t>(),
                       nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has_word(fastmix_last_error(), "alpha"));
  CHECK(fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT16, 0.4f, 0, FASTMIX_PAIRING_FLIP, 1, 2,
                      dx.data(), dx.data() + 2, 4, 8, 8, dlam.as<float>(), dpar.as<int64_t>(),
                      nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has_word(fastmix_last_error(), "out"));
  // batch 0: success, nothing written
  CHECK(fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 1, 2,
                      dx.data(), dout.data(), 0, 8, 8, dlam.as<float>(), dpar.as<int64_t>(),
                      nullptr) == FASTMIX_SUCCESS);
  CHECK(fastmix_sample(FASTMIX_DEVICE_CUDA, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 1, 2, 0,
                       dlam.as<float>(), dpar.as<int64_t>(), nullptr) == FASTMIX_SUCCESS);
  finish(kCuda);
  CHECK(all_poison(dout.copy()));
  CHECK(all_poison(dlam.copy()));
  CHECK(all_poison(dpar.copy()));

  // In place needs the batch's partners and lambdas in shared memory: 65536
  // samples cannot fit on any GPU.  NOT_SUPPORTED, and nothing written.
  const int64_t n = 65536;
  Buffer bx(kCuda, (size_t)n * 4, 0), bl(kCuda, (size_t)n * 4), bp(kCuda, (size_t)n * 8);
  FMT_CUDA(cudaMemset(bx.data(), 0, bx.size()));
  CHECK(fastmix_mixup(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 1,
                      2, bx.data(), bx.data(), n, 1, 1, bl.as<float>(), bp.as<int64_t>(),
                      nullptr) == FASTMIX_ERROR_NOT_SUPPORTED);
  finish(kCuda);
  const std::vector<unsigned char> xs = bx.copy();
  CHECK(std::all_of(xs.begin(), xs.end(), [](unsigned char c) { return c == 0; }));
  CHECK(all_poison(bl.copy()));
  CHECK(all_poison(bp.copy()));
}
