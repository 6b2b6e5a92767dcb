// CUDA kernels of the mixup cross-entropy and the soft targets, with their
// launchers.  The per-row math is kernels/math/cross_entropy.cuh, shared with
// the CPU backend; this file holds the GPU's way to the row statistics (an
// online accumulator), the launch geometry and the memory movement.
// docs/loss.md explains the design; in short:
//
//  - A team works on one row at a time: a warp when the row has at most
//    kWarpMaxVecs 16-byte vectors, else the whole block (kThreads threads).
//  - Pass 1 reads the row once with 16-byte loads (scalar loads for the
//    unaligned head and tail, at most 2 * (16 / size - 1) elements), keeps an
//    online (max, sum exp, sum) per thread and reduces it over the team.  When
//    the gradient is asked and the team's share of the row fits in shared
//    memory, each thread also stores its vectors there; pass 2 (the gradient)
//    then reads them back instead of global memory.  A thread reads back only
//    the vectors it stored itself, so no barrier is needed for the cache, and
//    grad_logits == logits is safe: every element is read and then written by
//    the same thread, and the two gathered logits z[y1], z[y2] are read before
//    the team barrier that precedes any write.  Rows too long for shared memory
//    are read a second time (mostly from L2).
//  - NONE: ce_kernel<..., false> with a grid of up to a full wave; row i's
//    loss goes to loss[i].
//  - MEAN and SUM without a workspace: ce_kernel<..., true> with ONE block,
//    which first sums the weights (the MEAN denominator, needed by the
//    gradient), then walks all rows with the same teams, each team leader
//    adding its row losses in row order to a float64, and finally reduces the
//    leaders' sums with cub::BlockReduce.  A call may not allocate, so without
//    scratch memory there is nowhere to put per-block partial sums of a
//    multi-block grid; one block is the only deterministic way to reduce in
//    the same pass that reads the logits (its cost is in docs/loss.md).
//  - MEAN and SUM with the caller's workspace (fastmix_cross_entropy_ws):
//    ce_weight_kernel writes the MEAN denominator to the workspace, the rows
//    run over the whole grid as for NONE with their losses going to the
//    workspace, and ce_sum_kernel adds those in a fixed order: the same bits
//    as the single block, at the speed of a full grid.
#include "cuda_util.cuh"
#include "math/cross_entropy.cuh"
#include "math/dtype.cuh"

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

