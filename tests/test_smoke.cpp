#include <catch2/catch.hpp>

#include <fastmix/fastmix.h>

#include <cstring>

TEST_CASE("version and status strings", "[api]") {
  CHECK(fastmix_version() == FASTMIX_VERSION);
  CHECK(fastmix_version() > 0);
  for (int s = -1; s < 10; ++s) CHECK(fastmix_status_string((fastmix_status)s) != nullptr);
  CHECK(std::strstr(fastmix_status_string(FASTMIX_ERROR_INVALID_VALUE), "INVALID_VALUE") !=
        nullptr);
  CHECK(fastmix_last_error() != nullptr);
}
