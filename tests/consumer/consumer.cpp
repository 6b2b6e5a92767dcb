// A C++ program using the installed fastmix: version, then a CPU mixup in
// bfloat16 in place, whose result it checks.  Exits 0 when everything is right.
#include <fastmix/fastmix.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {
float from_bf16(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

int main() {
  if (fastmix_version() != FASTMIX_VERSION) {
    std::fprintf(stderr, "fastmix_version() = %d, header says %d\n", fastmix_version(),
                 FASTMIX_VERSION);
    return 1;
  }
  const std::int64_t batch = 5, elems = 7, stride = 8;
  std::vector<std::uint16_t> x(static_cast<size_t>(batch * stride));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<std::uint16_t>(0x3f80 + i);  // 1.0, 1.0078, ...
  const std::vector<std::uint16_t> before = x;
  std::vector<float> lam(static_cast<size_t>(batch));
  std::vector<std::int64_t> par(static_cast<size_t>(batch));
  const fastmix_status st =
      fastmix_mixup(FASTMIX_DEVICE_CPU, FASTMIX_BFLOAT16, 1.0f, 1, FASTMIX_PAIRING_CYCLE, 7, 1,
                    x.data(), x.data(), batch, elems, stride, lam.data(), par.data(), nullptr);
  if (st != FASTMIX_SUCCESS) {
    std::fprintf(stderr, "fastmix_mixup: %s (%s)\n", fastmix_status_string(st),
                 fastmix_last_error());
    return 1;
  }
  for (std::int64_t i = 0; i < batch; ++i) {
    const std::int64_t p = par[static_cast<size_t>(i)];
    const double l = lam[static_cast<size_t>(i)];
    if (p < 0 || p >= batch || p == i || !(l >= 0.5 && l <= 1.0)) {
      std::fprintf(stderr, "bad draw: lambda %g partner %lld\n", l, static_cast<long long>(p));
      return 1;
    }
    for (std::int64_t j = 0; j < stride; ++j) {
      const size_t at = static_cast<size_t>(i * stride + j);
      const double a = from_bf16(before[at]),
                   b = from_bf16(before[static_cast<size_t>(p * stride + j)]);
      const double want = j < elems ? l * a + (1.0 - l) * b : a;  // the gap is left alone
      if (!(std::fabs(from_bf16(x[at]) - want) <= 1e-2 * std::fabs(want))) {
        std::fprintf(stderr, "x[%lld][%lld] = %g, expected %g\n", static_cast<long long>(i),
                     static_cast<long long>(j), static_cast<double>(from_bf16(x[at])), want);
        return 1;
      }
    }
  }
  std::printf("C++ consumer: fastmix %d, in-place bfloat16 mixup ok\n", fastmix_version());
  return 0;
}