namespace fm {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kVecBytes = 16;
constexpr int kUnroll = 4;             // 16-byte loads in flight per thread
constexpr int64_t kWarpMaxVecs = 256;  // rows up to 256 vectors (1024 fp32, 2048 fp16) per warp

// ---- the online log-sum-exp accumulator -------------------------------------
// m: running maximum, s: sum of exp(z - m), sz: sum of z.  Adding -inf to an
// accumulator whose maximum is -inf counts it as exp(0) (the row's lse then
// stays -inf whatever s is); a NaN makes s NaN.
struct CeAcc {
  float m, s, sz;
};

__device__ __forceinline__ CeAcc ce_acc_init() { return CeAcc{-INFINITY, 0.0f, 0.0f}; }

__device__ __forceinline__ void ce_acc_add(CeAcc &a, float x) {
  if (x > a.m) {
    a.s = a.s * expf(a.m - x) + 1.0f;
    a.m = x;
  } else {
    a.s += x == a.m ? 1.0f : expf(x - a.m);
  }
  a.sz += x;
}

// Adds N values with one rescale: the maximum of the N first, then one exp
// per value, independent of each other (instruction-level parallelism).
// Same conventions as ce_acc_add.
template <int N>
__device__ __forceinline__ void ce_acc_add_n(CeAcc &a, const float (&x)[N]) {
  float vm = x[0];
  for (int k = 1; k < N; ++k) vm = x[k] > vm ? x[k] : vm;
  if (vm > a.m) {
    a.s = a.s * expf(a.m - vm);
    a.m = vm;
  }
  for (int k = 0; k < N; ++k) {
    a.s += x[k] == a.m ? 1.0f : expf(x[k] - a.m);
    a.sz += x[k];
  }
}

// Symmetric in its arguments up to NaN: combine(a, b) and combine(b, a) are
// bitwise equal (IEEE + and * commute), so butterfly reductions give every
// lane the same value.
__device__ __forceinline__ float ce_acc_scale(const CeAcc &a, float m) {
  return a.m == m ? a.s : a.s * expf(a.m - m);
}

__device__ __forceinline__ CeAcc ce_acc_combine(const CeAcc &a, const CeAcc &b) {
  const float m = a.m > b.m ? a.m : b.m;
  return CeAcc{m, ce_acc_scale(a, m) + ce_acc_scale(b, m), a.sz + b.sz};
}

// One gradient element from the logit x itself, with CUDA's expf.
__device__ __forceinline__ float ce_grad(const CeRow &r, int64_t c, float x, float m, float logs,
                                         float eps, float eps_c, float k) {
  return ce_grad_p(r, c, expf((x - m) - logs), eps, eps_c, k);
}

struct CeParams {
  const void *logits;
  void *grad;
  const int64_t *labels;
  const float *lambdas;
  const int64_t *partners;
  float *loss;
  int64_t batch, classes, stride, ignore_index;
  float eps, eps_c, grad_scale;
  fastmix_reduction reduction;
  int64_t cache_vecs;  // 16-byte vectors of shared memory per team; 0: no cache
  bool gvec;           // grad rows have the same offset from 16-byte alignment as logits rows
  // Workspace path (rows over the whole grid, kReduce false): the MEAN
  // denominator computed by ce_weight_kernel, or NULL (SUM, NONE).
  const double *weight_sum_dev;
};

struct AccOp {
  __device__ __forceinline__ CeAcc operator()(const CeAcc &a, const CeAcc &b) const {
    return ce_acc_combine(a, b);
  }
};

using BlockAccReduce = cub::BlockReduce<CeAcc, kThreads>;
using BlockSumReduce = cub::BlockReduce<double, kThreads>;

// A warp reduces with a butterfly: every lane gets bitwise the same result.
struct WarpTeam {
  static constexpr int kSize = 32;
  int rank;
  __device__ __forceinline__ CeAcc reduce(CeAcc a) const {
    FM_UNROLL
    for (int o = 16; o > 0; o >>= 1) {
      const CeAcc b{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o),
                    __shfl_xor_sync(0xffffffffu, a.sz, o)};
      a = ce_acc_combine(a, b);
    }
    __syncwarp();  // orders the gathers of pass 1 before the writes of pass 2
    return a;
  }
};

// The whole block on one row; the result is broadcast through shared memory.
struct BlockTeam {
  static constexpr int kSize = kThreads;
  int rank;
  typename BlockAccReduce::TempStorage *temp;
  CeAcc *slot;
  __device__ __forceinline__ CeAcc reduce(CeAcc a) const {
    const CeAcc r = BlockAccReduce(*temp).Reduce(a, AccOp());
    if (rank == 0) *slot = r;
    __syncthreads();
    const CeAcc out = *slot;
    __syncthreads();  // temp and slot are reused by the next row
    return out;
  }
};

template <class T>
__device__ __forceinline__ void load_vec(const uint4 &q,
                                         float (&x)[kVecBytes / sizeof(typename T::raw)]) {
  using raw = typename T::raw;
  constexpr int V = kVecBytes / (int)sizeof(raw);
  const raw *pq = reinterpret_cast<const raw *>(&q);
  FM_UNROLL
  for (int k = 0; k < V; ++k) x[k] = T::load(pq[k]);
}

