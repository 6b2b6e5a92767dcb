// CUDA kernels of the loss (fastmix_loss, fastmix_cross_entropy and _ws) with
// their launchers.  The per-row math is kernels/math/cross_entropy.cuh,
// shared with the CPU backend; the GPU's way to a row's statistics and
// gradient is kernels/ce_row.cuh; this file holds the kernels over the rows,
// the launch geometry and the reductions.  The loss has no
// bitwise contract with the CPU, so this file is built with multiply-add
// contraction and uses the hardware's base-2 exponential and logarithm.
// docs/loss.md explains the design; in short:
//
//  - A team works on one row at a time: a warp when the row has at most
//    kWarpMaxVecs 16-byte vectors, else the whole block (kBlockThreads).
//    Columns are 32-bit (classes < 2^31).
//  - Cross-entropy, pass 1 reads the row once with 16-byte loads (scalar
//    loads for the unaligned head and tail, fewer than 2 * 16 / size
//    elements) in steps of kGroup logits per thread: the step's maximum, one
//    rescale of the running sum when it grows, then one exp2 per logit.  The
//    running state (max m, sum of exp, and for smoothing, class weights or
//    dense targets the sums S and A of docs/loss.md) is reduced over the
//    team.  The two gathered logits z[y1], z[y2] are loaded by the team
//    leader before the row, so their latency hides behind it.
//  - Pass 2 writes the gradient U * softmax(z) - u with one exp2 and one
//    multiply-add per logit for the columns that carry no label; a vector
//    holding a label column takes the exact per-element formula.  It reads
//    the row back from shared memory when the team's share fits (each thread
//    reads only the vectors it stored itself: no barrier, and grad_logits ==
//    logits is safe) at the blocks per SM the registers allow, or at fewer
//    (launch_rows); otherwise it reads the row again, from L2 for rows in
//    flight.
//  - Binary cross-entropy is one pass: per logit its loss term and gradient.
//  - NONE: loss[i] per row over a grid of one wave.  MEAN and SUM: the
//    labelled cross-entropy's denominator first (one block), the rows over
//    the whole grid into a workspace, then their sum in a fixed order (one
//    block): deterministic.  The workspace is the caller's, or for
//    fastmix_cross_entropy one from the stream-ordered pool for the call.
#include "ce_row.cuh"
#include "cuda_util.cuh"
#include "math/cross_entropy.cuh"
#include "math/dtype.cuh"

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

