/* The public header alone, as strict C99 (-std=c99 -pedantic -Werror). */
#include <fastmix/fastmix.h>

int fastmix_header_c99_check(void);
int fastmix_header_c99_check(void) {
  fastmix_status s = FASTMIX_SUCCESS;
  fastmix_dtype d = FASTMIX_BFLOAT16;
  fastmix_pairing p = FASTMIX_PAIRING_FLIP;
  fastmix_reduction r = FASTMIX_REDUCTION_MEAN;
  fastmix_device dev = FASTMIX_DEVICE_CUDA;
  return (int)s + (int)d + (int)p + (int)r + (int)dev + FASTMIX_VERSION;
}
