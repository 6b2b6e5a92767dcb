/* fastmix demo: mixes a synthetic batch of images with one fastmix_mixup call,
 * on the CUDA device when there is one and on the CPU otherwise, checks a few
 * outputs against the formula and prints what it did and how fast. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <fastmix/fastmix.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(FASTMIX_DEMO_CUDA)
#include <cuda_runtime_api.h>
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHECK(call)                                                              \
  do {                                                                           \
    fastmix_status s_ = (call);                                                  \
    if (s_ != FASTMIX_SUCCESS) {                                                 \
      fprintf(stderr, "%s failed: %s\n  %s\n", #call, fastmix_status_string(s_), \
              fastmix_last_error());                                             \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

int main(void) {
  const int64_t batch = 64, c = 3, h = 224, w = 224, elems = c * h * w;
  const size_t bytes = (size_t)(batch * elems) * sizeof(float);
  const float alpha = 0.4f;
  const uint64_t seed = 2017;
  fastmix_device dev = fastmix_cuda_device_count() > 0 ? FASTMIX_DEVICE_CUDA : FASTMIX_DEVICE_CPU;
  if (dev == FASTMIX_DEVICE_CPU) printf("no CUDA device found, running on the CPU\n");

  float *x = malloc(bytes), *out = malloc(bytes), *lambdas = malloc(sizeof(float) * batch);
  int64_t *partners = malloc(sizeof(int64_t) * batch);
  if (!x || !out || !lambdas || !partners) return 1;
  for (int64_t i = 0; i < batch * elems; ++i) x[i] = (float)((i * 2654435761u) % 1000u) / 999.0f;

  printf(
      "fastmix %d.%d.%d demo: mixup of a %lldx%lldx%lldx%lld float32 batch (%.1f MB), alpha %.1f, "
      "on %s\n",
      FASTMIX_VERSION_MAJOR, FASTMIX_VERSION_MINOR, FASTMIX_VERSION_PATCH, (long long)batch,
      (long long)c, (long long)h, (long long)w, (double)bytes / 1e6, (double)alpha,
      dev == FASTMIX_DEVICE_CUDA ? "CUDA" : "the CPU");

  const int reps = 10;
  double seconds;
  if (dev == FASTMIX_DEVICE_CPU) {
    CHECK(fastmix_mixup(dev, FASTMIX_FLOAT32, alpha, 1, FASTMIX_PAIRING_PERMUTATION, seed, 0, x,
                        out, batch, elems, elems, lambdas, partners, NULL)); /* warm-up */
    double t0 = now_s();
    for (int r = 0; r < reps; ++r)
      CHECK(fastmix_mixup(dev, FASTMIX_FLOAT32, alpha, 1, FASTMIX_PAIRING_PERMUTATION, seed,
                          (uint64_t)r, x, out, batch, elems, elems, lambdas, partners, NULL));
    seconds = (now_s() - t0) / reps;
  } else {
#if defined(FASTMIX_DEMO_CUDA)
    void *dx, *dout, *dl, *dp;
    cudaEvent_t e0, e1;
    float ms = 0;
    if (cudaMalloc(&dx, bytes) || cudaMalloc(&dout, bytes) ||
        cudaMalloc(&dl, sizeof(float) * batch) || cudaMalloc(&dp, sizeof(int64_t) * batch) ||
        cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice))
      return fprintf(stderr, "CUDA allocation failed\n"), 1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    CHECK(fastmix_mixup(dev, FASTMIX_FLOAT32, alpha, 1, FASTMIX_PAIRING_PERMUTATION, seed, 0, dx,
                        dout, batch, elems, elems, dl, dp, NULL));
    cudaEventRecord(e0, NULL);
    for (int r = 0; r < reps; ++r)
      CHECK(fastmix_mixup(dev, FASTMIX_FLOAT32, alpha, 1, FASTMIX_PAIRING_PERMUTATION, seed,
                          (uint64_t)r, dx, dout, batch, elems, elems, dl, dp, NULL));
    cudaEventRecord(e1, NULL);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    seconds = ms / 1e3 / reps;
    cudaMemcpy(out, dout, bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(lambdas, dl, sizeof(float) * batch, cudaMemcpyDeviceToHost);
    cudaMemcpy(partners, dp, sizeof(int64_t) * batch, cudaMemcpyDeviceToHost);
    cudaFree(dx);
    cudaFree(dout);
    cudaFree(dl);
    cudaFree(dp);
#else
    return 1;
#endif
  }

  /* The last call used offset reps - 1: check its output against the formula. */
  double max_err = 0;
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t j = 0; j < elems; j += 997) {
      const double ref = (double)lambdas[i] * x[i * elems + j] +
                         (1.0 - (double)lambdas[i]) * x[partners[i] * elems + j];
      const double err = fabs(ref - out[i * elems + j]);
      if (!(err <= max_err)) max_err = err; /* NaN propagates */
    }
  printf("  sample 0..3: lambda %.3f %.3f %.3f %.3f, partner %lld %lld %lld %lld\n", lambdas[0],
         lambdas[1], lambdas[2], lambdas[3], (long long)partners[0], (long long)partners[1],
         (long long)partners[2], (long long)partners[3]);
  printf("  max |out - (lam*x + (1-lam)*x[partner])| = %.3g\n", max_err);
  printf("  %.3f ms per call, %.1f GB/s (counting %zu bytes read + written per call)\n",
         seconds * 1e3, 2.0 * (double)bytes / seconds / 1e9, 2 * bytes);
  free(x);
  free(out);
  free(lambdas);
  free(partners);
  return max_err <= 1e-6 ? 0 : 1;
}