// One row: returns its loss (valid on the team's rank 0) and writes its
// gradient when asked.  cache: the team's shared-memory slice, or NULL.
template <class T, class Team>
__device__ __forceinline__ float ce_row_dev(const CeParams &p, int64_t i, const Team &team, float k,
                                            uint4 *cache) {
  using raw = typename T::raw;
  constexpr int V = kVecBytes / (int)sizeof(raw);
  constexpr int64_t kStep = (int64_t)kUnroll * Team::kSize;
  const int64_t C = p.classes;
  const raw *z = static_cast<const raw *>(p.logits) + i * p.stride;
  const CeRow r = ce_row(p.labels, p.lambdas, p.partners, i, p.batch, C, p.ignore_index);

  const int64_t mis = (int64_t)((reinterpret_cast<uintptr_t>(z) % kVecBytes) / sizeof(raw));
  const int64_t head = mis == 0 ? 0 : (V - mis < C ? V - mis : C);
  const int64_t nvec = (C - head) / V;
  const int64_t tail0 = head + nvec * V;
  const int64_t nedge = head + (C - tail0);  // < 2 * V <= 16 <= team size
  const uint4 *zv = reinterpret_cast<const uint4 *>(z + head);

  // ---- pass 1: online max, sum of exp and sum over the row ----
  CeAcc acc = ce_acc_init();
  for (int64_t v0 = team.rank; v0 < nvec; v0 += kStep) {
    uint4 q[kUnroll];
    FM_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = v0 + (int64_t)u * Team::kSize;
      if (v < nvec) q[u] = zv[v];
    }
    FM_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = v0 + (int64_t)u * Team::kSize;
      if (v < nvec) {
        if (cache) cache[v] = q[u];
        float x[V];
        load_vec<T>(q[u], x);
        ce_acc_add_n<V>(acc, x);
      }
    }
  }
  int64_t ec = -1;  // this thread's edge column, if any
  float xe = 0.0f;
  if (team.rank < nedge) {
    ec = team.rank < head ? team.rank : tail0 + (team.rank - head);
    xe = T::load(z[ec]);
    ce_acc_add(acc, xe);
  }
  float zy1 = 0.0f, zy2 = 0.0f;
  if (team.rank == 0) {  // before the barrier in reduce(): the gradient may overwrite z
    if (r.w1 != 0.0f) zy1 = T::load(z[r.y1]);
    if (r.w2 != 0.0f) zy2 = T::load(z[r.y2]);
  }
  const CeAcc tot = team.reduce(acc);
  const float m = tot.m, logs = logf(tot.s), mean = tot.sz / (float)C;
  const float loss = team.rank == 0 ? ce_loss(r, m, logs, zy1, zy2, mean, p.eps) : 0.0f;

  // ---- pass 2: the gradient, from the cache or a second read ----
  if (p.grad) {
    raw *g = static_cast<raw *>(p.grad) + i * p.stride;
    uint4 *gv = reinterpret_cast<uint4 *>(g + head);
    for (int64_t v0 = team.rank; v0 < nvec; v0 += kStep) {
      uint4 q[kUnroll];
      FM_UNROLL
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t v = v0 + (int64_t)u * Team::kSize;
        if (v < nvec) q[u] = cache ? cache[v] : zv[v];
      }
      FM_UNROLL
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t v = v0 + (int64_t)u * Team::kSize;
        if (v < nvec) {
          float x[V];
          load_vec<T>(q[u], x);
          uint4 o;
          raw *po = reinterpret_cast<raw *>(&o);
          const int64_t c0 = head + v * V;
          FM_UNROLL
          for (int e = 0; e < V; ++e)
            po[e] = T::store(ce_grad(r, c0 + e, x[e], m, logs, p.eps, p.eps_c, k));
          if (p.gvec) {
            gv[v] = o;
          } else {
            FM_UNROLL
            for (int e = 0; e < V; ++e) g[c0 + e] = po[e];
          }
        }
      }
    }
    if (ec >= 0) g[ec] = T::store(ce_grad(r, ec, xe, m, logs, p.eps, p.eps_c, k));
  }
  return loss;
}