namespace fm {
namespace {

// ---- the kernels ----------------------------------------------------------------
// Before the rows: the MEAN denominator of the labelled cross-entropy,
// sum_i (c1 + c2), by one block in a fixed order (per-thread strided float64
// sums, then CUB's tree): the same bits on every run.
__global__ void __launch_bounds__(kTeamThreads) ce_weight_kernel(const LossParams p, double *out) {
  __shared__ typename BlockSumReduce<kTeamThreads>::TempStorage temp;
  double w = 0.0;
  for (int64_t i = threadIdx.x; i < p.batch; i += kTeamThreads)
    w +=
        ce_weight_cw(ce_row(p.labels, p.lambdas, p.partners, i, p.batch, p.classes, p.ignore_index),
                     p.class_weight);
  const double total = BlockSumReduce<kTeamThreads>(temp).Sum(w);
  if (threadIdx.x == 0) *out = total;
}

// After the rows: their losses summed in a fixed order into
// loss[0], divided for MEAN by *weight_sum (labels) or by denom.
__global__ void __launch_bounds__(kTeamThreads)
    loss_sum_kernel(const float *row_loss, int64_t n, const double *weight_sum, double denom,
                    float *loss, fastmix_reduction reduction) {
  __shared__ typename BlockSumReduce<kTeamThreads>::TempStorage temp;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kTeamThreads) s += (double)row_loss[i];
  const double total = BlockSumReduce<kTeamThreads>(temp).Sum(s);
  if (threadIdx.x == 0) loss[0] = ce_reduced(reduction, total, weight_sum ? *weight_sum : denom);
}

template <class T, Kind K, class Team>
__device__ __forceinline__ float row_dev(const LossParams &p, int64_t i, const Team &team, float k,
                                         uint4 *cache) {
  if constexpr (K == Kind::kCeLabels) return ce_row_dev<T, false>(p, i, team, k, cache);
  if constexpr (K == Kind::kCeDense) return ce_row_dev<T, true>(p, i, team, k, cache);
  if constexpr (K == Kind::kBceLabels) return bce_row_dev<T, false>(p, i, team, k);
  return bce_row_dev<T, true>(p, i, team, k);
}

// The threads of a block of loss_kernel, and the blocks per SM its register
// bound is set for.
__host__ __device__ constexpr int threads_of(bool block_team) {
  return block_team ? kBlockThreads : kTeamThreads;
}
__host__ __device__ constexpr int blocks_per_sm_of(bool block_team) {
  return kMinBlocks * kTeamThreads / threads_of(block_team);
}

// kBlockTeam: one row per block (kBlockThreads), else one per warp
// (kTeamThreads); one loss per row into p.loss.  At most 64 registers: two
// 512-thread (four 256-thread) blocks per SM.
template <class T, Kind K, bool kBlockTeam>
__global__ void __launch_bounds__(threads_of(kBlockTeam), blocks_per_sm_of(kBlockTeam))
    loss_kernel(const LossParams p) {
  extern __shared__ uint4 ce_cache[];
  __shared__ typename BlockAccReduce<threads_of(kBlockTeam)>::TempStorage acc_temp;
  __shared__ typename BlockFloatReduce<threads_of(kBlockTeam)>::TempStorage float_temp;
  __shared__ Acc acc_slot[2];

  float k = p.k;
  if (K == Kind::kCeLabels && p.reduction == FASTMIX_REDUCTION_MEAN && p.weight_sum_dev)
    k = ce_grad_factor(p.reduction, p.grad_scale, *p.weight_sum_dev);

  if constexpr (kBlockTeam) {
    const BlockTeam team{(int)threadIdx.x, &acc_temp, &float_temp, acc_slot};
    uint4 *cache = p.cache_vecs ? ce_cache : nullptr;
    for (int64_t i = blockIdx.x; i < p.batch; i += gridDim.x) {
      const float l = row_dev<T, K>(p, i, team, k, cache);
      if (threadIdx.x == 0) p.loss[i] = l;
    }
  } else {
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const WarpTeam team{lane};
    uint4 *cache = p.cache_vecs ? ce_cache + warp * p.cache_vecs : nullptr;
    const int64_t teams = (int64_t)gridDim.x * kWarps;
    for (int64_t i = (int64_t)blockIdx.x * kWarps + warp; i < p.batch; i += teams) {
      const float l = row_dev<T, K>(p, i, team, k, cache);
      if (lane == 0) p.loss[i] = l;
    }
  }
}

// ---- host side --------------------------------------------------------------
Kind kind_of(const LossArgs &a) {
  if (a.kind == FASTMIX_LOSS_BINARY_CROSS_ENTROPY)
    return a.targets ? Kind::kBceDense : Kind::kBceLabels;
  return a.targets ? Kind::kCeDense : Kind::kCeLabels;
}

LossParams make_params(const LossArgs &a) {
  LossParams p{};
  p.logits = a.logits;
  p.grad = a.grad;
  p.labels = a.labels;
  p.lambdas = a.lambdas;
  p.partners = a.partners;
  p.loss = a.loss;
  p.batch = a.batch;
  p.stride = a.stride;
  p.ignore_index = a.ignore_index;
  p.classes = (int)a.classes;
  p.eps = a.eps;
  p.eps_c = a.eps / (float)a.classes;
  p.grad_scale = a.grad_scale;
  const double denom = loss_shape_denominator(a);
  p.k = a.reduction == FASTMIX_REDUCTION_MEAN && denom > 0.0 ? (float)((double)a.grad_scale / denom)
                                                             : a.grad_scale;
  p.reduction = a.reduction;
  p.class_weight = a.class_weight;
  p.pos_weight = a.pos_weight;
  p.threshold = a.threshold;
  p.targets = a.targets;
  p.targets_dtype = a.targets_dtype;
  p.targets_stride = a.targets_stride;
  p.gvec = ((uintptr_t)a.grad - (uintptr_t)a.logits) % kVecBytes == 0;
  return p;
}

// Launches loss_kernel over the rows of p: warp or block teams by the row
// length, the row cache in shared memory when the cross-entropy's gradient
// is asked and it fits one block per SM at least, and up to a full wave.
template <class T, Kind K>
fastmix_status launch_rows(const char *func, const Device &dev, LossParams p, cudaStream_t stream) {
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(typename T::raw);
  const int64_t row_vecs = p.classes / V;  // no row has more aligned vectors
  const bool block_team = row_vecs > kWarpMaxVecs;
  const int64_t teams = block_team ? 1 : kWarps;
  void (*kernel)(LossParams) =
      bool_switch(block_team, [](auto b) { return loss_kernel<T, K, decltype(b)::value>; });
  const int threads = threads_of(block_team);
  const int per_sm_wanted = blocks_per_sm_of(block_team);

  cudaFuncAttributes attr;
  cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  if (err != cudaSuccess) return cuda_error(func, err);
  const int64_t smem_room = (int64_t)dev.smem_optin - (int64_t)attr.sharedSizeBytes;
  // The row cache, at the most blocks per SM (those the registers allow,
  // halved until it fits) whose share of the SM's shared memory, less what
  // each block reserves and its static shared memory, holds every team's
  // row: a row read once from DRAM with fewer blocks per SM moves half the
  // bytes of a row read twice with more (the second read misses L2 once the
  // rows in flight outgrow it).  A cache that fits no block is left out.
  const bool ce = K == Kind::kCeLabels || K == Kind::kCeDense;
  int64_t smem = 0;
  int per_sm_cap = per_sm_wanted;
  if (ce && p.grad && row_vecs > 0) {
    const int64_t need = teams * row_vecs * kVecBytes;
    for (int b = per_sm_wanted; b >= 1; b /= 2) {
      const int64_t share =
          (int64_t)dev.smem_per_sm / b - (int64_t)dev.smem_reserved - (int64_t)attr.sharedSizeBytes;
      if (need <= (share < smem_room ? share : smem_room)) {
        p.cache_vecs = (int)row_vecs;
        smem = need;
        per_sm_cap = b;
        break;
      }
    }
  }
  int64_t wave = 0;
  FM_TRY(wave_blocks(func, dev, kernel, threads, smem, &wave));
  // The grid itself keeps the cache's blocks per SM (not only the occupancy
  // query, which a simulator may answer without shared memory).
  const int64_t cap = (int64_t)dev.sms * per_sm_cap;
  if (wave > cap) wave = cap;
  const int64_t blocks = (p.batch + teams - 1) / teams;
  const int64_t grid = blocks < wave ? blocks : wave;
  return launch(func, kernel, (unsigned)grid, (unsigned)threads, (size_t)smem, stream, p);
}

// MEAN/SUM through the workspace, [double denominator][float row losses]:
// the labelled denominator (MEAN), the rows over the whole grid, then their
// sum in a fixed order into loss[0].
template <class T, Kind K>
fastmix_status launch_workspace(const Device &dev, const LossArgs &a, cudaStream_t stream) {
  double *ws_weight = static_cast<double *>(a.workspace);
  float *ws_rows = reinterpret_cast<float *>(static_cast<char *>(a.workspace) + 8);
  LossParams p = make_params(a);
  p.loss = ws_rows;
  if (K == Kind::kCeLabels && a.reduction == FASTMIX_REDUCTION_MEAN) {
    FM_TRY(launch(a.func, ce_weight_kernel, 1, kTeamThreads, 0, stream, p, ws_weight));
    p.weight_sum_dev = ws_weight;
  }
  FM_TRY((launch_rows<T, K>(a.func, dev, p, stream)));
  return launch(a.func, loss_sum_kernel, 1, kTeamThreads, 0, stream, ws_rows, a.batch,
                p.weight_sum_dev, loss_shape_denominator(a), a.loss, a.reduction);
}

template <class T, Kind K>
fastmix_status launch_kind(const Device &dev, const LossArgs &a, cudaStream_t stream) {
  if (a.reduction == FASTMIX_REDUCTION_NONE)
    return a.batch == 0 ? FASTMIX_SUCCESS : launch_rows<T, K>(a.func, dev, make_params(a), stream);
  if (a.batch > 0) return launch_workspace<T, K>(dev, a, stream);
  // An empty batch still writes the reduced loss (MEAN: NaN, SUM: 0).
  return launch(a.func, loss_sum_kernel, 1, kTeamThreads, 0, stream, (const float *)nullptr,
                (int64_t)0, (const double *)nullptr, loss_shape_denominator(a), a.loss,
                a.reduction);
}

template <class T>
fastmix_status launch_loss(const Device &dev, const LossArgs &a, cudaStream_t stream) {
  switch (kind_of(a)) {
    case Kind::kCeDense:
      return launch_kind<T, Kind::kCeDense>(dev, a, stream);
    case Kind::kBceLabels:
      return launch_kind<T, Kind::kBceLabels>(dev, a, stream);
    case Kind::kBceDense:
      return launch_kind<T, Kind::kBceDense>(dev, a, stream);
    case Kind::kCeLabels:
      break;
  }
  return launch_kind<T, Kind::kCeLabels>(dev, a, stream);
}

}  // namespace

