// The public header alone, as C++ (-Wall -Wextra -pedantic -Werror): usable
// from C++ without any other include, its declarations in extern "C".
#include <fastmix/fastmix.h>

int fastmix_header_cxx_check();
int fastmix_header_cxx_check() {
  const fastmix_status s = FASTMIX_SUCCESS;
  const fastmix_dtype d = FASTMIX_BFLOAT16;
  const fastmix_pairing p = FASTMIX_PAIRING_CYCLE;
  const fastmix_reduction r = FASTMIX_REDUCTION_SUM;
  const fastmix_device dev = FASTMIX_DEVICE_CPU;
  // Taking the address of each entry point checks the declarations (and that
  // they are extern "C" functions of the right type).
  fastmix_status (*mixup)(fastmix_device, fastmix_dtype, float, int, fastmix_pairing, uint64_t,
                          uint64_t, const void *, void *, int64_t, int64_t, int64_t, float *,
                          int64_t *, void *) = &fastmix_mixup;
  const char *(*last)(void) = &fastmix_last_error;
  const long long max_batch = FASTMIX_MAX_BATCH;
  return (int)s + (int)d + (int)p + (int)r + (int)dev + FASTMIX_VERSION + (mixup != nullptr) +
         (last != nullptr) + (int)(max_batch & 1);
}
