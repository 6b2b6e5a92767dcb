/* A C program using the installed fastmix: version, then a CPU mixup whose
 * result it checks.  Exits 0 when everything is right. */
#include <fastmix/fastmix.h>

#include <stdio.h>

#define BATCH 3
#define ELEMS 4

static double absd(double v) { return v < 0 ? -v : v; }

int main(void) {
  float x[BATCH * ELEMS], out[BATCH * ELEMS], lam[BATCH];
  int64_t par[BATCH];
  int seen[BATCH] = {0, 0, 0};
  int i, j;
  fastmix_status st;
  if (fastmix_version() != FASTMIX_VERSION) {
    fprintf(stderr, "fastmix_version() = %d, header says %d\n", fastmix_version(), FASTMIX_VERSION);
    return 1;
  }
  for (i = 0; i < BATCH * ELEMS; ++i) x[i] = (float)(i * i) - 3.0f;
  st = fastmix_mixup(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, 42,
                     7, x, out, BATCH, ELEMS, ELEMS, lam, par, NULL);
  if (st != FASTMIX_SUCCESS) {
    fprintf(stderr, "fastmix_mixup: %s (%s)\n", fastmix_status_string(st), fastmix_last_error());
    return 1;
  }
  for (i = 0; i < BATCH; ++i) {
    if (par[i] < 0 || par[i] >= BATCH || seen[par[i]]++ || !(lam[i] >= 0.0f && lam[i] <= 1.0f)) {
      fprintf(stderr, "bad draw: lambda %g partner %lld\n", (double)lam[i], (long long)par[i]);
      return 1;
    }
    for (j = 0; j < ELEMS; ++j) {
      const double want =
          (double)lam[i] * x[i * ELEMS + j] + (1.0 - lam[i]) * x[par[i] * ELEMS + j];
      if (!(absd(out[i * ELEMS + j] - want) <= 1e-5 * (1.0 + absd(want)))) {
        fprintf(stderr, "out[%d][%d] = %g, expected %g\n", i, j, (double)out[i * ELEMS + j], want);
        return 1;
      }
    }
  }
  printf("C consumer: fastmix %d, mixup ok\n", fastmix_version());
  return 0;
}
