// Bad arguments: every one gives FASTMIX_ERROR_INVALID_VALUE (or NO_DEVICE),
// a fastmix_last_error() that names the parameter, and outputs that are
// bitwise untouched (poisoned before, still poisoned after).  Also: the last
// error is per thread, and status strings are never NULL.
#include <catch2/catch.hpp>

#include "device.hpp"

#include <fastmix/fastmix.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace fmt_test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

const float kInf = std::numeric_limits<float>::infinity();

// Makes the thread's last error a message that does not name `param`, so
// that a stale message cannot pass the check of the next failure.
void reset_last_error(const std::string &param) {
  float lam[2] = {0.5f, 0.5f};
  int64_t par[2] = {0, 1};
  float x[2] = {0, 0}, out[2];
  if (param != "dtype")
    (void)fastmix_blend(FASTMIX_DEVICE_CPU, bad_enum<fastmix_dtype>(7), x, out, 2, 1, 1, lam, par,
                        nullptr);
  else
    (void)fastmix_sample(FASTMIX_DEVICE_CPU, -1.0f, 0, FASTMIX_PAIRING_FLIP, 0, 0, 2, lam, par,
                         nullptr);
  REQUIRE(std::string(fastmix_last_error()) != "");
  REQUIRE(!has_word(fastmix_last_error(), param));
}

void check_failure(fastmix_status got, fastmix_status want, const std::string &param) {
  CHECK(fastmix_status_string(got) == std::string(fastmix_status_string(want)));
  const std::string msg = fastmix_last_error();
  INFO("fastmix_last_error(): \"" << msg << "\", expected to name " << param);
  CHECK(has_word(msg, param));
}

// ---- fastmix_sample ---------------------------------------------------------
struct SampleArgs {
  fastmix_device device = FASTMIX_DEVICE_CPU;
  float alpha = 0.4f;
  int fold = 0;
  fastmix_pairing pairing = FASTMIX_PAIRING_PERMUTATION;
  int64_t batch = 7;
  bool null_lambdas = false, null_partners = false;
};

struct SampleCase {
  const char *what, *param;
  std::function<void(SampleArgs &)> set;
};

const std::vector<SampleCase> &sample_cases() {
  static const std::vector<SampleCase> cases = {
      {"device 2", "device", [](SampleArgs &a) { a.device = bad_enum<fastmix_device>(2); }},
      {"device -1", "device", [](SampleArgs &a) { a.device = bad_enum<fastmix_device>(-1); }},
      {"alpha 0", "alpha", [](SampleArgs &a) { a.alpha = 0.0f; }},
      {"alpha -0", "alpha", [](SampleArgs &a) { a.alpha = -0.0f; }},
      {"alpha -1", "alpha", [](SampleArgs &a) { a.alpha = -1.0f; }},
      {"alpha -denorm", "alpha",
       [](SampleArgs &a) { a.alpha = -std::numeric_limits<float>::denorm_min(); }},
      {"alpha NaN", "alpha", [](SampleArgs &a) { a.alpha = kNaN; }},
      {"alpha +inf", "alpha", [](SampleArgs &a) { a.alpha = kInf; }},
      {"alpha -inf", "alpha", [](SampleArgs &a) { a.alpha = -kInf; }},
      {"pairing 4", "pairing", [](SampleArgs &a) { a.pairing = bad_enum<fastmix_pairing>(4); }},
      {"pairing -1", "pairing", [](SampleArgs &a) { a.pairing = bad_enum<fastmix_pairing>(-1); }},
      {"batch -1", "batch", [](SampleArgs &a) { a.batch = -1; }},
      {"batch INT64_MIN", "batch", [](SampleArgs &a) { a.batch = INT64_MIN; }},
      {"batch MAX + 1", "batch", [](SampleArgs &a) { a.batch = FASTMIX_MAX_BATCH + 1; }},
      {"batch INT64_MAX", "batch", [](SampleArgs &a) { a.batch = INT64_MAX; }},
      {"lambdas NULL", "lambdas", [](SampleArgs &a) { a.null_lambdas = true; }},
      {"partners NULL", "partners", [](SampleArgs &a) { a.null_partners = true; }},
  };
  return cases;
}

