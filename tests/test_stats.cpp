// Statistical tests of fastmix_sample (CPU): the lambdas against the exact
// Beta(alpha, alpha) law (and its fold), the partners against uniformly
// random permutations and cycles, and the independence of draws at different
// offsets, seeds and samples.
//
// Significance.  Every test below fails by chance with probability at most
// 1e-6 (Kolmogorov-Smirnov through the Dvoretzky-Kiefer-Wolfowitz-Massart
// bound, chi-square through its exact p-value, binomial and correlation
// checks at 5.5 standard deviations, about 4e-8).  There are about 100 such
// checks, so the whole file fails by chance with probability about 1e-4 per
// run, while a real defect (a wrong law, a biased pairing) fails every run.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <fastmix/fastmix.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

using namespace fmt_test;

namespace {

constexpr double kP = 1e-6;      // chance failure probability of one test
constexpr double kSigmas = 5.5;  // two-sided normal tail 3.8e-8

// ---- the Beta(a, b) CDF: the regularized incomplete beta function ---------
// The continued fraction of Numerical Recipes (modified Lentz), in double.
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 200000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < eps) break;
  }
  return h;
}

// I_x(a, b) for x in [0, 1] (clamped outside).
double beta_cdf(double a, double b, double x) {
  if (!(x > 0.0)) return 0.0;
  if (x >= 1.0) return 1.0;
  const double log_front =
      a * std::log(x) + b * std::log1p(-x) - (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b));
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_cf(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_cf(b, a, 1.0 - x) / b;
}

// The upper regularized incomplete gamma Q(s, x) (series / continued fraction).
double gamma_q(double s, double x) {
  if (!(x > 0.0)) return 1.0;
  const double log_front = -x + s * std::log(x) - std::lgamma(s);
  if (x < s + 1.0) {
    double ap = s, del = 1.0 / s, sum = del;
    for (int n = 0; n < 200000; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (std::fabs(del) < std::fabs(sum) * 1e-17) break;
    }
    return 1.0 - sum * std::exp(log_front);
  }
  const double tiny = 1e-300;
  double b = x + 1.0 - s, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 200000; ++i) {
    const double an = -i * (i - s);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-16) break;
  }
  return std::exp(log_front) * h;
}

// p-value of a chi-square goodness-of-fit test of `counts` against equal
// probabilities.
double chi_square_p(const std::vector<int64_t> &counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  const double expect = (double)total / (double)counts.size();
  double stat = 0.0;
  for (int64_t c : counts) stat += ((double)c - expect) * ((double)c - expect) / expect;
  return gamma_q(0.5 * (double)(counts.size() - 1), 0.5 * stat);
}

// ---- Kolmogorov-Smirnov with the library's arithmetic in mind ---------------
// The library computes lambda = sigmoid(log G1 - log G2) in float32, so a
// drawn value v stands for a true value within tol(v) of it: a relative error
// delta of the log-ratio moves lambda by lambda (1 - lambda) delta, the
// sigmoid's own rounding by a few float units (absolute near 1, relative near
// 0), subnormals by their step.  The statistic only counts how far the
// empirical CDF leaves the band [F(v - tol), F(v + tol)]; it is at most the
// classic statistic of the exact draws, so the DKW-Massart inequality
// P(D > eps) <= 2 exp(-2 n eps^2) bounds its chance failures for every n.
// The band also handles the atoms the float format makes at 0 and at 1 for
// small alpha (a third of the mass for alpha = 0.01).
double ks_band(std::vector<float> v, const std::function<double(double)> &cdf, double delta) {
  std::sort(v.begin(), v.end());
  const double n = (double)v.size();
  double worst = 0.0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j] == v[i]) ++j;
    const double x = v[i];
    const double tol = x * (1.0 - x) * delta + std::ldexp(x, -21) + std::ldexp(1.0, -148);
    worst = std::max(worst, (double)j / n - cdf(x + tol));  // too much mass at or below x
    worst = std::max(worst, cdf(x - tol) - (double)i / n);  // too little mass below x
    i = j;
  }
  return worst;
}

