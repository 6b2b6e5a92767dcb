// The CUDA tests' main: without a CUDA device they say so and exit 77, which
// CTest reports as "skipped" (SKIP_RETURN_CODE), not as passed.  Listing the
// cases (--list-*) needs no device.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <fastmix/fastmix.h>

#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::strncmp(argv[i], "--list", 6) == 0;
  if (!listing && fastmix_cuda_device_count() == 0) {
    std::printf("fastmix CUDA tests: no CUDA device here, all CUDA tests SKIPPED (exit 77)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