// ---- fastmix_blend / fastmix_mixup ---------------------------------------------
// The images live in one buffer of 3 * span elements with x in the middle, so
// that out may be moved to overlap x from either side.
struct ImageArgs {
  fastmix_dtype dtype = FASTMIX_FLOAT32;
  int64_t batch = 7, elems = 5, stride = 6;
  bool null_x = false, null_out = false, null_lambdas = false, null_partners = false;
  bool in_place = false;
  int64_t out_shift = 0;  // != 0: out = x + out_shift elements (overlap)
  int64_t bad_partner_at = -1, bad_partner = 0;
};

struct ImageCase {
  const char *what, *param;
  std::function<void(ImageArgs &)> set;
  bool blend_only;  // partners are inputs of blend only
};

const std::vector<ImageCase> &image_cases() {
  static const std::vector<ImageCase> cases = {
      {"device 2", "device", nullptr, false},  // set below: device is not an image argument
      {"dtype 3", "dtype", [](ImageArgs &a) { a.dtype = bad_enum<fastmix_dtype>(3); }, false},
      {"dtype -1", "dtype", [](ImageArgs &a) { a.dtype = bad_enum<fastmix_dtype>(-1); }, false},
      {"x NULL", "x", [](ImageArgs &a) { a.null_x = true; }, false},
      {"out NULL", "out", [](ImageArgs &a) { a.null_out = true; }, false},
      {"lambdas NULL", "lambdas", [](ImageArgs &a) { a.null_lambdas = true; }, false},
      {"partners NULL", "partners", [](ImageArgs &a) { a.null_partners = true; }, false},
      {"batch -1", "batch", [](ImageArgs &a) { a.batch = -1; }, false},
      {"batch MAX + 1", "batch", [](ImageArgs &a) { a.batch = FASTMIX_MAX_BATCH + 1; }, false},
      {"sample_elems -1", "sample_elems", [](ImageArgs &a) { a.elems = -1; }, false},
      {"sample_elems INT64_MIN", "sample_elems", [](ImageArgs &a) { a.elems = INT64_MIN; }, false},
      {"sample_stride < sample_elems", "sample_stride", [](ImageArgs &a) { a.stride = 4; }, false},
      {"sample_stride -1 with sample_elems 0", "sample_stride",
       [](ImageArgs &a) { a.elems = 0, a.stride = -1; }, false},
      {"batch * sample_stride overflows", "sample_stride",
       [](ImageArgs &a) { a.batch = FASTMIX_MAX_BATCH, a.elems = 1, a.stride = INT64_MAX / 1024; },
       false},
      {"out = x + 1 element", "out", [](ImageArgs &a) { a.out_shift = 1; }, false},
      {"out = x - 1 element", "out", [](ImageArgs &a) { a.out_shift = -1; }, false},
      {"out = x + sample_stride", "out", [](ImageArgs &a) { a.out_shift = 6; }, false},
      {"out = x + span - 1", "out", [](ImageArgs &a) { a.out_shift = 6 * 6 + 5 - 1; }, false},
      {"out = x - (span - 1)", "out", [](ImageArgs &a) { a.out_shift = -(6 * 6 + 5 - 1); }, false},
      {"last partner = batch", "partners",
       [](ImageArgs &a) { a.bad_partner_at = 6, a.bad_partner = 7; }, true},
      {"last partner = -1", "partners",
       [](ImageArgs &a) { a.bad_partner_at = 6, a.bad_partner = -1; }, true},
      {"partner INT64_MAX", "partners",
       [](ImageArgs &a) { a.bad_partner_at = 3, a.bad_partner = INT64_MAX; }, true},
      {"partner INT64_MIN", "partners",
       [](ImageArgs &a) { a.bad_partner_at = 0, a.bad_partner = INT64_MIN; }, true},
      {"last partner = batch, in place", "partners",
       [](ImageArgs &a) { a.bad_partner_at = 6, a.bad_partner = 7, a.in_place = true; }, true},
      {"partner -1, in place, float16", "partners",
       [](ImageArgs &a) {
         a.bad_partner_at = 2, a.bad_partner = -1, a.in_place = true, a.dtype = FASTMIX_FLOAT16;
       },
       true},
  };
  return cases;
}