double ks_critical(size_t n) { return std::sqrt(std::log(2.0 / kP) / (2.0 * (double)n)); }

// The relative error of the log-ratio: a few float units of |log G|, which is
// at most about 17 / alpha (the log U / alpha boost) for alpha < 1.
double log_ratio_delta(double alpha) { return 1e-4 * std::max(1.0, 1.0 / alpha); }

std::vector<float> draw_lambdas(float alpha, int fold, uint64_t seed, uint64_t offset, int64_t n) {
  std::vector<float> lam((size_t)n);
  std::vector<int64_t> par((size_t)n);
  poison(lam);
  REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, alpha, fold, FASTMIX_PAIRING_FLIP, seed, offset, n,
                         lam.data(), par.data(), nullptr) == FASTMIX_SUCCESS);
  return lam;
}

double pearson(const std::vector<float> &a, const std::vector<float> &b) {
  const double n = (double)a.size();
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= n, mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// Within kSigmas standard deviations of a binomial(n, p) proportion.
bool binomial_ok(int64_t hits, int64_t n, double p) {
  const double sd = std::sqrt(p * (1.0 - p) / (double)n);
  return std::fabs((double)hits / (double)n - p) <= kSigmas * sd + 1e-12;
}

int64_t permutation_index(const int64_t *p, int64_t n) {  // the Lehmer code
  int64_t index = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t smaller = 0;
    for (int64_t j = i + 1; j < n; ++j) smaller += p[j] < p[i];
    index = index * (n - i) + smaller;
  }
  return index;
}

bool is_even(const int64_t *p, int64_t n) {
  std::vector<char> seen((size_t)n, 0);
  int64_t cycles = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (seen[(size_t)i]) continue;
    ++cycles;
    for (int64_t k = i; !seen[(size_t)k]; k = p[k]) seen[(size_t)k] = 1;
  }
  return (n - cycles) % 2 == 0;
}

}  // namespace

TEST_CASE("stats: the reference CDFs are right", "[stats]") {
  const double pi = std::acos(-1.0);
  // x and 1 - x exact in double: near the ends the density is huge (x = 2^-30).
  for (double x : {9.3132257461547852e-10, 0.01, 0.2, 0.5, 0.77, 0.999}) {
    CHECK(beta_cdf(1, 1, x) == Approx(x).epsilon(1e-12));
    CHECK(beta_cdf(2, 2, x) == Approx(3 * x * x - 2 * x * x * x).epsilon(1e-12));
    CHECK(beta_cdf(3, 3, x) ==
          Approx(10 * std::pow(x, 3) - 15 * std::pow(x, 4) + 6 * std::pow(x, 5)).epsilon(1e-11));
    CHECK(beta_cdf(0.5, 0.5, x) == Approx(2 / pi * std::asin(std::sqrt(x))).epsilon(1e-12));
    for (double a : {1e-3, 0.01, 0.4, 10.0, 1000.0})
      CHECK(beta_cdf(a, a, x) + beta_cdf(a, a, 1 - x) == Approx(1.0).epsilon(1e-12));
  }
  // Large alpha: Simpson integration of the density.
  for (double a : {10.0, 100.0, 1000.0})
    for (double x : {0.3, 0.45, 0.5, 0.52}) {
      const int steps = 200000;
      const double h = x / steps, lb = 2 * std::lgamma(a) - std::lgamma(2 * a);
      auto density = [&](double t) {
        return t <= 0 ? 0.0 : std::exp((a - 1) * (std::log(t) + std::log1p(-t)) - lb);
      };
      double sum = density(0) + density(x);
      for (int k = 1; k < steps; ++k) sum += (k % 2 ? 4 : 2) * density(k * h);
      CHECK(beta_cdf(a, a, x) == Approx(sum * h / 3).margin(1e-9));
    }
  // Tiny alpha: I_x(a, a) ~ x^a / (a B(a, a)) near 0.
  CHECK(
      beta_cdf(1e-3, 1e-3, 1e-30) ==
      Approx(std::exp(1e-3 * std::log(1e-30) - (2 * std::lgamma(1e-3) - std::lgamma(2e-3))) / 1e-3)
          .epsilon(1e-6));
  for (double x : {0.5, 3.0, 20.0, 100.0}) {
    CHECK(gamma_q(1.0, x / 2) == Approx(std::exp(-x / 2)).epsilon(1e-12));  // chi-square, 2 dof
    CHECK(gamma_q(0.5, x / 2) == Approx(std::erfc(std::sqrt(x / 2))).epsilon(1e-10));  // 1 dof
  }
  // Values from mpmath (betainc, gammainc with 30 digits).
  CHECK(beta_cdf(0.01, 0.01, 0.1) == Approx(0.489202529173795272).epsilon(1e-12));
  CHECK(beta_cdf(0.1, 0.1, 1e-20) == Approx(0.00507237274389631297).epsilon(1e-10));
  CHECK(beta_cdf(1000, 1000, 0.49) == Approx(0.185552659431511450).epsilon(1e-9));
  CHECK(beta_cdf(100, 100, 0.47) == Approx(0.198154201424092270).epsilon(1e-10));
  CHECK(beta_cdf(1e-3, 1e-3, 1e-40) == Approx(0.456006168682855150).epsilon(1e-10));
  CHECK(gamma_q(7.5, 60.0) == Approx(1.89248496463756481e-18).epsilon(1e-9));
  CHECK(gamma_q(24.5, 30.0) == Approx(0.134864346525320728).epsilon(1e-10));
}

