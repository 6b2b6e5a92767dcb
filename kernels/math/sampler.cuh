// The mixup sampler: Beta(alpha, alpha) weights and the pairing of the batch,
// written once for the CPU backend and the CUDA kernels.
//
// Randomness is counter-based (cuRAND's Philox4x32-10): the key is the 64-bit
// seed, the 128-bit counter is (block, sample index, offset lo, offset hi).
// So every draw is a pure function of (seed, offset, i) and needs no state:
// any launch geometry, any thread count, either backend gives the same bits.
// Blocks [0, 0x20000000) belong to the Beta sampler of sample i, blocks
// [0x20000000, 0x80000000) to the CutMix draw (kernels/math/cutmix.cuh), and
// the blocks 0x80000000 + r (with sample index 0) key the pairing.
//
// The math uses only + - * /, sqrt, floor and bit operations, with
// contraction off, so the CPU and the GPU produce bitwise the same lambdas.
// fm::log_pos and fm::exp_nonpos are our own (a few ulp accurate) because the
// host libm and CUDA's logf/expf round differently.
#pragma once

#include "common.cuh"

namespace fm {

FM_HD uint4 philox(uint64_t seed, uint32_t block, uint32_t index, uint64_t offset) {
  const uint4 ctr = make_uint4(block, index, (uint32_t)offset, (uint32_t)(offset >> 32));
  const uint2 key = make_uint2((uint32_t)seed, (uint32_t)(seed >> 32));
  return curand_Philox4x32_10(ctr, key);
}

// Uniform in (0, 1) and in (-1, 1) from the top 23 bits of a word: k + 1/2
// with k < 2^23 is exact in a float, so neither ever reaches an end point
// (and uniform11 is never 0: its numerator 2k + 1 - 2^23 is odd).
FM_HD float uniform01(uint32_t w) { return ((float)(w >> 9) + 0.5f) * 1.1920928955078125e-07f; }
FM_HD float uniform11(uint32_t w) {
  return ((float)(w >> 9) + 0.5f) * 2.384185791015625e-07f - 1.0f;
}

// Natural logarithm of a positive finite float.
FM_HD float log_pos(float x) {
  uint32_t b = f32_bits(x);
  int e = 0;
  if (b < 0x00800000u) {  // subnormal: scale into the normal range
    x *= 16777216.0f;
    b = f32_bits(x);
    e = -24;
  }
  e += (int)(b >> 23) - 127;
  float m = f32_from_bits((b & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m *= 0.5f;
    e += 1;
  }
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716.
  const float f = m - 1.0f;  // exact
  const float s = f / (2.0f + f);
  const float z = s * s;
  float p = 0.18181818f;    // 2/11
  p = p * z + 0.22222222f;  // 2/9
  p = p * z + 0.28571429f;  // 2/7
  p = p * z + 0.4f;         // 2/5
  p = p * z + 0.66666669f;  // 2/3
  const float ef = (float)e;
  return ef * kLn2Hi + ((ef * kLn2Lo + s * (z * p)) + 2.0f * s);
}

// exp(x) for x <= 0 (returns 0 below the subnormal range).
FM_HD float exp_nonpos(float x) {
  if (!(x > -104.0f)) return 0.0f;
  const float kf = floorf(x * 1.44269504f + 0.5f);
  float p = exp_poly(ln2_reduce(x, kf));
  int k = (int)kf;  // in [-150, 1]
  if (k < -126) {
    p *= 5.42101086e-20f;  // 2^-64
    k += 64;
  }
  return p * f32_from_bits((uint32_t)(k + 127) << 23);
}

// Everything about Beta(alpha, alpha) that does not depend on the sample,
// computed once on the host and handed to the kernels.
struct BetaParams {
  float alpha;
  float d;  // Marsaglia-Tsang: b - 1/3 with b = alpha (+1 when alpha < 1)
  float c;  // 1 / sqrt(9 d)
  float log_d;
  int boost;  // alpha < 1: G(alpha) = G(alpha + 1) * U^(1/alpha), in logs
  int fold;
};

inline BetaParams make_beta_params(float alpha, int fold) {
  BetaParams p;
  p.alpha = alpha;
  p.boost = alpha < 1.0f;
  const float b = p.boost ? alpha + 1.0f : alpha;
  p.d = b - 0.333333343f;
  p.c = 1.0f / sqrtf(9.0f * p.d);
  p.log_d = log_pos(p.d);
  p.fold = fold != 0;
  return p;
}

// Bound on Marsaglia-Tsang trials.  Each trial is accepted with probability
// > 0.74 (polar method 0.785, Marsaglia-Tsang > 0.95), so running out has
// probability below 1e-37: it never happens, but a kernel must not loop
// forever whatever its input.
constexpr uint32_t kMaxTrials = 64;

// One Marsaglia-Tsang trial for log G, G ~ Gamma(b, 1), b = params.d + 1/3
// >= 1, on the Philox block w: true, with *lg = log G, when the trial is
// accepted.  log_gamma runs the trials one after another; the CUDA sampler
// (log_gammas_lanes) runs several at once, one per lane, and keeps the first
// accepted, which is the same trial.
FM_HD bool gamma_trial(const BetaParams &bp, uint4 w, float *lg) {
  // A standard normal by Marsaglia's polar method.
  const float v1 = uniform11(w.x), v2 = uniform11(w.y);
  const float s = v1 * v1 + v2 * v2;
  if (!(s < 1.0f)) return false;
  const float z = v1 * sqrtf((-2.0f * log_pos(s)) / s);
  const float tt = 1.0f + bp.c * z;
  if (!(tt > 0.0f)) return false;
  const float v = tt * tt * tt;
  const float u = uniform01(w.z);
  const float z2 = z * z;
  const float lv = log_pos(v);
  // The squeeze first; log U only where it fails.
  if (!(u < 1.0f - 0.0331f * (z2 * z2)) && !(log_pos(u) < 0.5f * z2 + bp.d * ((1.0f - v) + lv)))
    return false;
  *lg = bp.log_d + lv;
  return true;
}

// log G for G ~ Gamma(b, 1), in log space so that nothing underflows.
// `first` is the Philox block of the first trial; trial t uses block
// first + 2t.
FM_HD float log_gamma(const BetaParams &bp, uint64_t seed, uint64_t offset, uint32_t index,
                      uint32_t first) {
  float lg;
  for (uint32_t t = 0; t < kMaxTrials; ++t)
    if (gamma_trial(bp, philox(seed, first + 2u * t, index, offset), &lg)) return lg;
  return bp.log_d;  // the mode; reached with probability < 1e-37
}

// The boost of alpha < 1 from its Philox block: log U1 - log U2, where
// log G(a) = log G(a + 1) + log(U) / a for each of the two gammas.
FM_HD float boost_logs(uint4 w) { return log_pos(uniform01(w.x)) - log_pos(uniform01(w.y)); }

// lambda from the two log-gammas and the boost term (read only when
// bp.boost): sigmoid(lg1 - lg2 + boost / alpha), folded to
// sigmoid(|...|) = max(l, 1 - l) when asked.
FM_HD float beta_from_logs(const BetaParams &bp, float lg1, float lg2, float boost) {
  float dlog = lg1 - lg2;
  // The difference of the two boosts is divided once: it may overflow to
  // +-inf for tiny alpha, never to NaN.
  if (bp.boost) dlog = dlog + boost / bp.alpha;
  if (bp.fold) dlog = dlog < 0.0f ? -dlog : dlog;
  // sigmoid(d) = 1 - e/(1+e) for d >= 0 and e/(1+e) for d < 0, e = exp(-|d|).
  // Not 1/(1+e): 1 + e rounds to 1 for every e < 2^-24, which would turn
  // lambdas that should round to 1 - 2^-24 into exactly 1.
  const float e = exp_nonpos(dlog < 0.0f ? dlog : -dlog);
  const float tail = e / (1.0f + e);
  return dlog >= 0.0f ? 1.0f - tail : tail;
}

// lambda_i ~ Beta(alpha, alpha) as G1 / (G1 + G2) = sigmoid(log G1 - log G2).
// It uses the Philox blocks [base, base + 2 * kMaxTrials + 1) of index i:
// base for the boost, base + 1 + 2t for trial t of G1, base + 2 + 2t for G2.
FM_HD float beta_lambda(const BetaParams &bp, uint64_t seed, uint64_t offset, uint64_t i,
                        uint32_t base = 0u) {
  const uint32_t index = (uint32_t)i;
  const float lg1 = log_gamma(bp, seed, offset, index, base + 1u);
  const float lg2 = log_gamma(bp, seed, offset, index, base + 2u);
  const float boost = bp.boost ? boost_logs(philox(seed, base, index, offset)) : 0.0f;
  return beta_from_logs(bp, lg1, lg2, boost);
}

#if defined(__CUDACC__)
// log G1 and log G2 of beta_lambda(bp, seed, offset, index) (base 0) on a
// group of G lanes of a warp, written to lg[0] and lg[1] (shared memory),
// bitwise the serial loops' results, in the latency of about one trial
// instead of a chain of them.  G is a power of two from 2 to 32 and the
// groups are the aligned runs of G lanes; every lane of the warp calls this
// (it votes over the whole warp), `live` false where the group has no sample.
// Lanes [0, G/2) of the group run the trials of G1, lanes [G/2, G) those of
// G2, G/2 trials of each gamma a round: in round r lane k of a half runs trial
// r G/2 + k (Philox block 1 + 2t for G1, 2 + 2t for G2).  A gamma takes the
// accepted trial of its lowest lane in the first round with one, which is the
// first accepted trial of its serial loop; rounds go on while some gamma in
// the warp has none and trials are left (kMaxTrials each, as the serial
// loop, whose fallback log_d is written where none is accepted).
template <int G>
__device__ __forceinline__ void log_gammas_lanes(const BetaParams &bp, uint64_t seed,
                                                 uint64_t offset, uint32_t index, bool live,
                                                 float *lg) {
  static_assert(G >= 2 && G <= 32 && (G & (G - 1)) == 0, "G: a power of two from 2 to 32");
  constexpr uint32_t kAll = 0xffffffffu, H = G / 2;
  const uint32_t lane = threadIdx.x & 31u, k = lane & (H - 1u), g = (lane / H) & 1u;
  const uint32_t half = ((1u << H) - 1u) << (lane - k);  // the lanes of this gamma
  bool need = live;  // the same in the half
  for (uint32_t t0 = 0; t0 < kMaxTrials; t0 += H) {
    const uint32_t t = t0 + k;
    float val = 0.0f;
    bool acc = false;
    if (need && t < kMaxTrials)
      acc = gamma_trial(bp, philox(seed, 1u + g + 2u * t, index, offset), &val);
    const uint32_t ok = __ballot_sync(kAll, acc) & half;
    if ((ok & (0u - ok)) == 1u << lane) lg[g] = val;  // the lowest accepted lane
    need = need && ok == 0u;
    if (!__any_sync(kAll, need)) break;
  }
  if (need && k == 0u) lg[g] = bp.log_d;
}
#endif

// ---------------------------------------------------------------------------
// Pairing.  PERMUTATION and CYCLE come from a keyed bijection of [0, batch)
// evaluated in registers: a 12-round balanced Feistel network on 2h bits
// (4^h >= batch), restricted to [0, batch) by cycle walking, then followed by a
// keyed swap of the values 0 and 1 (a Feistel network alone only reaches even
// permutations).  CYCLE threads the batch into one cycle in the order of that
// permutation: p(i) = sigma(sigma^-1(i) + 1 mod batch).
// ---------------------------------------------------------------------------
constexpr int kFeistelRounds = 12;

struct Pairing {
  uint32_t n;     // batch (<= 2^32 - 1)
  uint32_t kind;  // fastmix_pairing
  uint32_t half_bits;
  uint32_t mask;
  uint32_t swap01;  // apply the final swap of 0 and 1
  uint32_t key[kFeistelRounds];
};

FM_HD uint32_t mix32(uint32_t h) {  // MurmurHash3's finalizer
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// Host and device: the kernels that read seed and offset from device memory
// key the pairing themselves when they run.
FM_HD Pairing make_pairing(int kind, uint64_t seed, uint64_t offset, uint64_t batch) {
  Pairing p;
  p.n = (uint32_t)batch;
  p.kind = (uint32_t)kind;
  uint32_t bits = 0;
  while (bits < 32 && (UINT64_C(1) << bits) < batch) ++bits;
  p.half_bits = bits < 2 ? 1u : (bits + 1) / 2;
  p.mask = (1u << p.half_bits) - 1u;
  uint32_t words[16];
  for (uint32_t blk = 0; blk < 4; ++blk) {
    const uint4 w = philox(seed, 0x80000000u + blk, 0u, offset);
    words[4 * blk + 0] = w.x;
    words[4 * blk + 1] = w.y;
    words[4 * blk + 2] = w.z;
    words[4 * blk + 3] = w.w;
  }
  for (int r = 0; r < kFeistelRounds; ++r) p.key[r] = words[r];
  p.swap01 = words[kFeistelRounds] & 1u;
  return p;
}

FM_HD uint32_t feistel_forward(const Pairing &p, uint32_t v) {
  uint32_t l = v >> p.half_bits, r = v & p.mask;
  FM_UNROLL
  for (int k = 0; k < kFeistelRounds; ++k) {
    const uint32_t t = r;
    r = l ^ (mix32(r ^ p.key[k]) & p.mask);
    l = t;
  }
  return (l << p.half_bits) | r;
}

FM_HD uint32_t feistel_inverse(const Pairing &p, uint32_t v) {
  uint32_t l = v >> p.half_bits, r = v & p.mask;
  FM_UNROLL
  for (int k = kFeistelRounds - 1; k >= 0; --k) {
    const uint32_t t = l;
    l = r ^ (mix32(l ^ p.key[k]) & p.mask);
    r = t;
  }
  return (l << p.half_bits) | r;
}

// sigma(i) and sigma^-1(i) for i in [0, n), n >= 2.  Cycle walking ends: the
// orbit of i under the bijection contains i itself.
FM_HD uint32_t sigma(const Pairing &p, uint32_t i) {
  uint32_t v = feistel_forward(p, i);
  while (v >= p.n) v = feistel_forward(p, v);
  if (p.swap01 && v < 2u) v ^= 1u;
  return v;
}

FM_HD uint32_t sigma_inverse(const Pairing &p, uint32_t i) {
  if (p.swap01 && i < 2u) i ^= 1u;
  uint32_t v = feistel_inverse(p, i);
  while (v >= p.n) v = feistel_inverse(p, v);
  return v;
}

FM_HD int64_t partner(const Pairing &p, uint64_t i) {
  const uint32_t n = p.n, k = (uint32_t)i;
  if (n < 2u) return 0;
  switch (p.kind) {
    case 1: {  // CYCLE
      const uint32_t pos = sigma_inverse(p, k);
      return (int64_t)sigma(p, pos + 1u == n ? 0u : pos + 1u);
    }
    case 2:  // FLIP
      return (int64_t)(n - 1u - k);
    case 3:  // ROLL
      return (int64_t)(k == 0u ? n - 1u : k - 1u);
    default:  // PERMUTATION
      return (int64_t)sigma(p, k);
  }
}

}  // namespace fm