fastmix_status cuda_loss(const LossArgs &a, void *stream) {
  const char *func = a.func;
  if (a.classes > INT32_MAX)
    return fail(FASTMIX_ERROR_NOT_SUPPORTED,
                "%s: classes (%lld) above 2^31 - 1 are not supported on FASTMIX_DEVICE_CUDA", func,
                (long long)a.classes);
  Device dev;
  FM_TRY(current_device(func, &dev));
  FM_TRY(check_pointers(func, dev,
                        {{"logits", a.logits},
                         {"labels", a.labels, true},
                         {"lambdas", a.lambdas, true},
                         {"partners", a.partners, true},
                         {"config->targets", a.targets, true},
                         {"config->class_weight", a.class_weight, true},
                         {"config->pos_weight", a.pos_weight, true},
                         {"loss", a.loss},
                         {"grad_logits", a.grad, true},
                         {"workspace", a.workspace, true}}));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const auto launch_all = [&](const LossArgs &args) {
    return dispatch_dtype(args.dtype,
                          [&](auto t) { return launch_loss<decltype(t)>(dev, args, s); });
  };
  if (a.workspace || a.reduction == FASTMIX_REDUCTION_NONE || a.batch == 0) return launch_all(a);
  // MEAN or SUM without the caller's workspace (fastmix_cross_entropy): one
  // from the device's stream-ordered pool, freed on the stream after the
  // launches.  Both are stream work: nothing waits, and a graph captures them.
  LossArgs own = a;
  const size_t bytes = ce_workspace_bytes(a.batch, a.reduction);
  cudaError_t err = cudaMallocAsync(&own.workspace, bytes, s);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return fail(FASTMIX_ERROR_CUDA,
                "%s: the %zu-byte workspace of the MEAN/SUM reduction could not be allocated: %s "
                "(%s); fastmix_cross_entropy_ws takes the caller's",
                func, bytes, cudaGetErrorName(err), cudaGetErrorString(err));
  }
  const fastmix_status st = launch_all(own);
  err = cudaFreeAsync(own.workspace, s);
  if (st != FASTMIX_SUCCESS) return st;
  return err == cudaSuccess ? FASTMIX_SUCCESS : cuda_error(func, err);
}

}  // namespace fm