TEST_CASE("stats: lambdas follow Beta(alpha, alpha), and folded ones its fold (Kolmogorov-Smirnov)",
          "[stats]") {
  FMT_SEEDED_RNG(0x57a7);
  // 200000 draws: the critical D is 0.006, so alpha off by 5% fails (tried).
  const int64_t n = 200000;
  for (float alpha : {1e-3f, 0.01f, 0.1f, 0.4f, 1.0f, 2.0f, 10.0f, 100.0f, 1000.0f}) {
    const double a = alpha;
    const uint64_t s = rng(), off = rng();
    INFO("alpha " << alpha << " seed " << s << " offset " << off);
    const std::vector<float> plain = draw_lambdas(alpha, 0, s, off, n);
    const std::vector<float> folded = draw_lambdas(alpha, 1, s, off + 1, n);
    const double crit = ks_critical((size_t)n);
    const double d_plain = ks_band(
        plain, [a](double x) { return beta_cdf(a, a, x); }, log_ratio_delta(a));
    const double d_folded = ks_band(
        folded, [a](double x) { return x <= 0.5 ? 0.0 : 2.0 * beta_cdf(a, a, x) - 1.0; },
        log_ratio_delta(a));
    INFO("D = " << d_plain << " (folded " << d_folded << "), critical " << crit);
    CHECK(d_plain < crit);
    CHECK(d_folded < crit);
  }
}

TEST_CASE("stats: alpha = 1e-3 puts half the mass at each end and never NaN", "[stats]") {
  FMT_SEEDED_RNG(0x57a8);
  const int64_t n = 100000;
  const double a = 1e-3;
  const std::vector<float> lam = draw_lambdas(1e-3f, 0, rng(), rng(), n);
  int64_t nan = 0, low = 0, high = 0, below_half = 0;
  for (float l : lam) {
    nan += std::isnan(l);
    low += l <= 1e-6f;
    high += l >= 1.0f - 1e-6f;
    below_half += l < 0.5f;
  }
  CHECK(nan == 0);
  // P(lambda <= 1e-6) = I_{1e-6}(a, a), about 0.4931: almost all the mass.
  const double tail = beta_cdf(a, a, 1e-6);
  CHECK(tail > 0.49);
  CHECK(binomial_ok(low, n, tail));
  CHECK(binomial_ok(high, n, tail));
  CHECK(binomial_ok(below_half, n, 0.5));
}