// The MEAN denominator sum_i (w1 + w2) over the whole batch, by one block in
// a fixed order (per-thread strided float64 sums, then CUB's tree): the same
// bits on every run.  Every thread gets the result.
__device__ double block_weight_sum(const CeParams &p, typename BlockSumReduce::TempStorage &temp,
                                   double &slot) {
  double w = 0.0;
  for (int64_t i = threadIdx.x; i < p.batch; i += kThreads)
    w += ce_weight(ce_row(p.labels, p.lambdas, p.partners, i, p.batch, p.classes, p.ignore_index));
  const double total = BlockSumReduce(temp).Sum(w);
  if (threadIdx.x == 0) slot = total;
  __syncthreads();
  return slot;
}

// Workspace path, before the rows: the MEAN denominator into the workspace.
__global__ void __launch_bounds__(kThreads) ce_weight_kernel(const CeParams p, double *out) {
  __shared__ typename BlockSumReduce::TempStorage temp;
  __shared__ double slot;
  const double w = block_weight_sum(p, temp, slot);
  if (threadIdx.x == 0) *out = w;
}

// Workspace path, after the rows: the row losses summed in a fixed order into
// loss[0] (divided by the denominator for MEAN).
__global__ void __launch_bounds__(kThreads)
    ce_sum_kernel(const float *row_loss, int64_t n, const double *weight_sum, float *loss,
                  fastmix_reduction reduction) {
  __shared__ typename BlockSumReduce::TempStorage temp;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += (double)row_loss[i];
  const double total = BlockSumReduce(temp).Sum(s);
  if (threadIdx.x == 0) loss[0] = ce_reduced(reduction, total, weight_sum ? *weight_sum : 0.0);
}

// kBlockTeam: one row per block, else one per warp.  kReduce: MEAN/SUM, run
// as a single block; else NONE over a grid.
template <class T, bool kBlockTeam, bool kReduce>
__global__ void __launch_bounds__(kThreads) ce_kernel(const CeParams p) {
  extern __shared__ uint4 ce_cache[];
  __shared__ typename BlockAccReduce::TempStorage acc_temp;
  __shared__ typename BlockSumReduce::TempStorage sum_temp;
  __shared__ CeAcc acc_slot;
  __shared__ double weight_slot;

  float k = p.grad_scale;
  double weight_sum = 0.0;
  if (kReduce && p.reduction == FASTMIX_REDUCTION_MEAN) {
    weight_sum = block_weight_sum(p, sum_temp, weight_slot);
    __syncthreads();  // sum_temp is reused below
    k = ce_grad_factor(p.reduction, p.grad_scale, weight_sum);
  }
  if (!kReduce && p.weight_sum_dev)
    k = ce_grad_factor(p.reduction, p.grad_scale, *p.weight_sum_dev);

  double loss_sum = 0.0;  // kReduce: this team leader's rows, in row order
  if (kBlockTeam) {
    const BlockTeam team{(int)threadIdx.x, &acc_temp, &acc_slot};
    uint4 *cache = p.cache_vecs ? ce_cache : nullptr;
    for (int64_t i = blockIdx.x; i < p.batch; i += gridDim.x) {
      const float l = ce_row_dev<T>(p, i, team, k, cache);
      if (threadIdx.x == 0) {
        if (kReduce)
          loss_sum += (double)l;
        else
          p.loss[i] = l;
      }
    }
  } else {
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const WarpTeam team{lane};
    uint4 *cache = p.cache_vecs ? ce_cache + warp * p.cache_vecs : nullptr;
    const int64_t teams = (int64_t)gridDim.x * kWarps;
    for (int64_t i = (int64_t)blockIdx.x * kWarps + warp; i < p.batch; i += teams) {
      const float l = ce_row_dev<T>(p, i, team, k, cache);
      if (lane == 0) {
        if (kReduce)
          loss_sum += (double)l;
        else
          p.loss[i] = l;
      }
    }
  }
  if (kReduce) {
    const double total = BlockSumReduce(sum_temp).Sum(loss_sum);
    if (threadIdx.x == 0) p.loss[0] = ce_reduced(p.reduction, total, weight_sum);
  }
}

