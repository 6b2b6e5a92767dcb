// The walk along the partner chains, shared by the out-of-place kernels of
// mixup and CutMix: the order in which their blocks take the samples so that
// a partner's chunk, read from DRAM for one sample, is still in L2 when its
// own sample is read a moment later.
//
// The walk: positions 0..n-1 hold every sample once, each followed by its
// partner unless the partner is already placed (then the next unplaced
// sample starts a new chain); with a permutation, its cycles one after the
// other.  Batches up to kMaxWalk samples (the walk and the partners take 8
// bytes a sample of shared memory); above, the samples go in order, and a
// partner's chunk may be read from DRAM a second time.
#pragma once

#include "cuda_util.cuh"

#include <stdint.h>

namespace fm {

constexpr int64_t kMaxWalk = 4096;

// Whether the walk pays for itself.  One thread finds it, about one
// dependent shared-memory load per sample (some 30 cycles on Ampere and
// Hopper) before any block's first load, a latency that does not shrink with
// more SMs while the time to move the batch does.  It saves at most the
// partner reads, and only where the batch's input and output together do not
// fit in L2 (otherwise a partner chunk read early is still in L2 when its
// own sample comes, in any order).  At about 13 bytes of DRAM bandwidth per
// SM per cycle (A100, H100, H200), reading and writing a sample of
// kWalkBytesPerSm x SMs bytes takes about 20 times the walk's cycles per
// sample, so the walk costs at most about 5% of the call: samples of 528 KiB
// and more on an H100 (3x224x224 float32 is 588 KiB), 32 KiB on the 8-SM
// cycle model of bench/sim_timing.sh.
constexpr int64_t kWalkBytesPerSm = 4096;

inline bool walk_pays(const Device &dev, int64_t n, int64_t sample_bytes) {
  return n <= kMaxWalk && sample_bytes >= kWalkBytesPerSm * dev.sms &&
         2 * n * sample_bytes > (int64_t)dev.l2_bytes;
}

// Shared memory the walk takes: the walk and, while it is found, the partners.
inline size_t walk_smem(int64_t n) { return 2 * sizeof(int32_t) * (size_t)n; }

constexpr int32_t kPlaced = -2;  // a sample already in the walk (kBadPartner: no partner)

// The block's walk into walk[0, n), by one thread following the partner
// chains through next[] (partner_of(j) for each sample j, kBadPartner for none, staged
// by the whole block): about 2n shared-memory accesses in sequence, a few
// thousand cycles for 64 samples, once per block.
template <class PartnerOf>
__device__ __forceinline__ void find_walk(int64_t n, int32_t *walk, int32_t *next,
                                          const PartnerOf &partner_of) {
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) next[j] = (int32_t)partner_of(j);
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t k = 0;
    for (int32_t s = 0; s < (int32_t)n; ++s) {
      for (int32_t i = s; i >= 0 && next[i] != kPlaced;) {
        const int32_t nx = next[i];
        next[i] = kPlaced;
        walk[k++] = i;
        i = nx;
      }
    }
  }
  __syncthreads();
}

}  // namespace fm