TEST_CASE("stats: draws at different offsets, seeds and samples are uncorrelated", "[stats]") {
  FMT_SEEDED_RNG(0x57a9);
  const int64_t n = 50000;
  const uint64_t s = rng(), off = rng();
  CAPTURE(s, off);
  const std::vector<float> base = draw_lambdas(1.0f, 0, s, off, n);  // Beta(1, 1): uniform
  const double limit = kSigmas / std::sqrt((double)n);
  const std::vector<std::vector<float>> others = {
      draw_lambdas(1.0f, 0, s, off + 1, n), draw_lambdas(1.0f, 0, s, off + (UINT64_C(1) << 32), n),
      draw_lambdas(1.0f, 0, s + 1, off, n), draw_lambdas(1.0f, 0, s + (UINT64_C(1) << 32), off, n)};
  for (const auto &o : others) CHECK(std::fabs(pearson(base, o)) < limit);
  // neighbouring samples of one draw
  const std::vector<float> a(base.begin(), base.end() - 1), b(base.begin() + 1, base.end());
  CHECK(std::fabs(pearson(a, b)) < limit);
}

TEST_CASE("stats: PERMUTATION partners are uniformly random permutations", "[stats]") {
  FMT_SEEDED_RNG(0x57aa);
  std::vector<float> lam(1000);
  std::vector<int64_t> par(1000);
  for (int64_t n : {7, 16}) {
    const int64_t draws = 20000;
    const uint64_t s = rng(), off = rng();
    INFO("batch " << n << " seed " << s << " offset " << off);
    std::vector<std::vector<int64_t>> where((size_t)n, std::vector<int64_t>((size_t)n, 0));
    std::vector<int64_t> pairs((size_t)(n * n), 0);
    int64_t fixed = 0, even = 0, not_perm = 0;
    for (int64_t k = 0; k < draws; ++k) {
      REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s,
                             off + (uint64_t)k, n, lam.data(), par.data(),
                             nullptr) == FASTMIX_SUCCESS);
      not_perm += !is_permutation(par.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ++where[(size_t)i][(size_t)par[(size_t)i]];
        fixed += par[(size_t)i] == i;
      }
      ++pairs[(size_t)(par[0] * n + par[1])];
      even += is_even(par.data(), n);
    }
    CHECK(not_perm == 0);
    for (int64_t i = 0; i < n; ++i) {
      INFO("partner of sample " << i);
      CHECK(chi_square_p(where[(size_t)i]) > kP);
    }
    // (p(0), p(1)) uniform over the n (n - 1) ordered pairs of distinct samples
    std::vector<int64_t> joint;
    for (int64_t u = 0; u < n; ++u)
      for (int64_t v = 0; v < n; ++v)
        if (u != v) joint.push_back(pairs[(size_t)(u * n + v)]);
    CHECK(chi_square_p(joint) > kP);
    // fixed points: mean 1 and variance 1 per permutation
    CHECK(std::fabs((double)fixed / (double)draws - 1.0) < kSigmas / std::sqrt((double)draws));
    CHECK(binomial_ok(even, draws, 0.5));
  }
  // batch 1000: the partner of a few samples, in 50 bins
  {
    const int64_t n = 1000, draws = 5000;
    const uint64_t s = rng(), off = rng();
    INFO("batch 1000 seed " << s << " offset " << off);
    std::vector<std::vector<int64_t>> bins(3, std::vector<int64_t>(50, 0));
    int64_t fixed = 0;
    for (int64_t k = 0; k < draws; ++k) {
      REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s,
                             off + (uint64_t)k, n, lam.data(), par.data(),
                             nullptr) == FASTMIX_SUCCESS);
      ++bins[0][(size_t)(par[0] / 20)];
      ++bins[1][(size_t)(par[1] / 20)];
      ++bins[2][(size_t)(par[999] / 20)];
      for (int64_t i = 0; i < n; ++i) fixed += par[(size_t)i] == i;
    }
    for (const auto &b : bins) CHECK(chi_square_p(b) > kP);
    CHECK(std::fabs((double)fixed / (double)draws - 1.0) < kSigmas / std::sqrt((double)draws));
  }
}