enum class Api { blend, mixup };

// Runs one bad call of blend or mixup and checks status, message and that
// nothing was written.
void run_image_case(Api api, const ImageCase &c, fastmix_device device, fastmix_status want,
                    bool check_param, std::mt19937_64 &rng) {
  ImageArgs a;
  if (c.set) c.set(a);
  const fastmix_dtype storage = a.dtype == FASTMIX_FLOAT16 ? FASTMIX_FLOAT16 : FASTMIX_FLOAT32;
  const size_t es = dtype_size(storage);
  const int64_t span_elems = 6 * 6 + 5;  // of the default geometry
  Buffer buf(kCpu, (size_t)(3 * span_elems) * es, es, 0);
  fill_random(storage, buf.data(), 3 * span_elems, rng);
  const std::vector<unsigned char> buf_before = buf.copy();
  Buffer other(kCpu, (size_t)span_elems * es, 0);
  unsigned char *x = buf.data() + (size_t)span_elems * es;
  unsigned char *out = a.in_place         ? x
                       : a.out_shift != 0 ? x + a.out_shift * (int64_t)es
                                          : other.data();
  std::vector<float> lam((size_t)7, 0.25f);
  std::vector<int64_t> par = {6, 5, 4, 3, 2, 1, 0};
  if (a.bad_partner_at >= 0) par[(size_t)a.bad_partner_at] = a.bad_partner;
  if (api == Api::mixup) poison(lam), poison(par);
  const std::vector<float> lam_before = lam;
  const std::vector<int64_t> par_before = par;
  reset_last_error(c.param);
  fastmix_status st;
  if (api == Api::blend)
    st = fastmix_blend(device, a.dtype, a.null_x ? nullptr : x, a.null_out ? nullptr : out, a.batch,
                       a.elems, a.stride, a.null_lambdas ? nullptr : lam.data(),
                       a.null_partners ? nullptr : par.data(), nullptr);
  else
    st = fastmix_mixup(device, a.dtype, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 1, 2,
                       a.null_x ? nullptr : x, a.null_out ? nullptr : out, a.batch, a.elems,
                       a.stride, a.null_lambdas ? nullptr : lam.data(),
                       a.null_partners ? nullptr : par.data(), nullptr);
  if (check_param)
    check_failure(st, want, c.param);
  else
    CHECK(fastmix_status_string(st) == std::string(fastmix_status_string(want)));
  CHECK(first_difference(buf.data(), buf_before.data(), buf.size()) == -1);
  CHECK(all_poison(other.data(), other.size()));
  CHECK(first_difference(lam.data(), lam_before.data(), lam.size() * sizeof(float)) == -1);
  CHECK(first_difference(par.data(), par_before.data(), par.size() * sizeof(int64_t)) == -1);
}

}  // namespace

TEST_CASE("errors: fastmix_sample rejects bad arguments, names them and writes nothing",
          "[errors]") {
  for (const SampleCase &c : sample_cases()) {
    INFO(c.what);
    SampleArgs a;
    c.set(a);
    std::vector<float> lam(8);
    std::vector<int64_t> par(8);
    poison(lam), poison(par);
    reset_last_error(c.param);
    const fastmix_status st = fastmix_sample(a.device, a.alpha, a.fold, a.pairing, 1, 2, a.batch,
                                             a.null_lambdas ? nullptr : lam.data(),
                                             a.null_partners ? nullptr : par.data(), nullptr);
    check_failure(st, FASTMIX_ERROR_INVALID_VALUE, c.param);
    CHECK(all_poison(lam));
    CHECK(all_poison(par));
  }
}

