// How the CUDA backend deals with the CUDA runtime's own state: an error the
// caller left in the runtime's last-error slot is neither taken for a
// launch's failure nor cleared, and in-place blends of different batch sizes
// from several threads at once (each needing its own dynamic shared memory)
// all succeed.
#include "cuda_util.hpp"

#include <fastmix/fastmix.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace fmt_test;

TEST_CASE("cuda: an error the caller left pending is not blamed on fastmix, nor cleared",
          "[cuda][errors]") {
  FMT_SEEDED_RNG(0x7e01);
  const Shape s{6, 37, 37};
  std::vector<float> hx((size_t)span(s));
  for (float &v : hx) v = (float)random_value(FASTMIX_FLOAT32, rng);
  Buffer x = to_device(kCuda, hx), out(kCuda, hx.size() * 4), lam(kCuda, 6 * 4), par(kCuda, 6 * 8);
  for (bool in_place : {false, true}) {
    INFO((in_place ? "in place" : "out of place"));
    x.upload(hx.data());
    // A failed runtime call of the caller's: cudaErrorInvalidDevice, which is
    // not sticky, waits in the last-error slot.
    REQUIRE(cudaSetDevice(1 << 20) == cudaErrorInvalidDevice);
    void *o = in_place ? (void *)x.data() : (void *)out.data();
    const fastmix_status st = fastmix_mixup(
        FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, rng(), 0,
        x.data(), o, s.batch, s.elems, s.stride, lam.as<float>(), par.as<int64_t>(), nullptr);
    INFO(fastmix_last_error());
    CHECK(st == FASTMIX_SUCCESS);
    const cudaError_t left = cudaGetLastError();
    if (on_simulator())
      // GPGPU-Sim's runtime overwrites its last error with every call it
      // answers, successful ones included; only hardware keeps it pending.
      WARN("simulator: the caller's pending error is not kept by the simulated runtime (got "
           << cudaGetErrorName(left) << ")");
    else
      CHECK(left == cudaErrorInvalidDevice);
    finish(kCuda);
    const std::vector<float> l = lam.copy_as<float>();
    const std::vector<int64_t> p = par.copy_as<int64_t>();
    const std::vector<unsigned char> got = in_place ? x.copy() : out.copy();
    const std::vector<unsigned char> before(
        reinterpret_cast<const unsigned char *>(hx.data()),
        reinterpret_cast<const unsigned char *>(hx.data()) + hx.size() * 4);
    const std::vector<unsigned char> out_before =
        in_place ? before : std::vector<unsigned char>(hx.size() * 4, kPoison);
    CHECK(check_blend(FASTMIX_FLOAT32, s, before.data(), 0, out_before.data(), got.data(),
                      got.size(), 0, l.data(), p.data()) == "");
    out.poison();
  }
}

// In place, each call sizes its dynamic shared memory by its batch; the
// kernel's limit is raised once, to the device's maximum, so no thread's call
// can lower it under another's launch.
TEST_CASE("cuda: in-place blends of different batch sizes from several threads all succeed",
          "[cuda][blend][threads]") {
  const uint64_t seed = test_seed();
  CAPTURE(seed);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &failures] {
      // 7 samples need a few KiB of shared memory, 4000 need ~64 KiB (above the
      // default 48 KiB limit): both kinds run at the same time.
      const int64_t n = t % 2 ? 4000 : 7, elems = 64;
      std::vector<float> hx((size_t)(n * elems), 1.0f), hl((size_t)n, 0.25f);
      std::vector<int64_t> hp((size_t)n);
      for (int64_t i = 0; i < n; ++i) hp[(size_t)i] = (i + 1) % n;
      void *x = nullptr, *l = nullptr, *p = nullptr;
      if (cudaMalloc(&x, hx.size() * 4) != cudaSuccess ||
          cudaMalloc(&l, hl.size() * 4) != cudaSuccess ||
          cudaMalloc(&p, hp.size() * 8) != cudaSuccess) {
        ++failures;
        return;
      }
      cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice);
      cudaMemcpy(l, hl.data(), hl.size() * 4, cudaMemcpyHostToDevice);
      cudaMemcpy(p, hp.data(), hp.size() * 8, cudaMemcpyHostToDevice);
      for (int round = 0; round < 50; ++round)
        if (fastmix_blend(FASTMIX_DEVICE_CUDA, FASTMIX_FLOAT32, x, x, n, elems, elems,
                          static_cast<float *>(l), static_cast<int64_t *>(p),
                          nullptr) != FASTMIX_SUCCESS)
          ++failures;
      if (cudaDeviceSynchronize() != cudaSuccess) ++failures;
      std::vector<float> back(hx.size());
      cudaMemcpy(back.data(), x, back.size() * 4, cudaMemcpyDeviceToHost);
      for (float v : back)
        if (v != 1.0f) ++failures;  // every sample is all ones, so every blend is too
      cudaFree(x), cudaFree(l), cudaFree(p);
    });
  for (std::thread &th : threads) th.join();
  CHECK(failures == 0);
}