TEST_CASE("stats: every permutation of 3, 4, 5 samples is equally likely", "[stats]") {
  FMT_SEEDED_RNG(0x57ab);
  std::vector<float> lam(8);
  std::vector<int64_t> par(8);
  for (int64_t n : {2, 3, 4, 5}) {
    int64_t cells = 1;
    for (int64_t k = 2; k <= n; ++k) cells *= k;
    const int64_t draws = 500 * cells;
    const uint64_t s = rng(), off = rng();
    INFO("batch " << n << " seed " << s << " offset " << off);
    std::vector<int64_t> counts((size_t)cells, 0);
    for (int64_t k = 0; k < draws; ++k) {
      REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_PERMUTATION, s,
                             off + (uint64_t)k, n, lam.data(), par.data(),
                             nullptr) == FASTMIX_SUCCESS);
      REQUIRE(is_permutation(par.data(), n));
      ++counts[(size_t)permutation_index(par.data(), n)];
    }
    CHECK(chi_square_p(counts) > kP);
  }
}

TEST_CASE("stats: CYCLE partners are uniformly random single cycles", "[stats]") {
  FMT_SEEDED_RNG(0x57ac);
  std::vector<float> lam(16);
  std::vector<int64_t> par(16);
  // p(i) uniform over the other n - 1 samples
  for (int64_t n : {7, 16}) {
    const int64_t draws = 20000;
    const uint64_t s = rng(), off = rng();
    INFO("batch " << n << " seed " << s << " offset " << off);
    std::vector<std::vector<int64_t>> where((size_t)n, std::vector<int64_t>((size_t)n, 0));
    int64_t bad = 0;
    for (int64_t k = 0; k < draws; ++k) {
      REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_CYCLE, s,
                             off + (uint64_t)k, n, lam.data(), par.data(),
                             nullptr) == FASTMIX_SUCCESS);
      bad += !is_single_cycle(par.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        bad += par[(size_t)i] == i || par[(size_t)par[(size_t)i]] == i;
        ++where[(size_t)i][(size_t)par[(size_t)i]];
      }
    }
    CHECK(bad == 0);
    for (int64_t i = 0; i < n; ++i) {
      INFO("partner of sample " << i);
      std::vector<int64_t> others;
      for (int64_t j = 0; j < n; ++j)
        if (j != i) others.push_back(where[(size_t)i][(size_t)j]);
      CHECK(where[(size_t)i][(size_t)i] == 0);
      CHECK(chi_square_p(others) > kP);
    }
  }
  // all (n - 1)! cycles equally likely
  for (int64_t n : {3, 4, 5, 6}) {
    int64_t cells = 1;
    for (int64_t k = 2; k < n; ++k) cells *= k;
    const int64_t draws = std::max<int64_t>(500 * cells, 20000);
    const uint64_t s = rng(), off = rng();
    INFO("batch " << n << " seed " << s << " offset " << off);
    std::map<int64_t, int64_t> counts;
    for (int64_t k = 0; k < draws; ++k) {
      REQUIRE(fastmix_sample(FASTMIX_DEVICE_CPU, 0.4f, 0, FASTMIX_PAIRING_CYCLE, s,
                             off + (uint64_t)k, n, lam.data(), par.data(),
                             nullptr) == FASTMIX_SUCCESS);
      REQUIRE(is_single_cycle(par.data(), n));
      ++counts[permutation_index(par.data(), n)];
    }
    CHECK((int64_t)counts.size() == cells);
    std::vector<int64_t> c;
    for (const auto &kv : counts) c.push_back(kv.second);
    CHECK(chi_square_p(c) > kP);
  }
}