constexpr int kStThreads = 256;
constexpr int64_t kStChunk = 4096;

template <class T>
__global__ void __launch_bounds__(kStThreads)
    soft_targets_kernel(const int64_t *labels, const float *lambdas, const int64_t *partners,
                        int64_t n, int64_t C, float eps, float eps_c, typename T::raw *t,
                        int64_t stride, int64_t chunks) {
  const int64_t items = n * chunks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t i = item / chunks, c0 = (item % chunks) * kStChunk;
    const int64_t c1 = c0 + kStChunk < C ? c0 + kStChunk : C;
    const LabelPair r = st_row(labels, lambdas, partners, i, n, C);
    typename T::raw *row = t + i * stride;
    for (int64_t c = c0 + threadIdx.x; c < c1; c += kStThreads)
      row[c] = T::store(soft_target(r, c, eps, eps_c));
  }
}

// ---- host side --------------------------------------------------------------
CeParams make_params(const LossArgs &a) {
  CeParams p{a.logits,
             a.grad,
             a.labels,
             a.lambdas,
             a.partners,
             a.loss,
             a.batch,
             a.classes,
             a.stride,
             a.ignore_index,
             a.eps,
             a.eps / (float)a.classes,
             a.grad_scale,
             a.reduction,
             0,
             ((uintptr_t)a.grad - (uintptr_t)a.logits) % kVecBytes == 0,
             nullptr};
  return p;
}

// Launches ce_kernel over the rows of p: warp or block teams by the row
// length, the row cache in shared memory when the gradient is asked and it
// fits, and one block (kReduce: MEAN/SUM reduced in the kernel) or up to a
// full wave.
template <class T, bool kReduce>
fastmix_status launch_rows(const char *func, const Device &dev, CeParams p, cudaStream_t stream) {
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(typename T::raw);
  const int64_t row_vecs = p.classes / V;  // no row has more aligned vectors
  const bool block_team = row_vecs > kWarpMaxVecs;
  const int64_t teams = block_team ? 1 : kWarps;
  void (*kernel)(CeParams) =
      block_team ? ce_kernel<T, true, kReduce> : ce_kernel<T, false, kReduce>;

  cudaFuncAttributes attr;
  cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  if (err != cudaSuccess) return cuda_error(func, err);
  const int64_t smem_room = (int64_t)dev.smem_optin - (int64_t)attr.sharedSizeBytes;
  int64_t smem = 0;
  if (p.grad && row_vecs > 0 && teams * row_vecs * kVecBytes <= smem_room) {
    p.cache_vecs = row_vecs;
    smem = teams * row_vecs * kVecBytes;
  }
  if (smem > 48 * 1024)
    FM_TRY(allow_dynamic_smem(func, reinterpret_cast<const void *>(kernel), dev, (int)smem_room));
  int64_t grid = 1;
  if (!kReduce) {
    int per_sm = 0;
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, (size_t)smem);
    if (err != cudaSuccess) return cuda_error(func, err);
    const int64_t wave = (int64_t)dev.sms * (per_sm > 0 ? per_sm : 1);
    const int64_t blocks = (p.batch + teams - 1) / teams;
    grid = blocks < wave ? blocks : wave;
  }
  return launch(func, kernel, (unsigned)grid, kThreads, (size_t)smem, stream, p);
}

