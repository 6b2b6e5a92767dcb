// The CUDA tests' main: without a CUDA device they say so and exit 77, which
// CTest reports as "skipped" (SKIP_RETURN_CODE), not as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <fastmix/fastmix.h>

#include <cstdio>

int main(int argc, char **argv) {
  if (fastmix_cuda_device_count() == 0) {
    std::printf("fastmix CUDA tests: no CUDA device here, all CUDA tests SKIPPED (exit 77)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