TEST_CASE("errors: fastmix_blend rejects bad arguments, names them and writes nothing",
          "[errors]") {
  FMT_SEEDED_RNG(0xe4404);
  for (const ImageCase &c : image_cases()) {
    INFO(c.what);
    const fastmix_device device =
        std::string(c.param) == "device" ? bad_enum<fastmix_device>(2) : FASTMIX_DEVICE_CPU;
    run_image_case(Api::blend, c, device, FASTMIX_ERROR_INVALID_VALUE, true, rng);
  }
  INFO("device -1");
  run_image_case(Api::blend, image_cases()[0], bad_enum<fastmix_device>(-1),
                 FASTMIX_ERROR_INVALID_VALUE, true, rng);
}

TEST_CASE("errors: fastmix_mixup rejects bad arguments, names them and writes nothing",
          "[errors]") {
  FMT_SEEDED_RNG(0xe4405);
  for (const ImageCase &c : image_cases()) {
    if (c.blend_only) continue;
    INFO(c.what);
    const fastmix_device device =
        std::string(c.param) == "device" ? bad_enum<fastmix_device>(2) : FASTMIX_DEVICE_CPU;
    run_image_case(Api::mixup, c, device, FASTMIX_ERROR_INVALID_VALUE, true, rng);
  }
  // the sampler's own arguments
  for (const SampleCase &c : sample_cases()) {
    const std::string param = c.param;
    if (param == "batch" || param == "lambdas" || param == "partners") continue;  // covered above
    INFO(c.what);
    SampleArgs s;
    c.set(s);
    Buffer x(kCpu, 41 * 4, 0, 0), out(kCpu, 41 * 4);
    std::vector<float> lam(7);
    std::vector<int64_t> par(7);
    poison(lam), poison(par);
    reset_last_error(c.param);
    const fastmix_status st =
        fastmix_mixup(s.device, FASTMIX_FLOAT32, s.alpha, s.fold, s.pairing, 1, 2, x.data(),
                      out.data(), 7, 5, 6, lam.data(), par.data(), nullptr);
    check_failure(st, FASTMIX_ERROR_INVALID_VALUE, c.param);
    CHECK(all_poison(out.data(), out.size()));
    CHECK(all_poison(lam));
    CHECK(all_poison(par));
  }
}

TEST_CASE(
    "errors: FASTMIX_DEVICE_CUDA without a device is NO_DEVICE (with host memory: INVALID_VALUE)",
    "[errors]") {
  // On this build machine there is no GPU: NO_DEVICE.  Where there is one,
  // these host pointers are refused as INVALID_VALUE.  Either way nothing is
  // written.
  const bool gpu = fastmix_cuda_device_count() > 0;
  const fastmix_status want = gpu ? FASTMIX_ERROR_INVALID_VALUE : FASTMIX_ERROR_NO_DEVICE;
  CAPTURE(gpu);
  std::vector<float> lam(7);
  std::vector<int64_t> par(7);
  poison(lam), poison(par);
  reset_last_error("CUDA");
  fastmix_status st = fastmix_sample(FASTMIX_DEVICE_CUDA, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 1,
                                     2, 7, lam.data(), par.data(), nullptr);
  CHECK(fastmix_status_string(st) == std::string(fastmix_status_string(want)));
  if (!gpu) CHECK(std::string(fastmix_last_error()).find("CUDA") != std::string::npos);
  CHECK(all_poison(lam));
  CHECK(all_poison(par));

  std::mt19937_64 rng = make_rng(0xe4406);
  ImageCase none{"CUDA", "CUDA", nullptr, false};
  for (Api api : {Api::blend, Api::mixup}) {
    INFO((api == Api::blend ? "blend" : "mixup"));
    reset_last_error("CUDA");
    run_image_case(api, none, FASTMIX_DEVICE_CUDA, want, false, rng);
    if (!gpu) CHECK(std::string(fastmix_last_error()).find("CUDA") != std::string::npos);
  }
}