// MEAN/SUM with the caller's workspace, [double denominator][float row
// losses]: the denominator (MEAN), the rows over the whole grid, then their
// sum in a fixed order into loss[0].
template <class T>
fastmix_status launch_ce_workspace(const Device &dev, const LossArgs &a,
                                   cudaStream_t stream) {
  double *ws_weight = static_cast<double *>(a.workspace);
  float *ws_rows = reinterpret_cast<float *>(static_cast<char *>(a.workspace) + 8);
  CeParams p = make_params(a);
  p.loss = ws_rows;
  if (a.reduction == FASTMIX_REDUCTION_MEAN) {
    FM_TRY(launch(a.func, ce_weight_kernel, 1, kThreads, 0, stream, p, ws_weight));
    p.weight_sum_dev = ws_weight;
  }
  FM_TRY((launch_rows<T, false>(a.func, dev, p, stream)));
  return launch(a.func, ce_sum_kernel, 1, kThreads, 0, stream, ws_rows, a.batch, p.weight_sum_dev,
                a.loss, a.reduction);
}

template <class T>
fastmix_status launch_ce(const Device &dev, const LossArgs &a, cudaStream_t stream) {
  if (a.reduction == FASTMIX_REDUCTION_NONE)
    return a.batch == 0 ? FASTMIX_SUCCESS
                        : launch_rows<T, false>(a.func, dev, make_params(a), stream);
  // An empty batch still writes the reduced loss (MEAN: NaN, SUM: 0).
  if (a.workspace && a.batch > 0) return launch_ce_workspace<T>(dev, a, stream);
  return launch_rows<T, true>(a.func, dev, make_params(a), stream);
}

template <class T>
fastmix_status launch_st(const Device &dev, const SoftTargetsArgs &a, cudaStream_t stream) {
  if (a.batch == 0) return FASTMIX_SUCCESS;
  const int64_t n = a.batch, C = a.classes;
  const int64_t chunks = (C + kStChunk - 1) / kStChunk;
  const int64_t items = n * chunks;
  const int64_t wave = (int64_t)dev.sms * 8;
  const int64_t grid = items < wave ? items : wave;
  return launch(a.func, soft_targets_kernel<T>, (unsigned)grid, kStThreads, 0, stream, a.labels,
                a.lambdas, a.partners, n, C, a.eps, a.eps / (float)C,
                static_cast<typename T::raw *>(a.targets), a.stride, chunks);
}

}  // namespace

fastmix_status cuda_loss(const LossArgs &a, void *stream) {
  const char *func = a.func;
  Device dev;
  FM_TRY(current_device(func, &dev));
  FM_TRY(check_pointer(func, "logits", a.logits, dev));
  FM_TRY(check_pointer(func, "labels", a.labels, dev));
  if (a.lambdas) FM_TRY(check_pointer(func, "lambdas", a.lambdas, dev));
  if (a.partners) FM_TRY(check_pointer(func, "partners", a.partners, dev));
  FM_TRY(check_pointer(func, "loss", a.loss, dev));
  if (a.grad) FM_TRY(check_pointer(func, "grad_logits", a.grad, dev));
  if (a.workspace) FM_TRY(check_pointer(func, "workspace", a.workspace, dev));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return dispatch_dtype(a.dtype, [&](auto t) { return launch_ce<decltype(t)>(dev, a, s); });
}

fastmix_status cuda_soft_targets(const SoftTargetsArgs &a, void *stream) {
  const char *func = a.func;
  Device dev;
  FM_TRY(current_device(func, &dev));
  FM_TRY(check_pointer(func, "labels", a.labels, dev));
  if (a.lambdas) FM_TRY(check_pointer(func, "lambdas", a.lambdas, dev));
  if (a.partners) FM_TRY(check_pointer(func, "partners", a.partners, dev));
  FM_TRY(check_pointer(func, "targets", a.targets, dev));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return dispatch_dtype(a.dtype, [&](auto t) { return launch_st<decltype(t)>(dev, a, s); });
}

}  // namespace fm
