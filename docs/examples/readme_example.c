/* The README's example: mixup of a small batch on the CPU with the C API. */
#include <fastmix/fastmix.h>
#include <stdio.h>

int main(void) {
  enum { BATCH = 8, ELEMS = 3 * 4 * 4 }; /* 8 images of 3x4x4 float32 */
  static float images[BATCH * ELEMS], mixed[BATCH * ELEMS], lambdas[BATCH];
  static int64_t partners[BATCH];
  for (int i = 0; i < BATCH * ELEMS; ++i) images[i] = (float)(i / ELEMS); /* image i is all i */

  fastmix_status s = fastmix_mixup(FASTMIX_DEVICE_CPU, FASTMIX_FLOAT32, /*alpha=*/0.4f, /*fold=*/1,
                                   FASTMIX_PAIRING_PERMUTATION, /*seed=*/42, /*offset=*/0, images,
                                   mixed, BATCH, ELEMS, ELEMS, lambdas, partners, NULL);
  if (s != FASTMIX_SUCCESS) {
    fprintf(stderr, "%s: %s\n", fastmix_status_string(s), fastmix_last_error());
    return 1;
  }
  for (int i = 0; i < BATCH; ++i)
    printf("image %d = %.3f * image %d + %.3f * image %d -> %.3f\n", i, lambdas[i], i,
           1.0f - lambdas[i], (int)partners[i], mixed[i * ELEMS]);
  return 0;
}