TEST_CASE("errors: fastmix_last_error is per thread and survives successful calls", "[errors]") {
  float lam[4];
  int64_t par[4];
  REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, -2.0f, 0, FASTMIX_PAIRING_FLIP, 0, 0, 4, lam, par,
                         nullptr) == FASTMIX_ERROR_INVALID_VALUE);
  const std::string main_msg = fastmix_last_error();
  CHECK(has_word(main_msg, "alpha"));

  std::string fresh, own;
  fastmix_status st = FASTMIX_SUCCESS;
  std::thread t([&] {
    fresh = fastmix_last_error();  // nothing failed on this thread yet
    st = fastmix_sample(FASTMIX_DEVICE_CPU, 0.5f, 0, bad_enum<fastmix_pairing>(9), 0, 0, 4, lam,
                        par, nullptr);
    own = fastmix_last_error();
  });
  t.join();
  CHECK(fresh == "");
  CHECK(st == FASTMIX_ERROR_INVALID_VALUE);
  CHECK(has_word(own, "pairing"));
  CHECK(fastmix_last_error() == main_msg);  // untouched by the other thread

  // A successful call does not erase the detail of the last failed one.
  REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.5f, 0, FASTMIX_PAIRING_FLIP, 0, 0, 4, lam, par,
                         nullptr) == FASTMIX_SUCCESS);
  CHECK(fastmix_last_error() == main_msg);

  // Many threads failing at once each see their own message.
  std::vector<std::thread> pool;
  std::vector<int> right(8, 0);
  for (int k = 0; k < 8; ++k)
    pool.emplace_back([k, &right] {
      float l[2];
      int64_t p[2];
      bool ok = true;
      for (int rep = 0; rep < 200; ++rep) {
        const int64_t batch = -(int64_t)(1000 * k + rep) - 1;
        (void)fastmix_sample(FASTMIX_DEVICE_CPU, 0.5f, 0, FASTMIX_PAIRING_FLIP, 0, 0, batch, l, p,
                             nullptr);
        ok = ok &&
             std::string(fastmix_last_error()).find(std::to_string(batch)) != std::string::npos;
      }
      right[(size_t)k] = ok;
    });
  for (auto &th : pool) th.join();
  CHECK(std::count(right.begin(), right.end(), 1) == 8);
}

TEST_CASE("errors: status strings are never NULL, also for unknown codes", "[errors]") {
  std::set<std::string> known;
  for (int s = 0; s <= 6; ++s) {
    const char *str = fastmix_status_string((fastmix_status)s);
    REQUIRE(str != nullptr);
    CHECK(std::string(str) != "");
    known.insert(str);
  }
  CHECK(known.size() == 7);
  for (int s : {-1, 7, 8, 100, INT_MAX, INT_MIN}) {
    INFO("code " << s);
    const char *str = fastmix_status_string((fastmix_status)s);
    REQUIRE(str != nullptr);
    CHECK(known.count(str) == 0);
  }
}

// A lambdas, partners, labels or loss pointer that is not aligned to its
// element size would fault a CUDA kernel (and poison the caller's CUDA
// context): every entry point refuses it up front, on every device, naming
// it, and writes nothing.
TEST_CASE("errors: misaligned lambdas, partners, labels and loss are refused on every device",
          "[errors][devices]") {
  const int64_t n = 4, C = 5;
  for (fastmix_device dev : test_devices()) {
    Buffer x(dev, 256, 0, 0), out(dev, 256), lam(dev, 64), par(dev, 128), labels(dev, 128, 0, 0),
        loss(dev, 64), so(dev, 16, 0, 0), tg(dev, 256);
    // Valid contents where a call reads them: partners and labels 0.
    par.set(0);
    // Each parameter shifted off its alignment by a few bytes.
    float *lam_bad = reinterpret_cast<float *>(lam.data() + 2);
    int64_t *par_bad = reinterpret_cast<int64_t *>(par.data() + 4);
    int64_t *lab_bad = reinterpret_cast<int64_t *>(labels.data() + 4);
    float *loss_bad = reinterpret_cast<float *>(loss.data() + 1);
    float *l = lam.as<float>();
    int64_t *p = par.as<int64_t>(), *y = labels.as<int64_t>();
    const std::vector<unsigned char> lam0 = lam.copy(), par0 = par.copy(), out0 = out.copy(),
                                     loss0 = loss.copy(), so0 = so.copy(), tg0 = tg.copy();
    struct Call {
      const char *param;
      std::function<fastmix_status()> call;
    };
    const std::vector<Call> calls = {
        {"lambdas",
         [&] {
           return fastmix_sample(dev, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 1, 2, n, lam_bad, p, nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_sample(dev, 0.4f, 0, FASTMIX_PAIRING_CYCLE, 1, 2, n, l, par_bad, nullptr);
         }},
        {"lambdas",
         [&] {
           return fastmix_blend(dev, FASTMIX_FLOAT32, x.data(), out.data(), n, 3, 3, lam_bad, p,
                                nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_blend(dev, FASTMIX_FLOAT32, x.data(), out.data(), n, 3, 3, l, par_bad,
                                nullptr);
         }},
        {"lambdas",
         [&] {
           return fastmix_mixup(dev, FASTMIX_FLOAT16, 0.4f, 1, FASTMIX_PAIRING_FLIP, 1, 2, x.data(),
                                out.data(), n, 3, 3, lam_bad, p, nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_mixup(dev, FASTMIX_FLOAT16, 0.4f, 1, FASTMIX_PAIRING_FLIP, 1, 2, x.data(),
                                x.data(), n, 3, 3, l, par_bad, nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_mixup_device_seed(dev, FASTMIX_FLOAT32, 0.4f, 0,
                                            FASTMIX_PAIRING_PERMUTATION, so.as<uint64_t>(), 1,
                                            x.data(), out.data(), n, 3, 3, l, par_bad, nullptr);
         }},
        {"labels",
         [&] {
           return fastmix_cross_entropy(dev, FASTMIX_FLOAT32, x.data(), n, C, C, lab_bad, l, p,
                                        FASTMIX_REDUCTION_NONE, 0.0f, -100, loss.as<float>(),
                                        nullptr, 1.0f, nullptr);
         }},
        {"lambdas",
         [&] {
           return fastmix_cross_entropy(dev, FASTMIX_FLOAT32, x.data(), n, C, C, y, lam_bad, p,
                                        FASTMIX_REDUCTION_MEAN, 0.1f, -100, loss.as<float>(),
                                        out.data(), 1.0f, nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_cross_entropy(dev, FASTMIX_BFLOAT16, x.data(), n, C, C, y, l, par_bad,
                                        FASTMIX_REDUCTION_SUM, 0.0f, -100, loss.as<float>(),
                                        nullptr, 1.0f, nullptr);
         }},
        {"loss",
         [&] {
           return fastmix_cross_entropy(dev, FASTMIX_FLOAT32, x.data(), n, C, C, y, nullptr,
                                        nullptr, FASTMIX_REDUCTION_NONE, 0.0f, -100, loss_bad,
                                        nullptr, 1.0f, nullptr);
         }},
        {"labels",
         [&] {
           return fastmix_soft_targets(dev, FASTMIX_FLOAT32, lab_bad, nullptr, nullptr, n, C, 0.1f,
                                       tg.data(), C, nullptr);
         }},
        {"partners",
         [&] {
           return fastmix_soft_targets(dev, FASTMIX_FLOAT16, y, l, par_bad, n, C, 0.0f, tg.data(),
                                       C, nullptr);
         }},
    };
    int k = 0;
    for (const Call &c : calls) {
      INFO(device_name(dev) << " call " << k++ << ": misaligned " << c.param);
      reset_last_error(c.param);
      check_failure(c.call(), FASTMIX_ERROR_INVALID_VALUE, c.param);
      finish(dev);
      CHECK(lam.copy() == lam0);
      CHECK(par.copy() == par0);
      CHECK(out.copy() == out0);
      CHECK(loss.copy() == loss0);
      CHECK(so.copy() == so0);
      CHECK(tg.copy() == tg0);
    }
  }
}
