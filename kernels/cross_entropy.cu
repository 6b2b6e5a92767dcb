// CUDA kernels of the loss (fastmix_loss, fastmix_cross_entropy and _ws) with
// their launchers.  The per-row math is kernels/math/cross_entropy.cuh,
// shared with the CPU backend; this file holds the GPU's way to the row
// statistics, the launch geometry and the memory movement.  The loss has no
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
//  - NONE: loss[i] per row over a grid of one wave.  MEAN and SUM with a
//    workspace: the labelled cross-entropy's denominator first (one block),
//    the rows over the whole grid into the workspace, then their sum in a
//    fixed order (one block): deterministic.  fastmix_cross_entropy without
//    a workspace keeps its single-block reduction (loss_kernel<..., true>),
//    which walks every row in one block.
#include "cuda_util.cuh"
#include "math/cross_entropy.cuh"
#include "math/dtype.cuh"

#include <cfloat>
#include <type_traits>
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

namespace fm {
namespace {

constexpr int kTeamThreads = 512;   // warp teams: 16 rows per block at a time
constexpr int kBlockThreads = 256;  // a block team: one row, 256 threads (fewer per-row costs)
constexpr int kMinBlocks = 2;       // 512-thread blocks per SM the registers allow (<= 64 each)
constexpr int kWarps = kTeamThreads / 32;
constexpr int kVecBytes = 16;
constexpr int kGroup = 16;             // logits per thread per step
constexpr int64_t kWarpMaxVecs = 256;  // rows up to 256 vectors (1024 fp32, 2048 fp16) per warp
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

enum class Kind { kCeLabels, kCeDense, kBceLabels, kBceDense };

// 2^x and log2(x) as one instruction each (MUFU.EX2 / MUFU.LG2; relative
// error about 2^-22, results below 2^-126 flushed to 0).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float lg2(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The reference the exponentials are taken against: the maximum when it is
// finite, else 0 (a row of -inf, or one holding +inf: its loss is then NaN or
// inf as PyTorch's, without inf - inf in the accumulator).
__device__ __forceinline__ float ref_of(float m) { return fabsf(m) <= FLT_MAX ? m : 0.0f; }

// ---- the running statistics of a row ------------------------------------------
// m: maximum so far (-inf before any logit); with r = ref_of(m):
// s = sum exp(z - r); S = sum v; A = sum v * (r - z) for the per-column
// weights v of docs/loss.md (only kept when the row needs them).
struct Acc {
  float m, s, S, A;
};

__device__ __forceinline__ Acc acc_init() { return Acc{-INFINITY, 0.0f, 0.0f, 0.0f}; }

// What a row accumulates besides m and s: nothing, S and A with v = 1
// (labels, smoothing, no class weights), or with per-column v.
enum class VMode { kNone, kUnit, kWeighted };

// Adds N logits x (with their weights v in kWeighted) with one rescale for
// the whole step.
template <int N, VMode kV>
__device__ __forceinline__ void acc_add(Acc &a, const float (&x)[N], const float (&v)[N]) {
  float vm = x[0];
  FM_UNROLL
  for (int k = 1; k < N; ++k) vm = fmaxf(vm, x[k]);
  if (vm > a.m) {
    const float r0 = ref_of(a.m), r1 = ref_of(vm);
    if (a.m != -INFINITY) a.s *= ex2((r0 - r1) * kLog2e);  // else s is 0 (or NaN): kept
    if (kV != VMode::kNone) a.A += a.S * (r1 - r0);
    a.m = vm;
  }
  const float r = ref_of(a.m);
  FM_UNROLL
  for (int k = 0; k < N; ++k) {
    const float d = x[k] - r;
    a.s += ex2(d * kLog2e);
    if (kV == VMode::kUnit) a.A -= d;
    if (kV == VMode::kWeighted) {  // a column of weight 0 adds 0, also where z is -inf
      a.S += v[k];
      a.A -= v[k] != 0.0f ? v[k] * d : 0.0f;
    }
  }
  if (kV == VMode::kUnit) a.S += (float)N;
}

// Symmetric in its arguments (IEEE + and * commute), so that butterfly
// reductions give every lane bitwise the same result.
__device__ __forceinline__ float acc_part(const Acc &a, float r, float &A) {
  const float ra = ref_of(a.m);
  A = a.A + a.S * (r - ra);
  return a.m == -INFINITY ? a.s : a.s * ex2((ra - r) * kLog2e);
}

__device__ __forceinline__ Acc acc_combine(const Acc &a, const Acc &b) {
  const float m = fmaxf(a.m, b.m), r = ref_of(m);
  float Aa, Ab;
  const float sa = acc_part(a, r, Aa), sb = acc_part(b, r, Ab);
  return Acc{m, sa + sb, a.S + b.S, Aa + Ab};
}

struct AccOp {
  __device__ __forceinline__ Acc operator()(const Acc &a, const Acc &b) const {
    return acc_combine(a, b);
  }
};

template <int kTh>
using BlockAccReduce = cub::BlockReduce<Acc, kTh>;
template <int kTh>
using BlockFloatReduce = cub::BlockReduce<float, kTh>;
template <int kTh>
using BlockSumReduce = cub::BlockReduce<double, kTh>;

// A warp reduces with butterflies: every lane gets bitwise the same result.
struct WarpTeam {
  static constexpr int kSize = 32;
  int rank;
  // The team's combined state, and z1, z2 of rank 0 on every rank.
  __device__ __forceinline__ Acc reduce(Acc a, bool with_v, float &z1, float &z2) const {
    z1 = __shfl_sync(0xffffffffu, z1, 0);
    z2 = __shfl_sync(0xffffffffu, z2, 0);
    FM_UNROLL
    for (int o = 16; o > 0; o >>= 1) {
      Acc b{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o), 0.0f, 0.0f};
      if (with_v) {
        b.S = __shfl_xor_sync(0xffffffffu, a.S, o);
        b.A = __shfl_xor_sync(0xffffffffu, a.A, o);
      }
      a = acc_combine(a, b);
    }
    __syncwarp();  // orders the gathers of pass 1 before the writes of pass 2
    return a;
  }
  __device__ __forceinline__ float sum(float x) const {
    FM_UNROLL
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
  }
};

// The whole block on one row; results are broadcast through shared memory.
struct BlockTeam {
  static constexpr int kSize = kBlockThreads;
  int rank;
  typename BlockAccReduce<kSize>::TempStorage *acc_temp;
  typename BlockFloatReduce<kSize>::TempStorage *sum_temp;
  Acc *slot;  // two
  __device__ __forceinline__ Acc reduce(Acc a, bool, float &z1, float &z2) const {
    const Acc r = BlockAccReduce<kSize>(*acc_temp).Reduce(a, AccOp());
    if (rank == 0) {
      slot[0] = r;
      slot[1] = Acc{z1, z2, 0.0f, 0.0f};
    }
    __syncthreads();
    const Acc out = slot[0];
    z1 = slot[1].m;
    z2 = slot[1].s;
    __syncthreads();  // temp and slot are reused by the next row
    return out;
  }
  // Valid on rank 0 only (the row loss is written by the leader).
  __device__ __forceinline__ float sum(float x) const {
    const float r = BlockFloatReduce<kSize>(*sum_temp).Sum(x);
    __syncthreads();
    return r;
  }
};

struct LossParams {
  const void *logits;
  void *grad;
  const int64_t *labels;
  const float *lambdas;
  const int64_t *partners;
  float *loss;  // loss[i] per row (NONE, or the workspace's rows); kReduce: loss[0]
  int64_t batch, stride, ignore_index;
  int classes;
  float eps, eps_c, grad_scale;
  float k;  // the gradient factor when the host knows it (all but labelled MEAN)
  fastmix_reduction reduction;
  const float *class_weight, *pos_weight;
  float threshold;
  const void *targets;
  fastmix_dtype targets_dtype;
  int64_t targets_stride;  // in elements
  int cache_vecs;          // 16-byte vectors of shared memory per team; 0: no cache
  bool gvec;               // grad rows have the same offset from 16-byte alignment as logits rows
  const double *weight_sum_dev;  // labelled MEAN with a workspace: the denominator
};

// One element of a dense target row, of any storage type (a switch on a
// value uniform over the grid, rather than a kernel per combination of
// logits and targets types).
__device__ __forceinline__ float load_target(const void *row, int c, fastmix_dtype d) {
  switch (d) {
    case FASTMIX_FLOAT16:
      return f16::load(static_cast<const uint16_t *>(row)[c]);
    case FASTMIX_BFLOAT16:
      return bf16::load(static_cast<const uint16_t *>(row)[c]);
    default:
      return static_cast<const float *>(row)[c];
  }
}

__device__ __forceinline__ const void *target_row(const LossParams &p, int64_t i) {
  const size_t size = p.targets_dtype == FASTMIX_FLOAT32 ? 4 : 2;
  return static_cast<const char *>(p.targets) + (size_t)i * (size_t)p.targets_stride * size;
}

// The 16-byte vector of a storage type: float32 as float4, so that the
// loaded registers are the operands; the 16-bit types as uint4.
template <class T>
struct VecOf {
  using type = uint4;
};
template <>
struct VecOf<f32> {
  using type = float4;
};

template <class T, int N>
__device__ __forceinline__ void decode(const uint4 &q, float *x) {
  using raw = typename T::raw;
  const raw *pq = reinterpret_cast<const raw *>(&q);
  FM_UNROLL
  for (int k = 0; k < N; ++k) x[k] = T::load(pq[k]);
}
template <class T, int N>
__device__ __forceinline__ void decode(const float4 &q, float *x) {
  x[0] = q.x;
  x[1] = q.y;
  x[2] = q.z;
  x[3] = q.w;
}

// How a row splits into an unaligned head, 16-byte vectors and a tail.
struct RowSplit {
  int head, nvec, tail0, nedge;
};

template <class T>
__device__ __forceinline__ RowSplit row_split(const void *z, int C) {
  constexpr int V = kVecBytes / (int)sizeof(typename T::raw);
  const int mis = (int)((reinterpret_cast<uintptr_t>(z) % kVecBytes) / sizeof(typename T::raw));
  const int head = mis == 0 ? 0 : (V - mis < C ? V - mis : C);
  const int nvec = (C - head) / V;
  const int tail0 = head + nvec * V;
  return RowSplit{head, nvec, tail0, head + (C - tail0)};  // nedge < 2 * V <= team size
}

// ---- cross-entropy: one row ---------------------------------------------------
// The per-column weight v_c of pass 1 and the target u_c of pass 2
// (docs/loss.md): for labels v_c = cw_c; dense, v_c = u_c.
template <bool kDense>
struct CeCols {
  const float *cw;
  const void *trow;
  fastmix_dtype tdtype;
  float eps, eps_c;
  __device__ __forceinline__ float v(int c) const {
    const float w = cw ? cw[c] : 1.0f;
    return kDense ? ce_dense_u(load_target(trow, c, tdtype), w, eps, eps_c) : w;
  }
};

// Adds one step of N logits x to acc: vectors of V columns, kStride columns
// apart, the first at column c0.
template <int N, int V, int kStride, bool kDense>
__device__ __forceinline__ void add_step(Acc &acc, VMode mode, const float (&x)[N], int c0,
                                         const CeCols<kDense> &cols) {
  if (mode == VMode::kNone) return acc_add<N, VMode::kNone>(acc, x, x);
  if (mode == VMode::kUnit) return acc_add<N, VMode::kUnit>(acc, x, x);
  float w[N];
  FM_UNROLL
  for (int u = 0; u < N / V; ++u) {
    FM_UNROLL
    for (int e = 0; e < V; ++e) w[u * V + e] = cols.v(c0 + u * kStride + e);
  }
  acc_add<N, VMode::kWeighted>(acc, x, w);
}

// One row of the cross-entropy: returns its loss (valid on the team's rank
// 0) and writes its gradient when asked.  cache: the team's shared-memory
// slice, or NULL.
template <class T, bool kDense, class Team>
__device__ __forceinline__ float ce_row_dev(const LossParams &p, int64_t i, const Team &team,
                                            float k, uint4 *cache_bytes) {
  using raw = typename T::raw;
  using Vec = typename VecOf<T>::type;
  Vec *cache = reinterpret_cast<Vec *>(cache_bytes);
  constexpr int V = kVecBytes / (int)sizeof(raw);
  constexpr int U = kGroup / V;  // vectors per step
  constexpr int kStep = U * Team::kSize;
  const int C = p.classes;
  const raw *z = static_cast<const raw *>(p.logits) + i * p.stride;
  const RowSplit sp = row_split<T>(z, C);
  const Vec *zv = reinterpret_cast<const Vec *>(z + sp.head);

  CeRow r{};
  CeHits h{0.0f, 0.0f};
  if (!kDense) {
    r = ce_row(p.labels, p.lambdas, p.partners, i, p.batch, C, p.ignore_index);
    h = ce_hits(r, p.class_weight);
  }
  const CeCols<kDense> cols{p.class_weight, kDense ? target_row(p, i) : nullptr, p.targets_dtype,
                            p.eps, p.eps_c};
  const bool with_v = kDense || p.eps != 0.0f;
  // The label columns (-1: none), compared as unsigned offsets from a
  // vector's first column.
  const int y1 = !kDense && r.w1 != 0.0f ? (int)r.y1 : -1;
  const int y2 = !kDense && r.w2 != 0.0f ? (int)r.y2 : -1;
  float zy1 = 0.0f, zy2 = 0.0f;
  if (team.rank == 0) {  // issued first, and before the barrier: pass 2 may overwrite z
    if (y1 >= 0) zy1 = T::load(z[y1]);
    if (y2 >= 0) zy2 = T::load(z[y2]);
  }

  // ---- pass 1 ----
  const VMode mode = !with_v                                ? VMode::kNone
                     : !kDense && p.class_weight == nullptr ? VMode::kUnit
                                                            : VMode::kWeighted;
  Acc acc = acc_init();
  int v0 = team.rank;
  for (; v0 + (U - 1) * Team::kSize < sp.nvec; v0 += kStep) {
    Vec q[U];
    FM_UNROLL
    for (int u = 0; u < U; ++u) q[u] = zv[v0 + u * Team::kSize];
    float x[kGroup];
    FM_UNROLL
    for (int u = 0; u < U; ++u) {
      if (cache) cache[v0 + u * Team::kSize] = q[u];
      decode<T, V>(q[u], x + u * V);
    }
    add_step<kGroup, V, Team::kSize * V>(acc, mode, x, sp.head + v0 * V, cols);
  }
  for (; v0 < sp.nvec; v0 += Team::kSize) {  // the last, partial step: a vector at a time
    const Vec q = zv[v0];
    if (cache) cache[v0] = q;
    float x[V];
    decode<T, V>(q, x);
    add_step<V, V, 0>(acc, mode, x, sp.head + v0 * V, cols);
  }
  int ec = -1;  // this thread's edge column, if any
  float xe = 0.0f;
  if (team.rank < sp.nedge) {
    ec = team.rank < sp.head ? team.rank : sp.tail0 + (team.rank - sp.head);
    xe = T::load(z[ec]);
    const float x1[1] = {xe};
    add_step<1, 1, 0>(acc, mode, x1, ec, cols);
  }
  const Acc tot = team.reduce(acc, with_v, zy1, zy2);  // zy1, zy2 from rank 0 to all
  const float m = ref_of(tot.m), logs = logf(tot.s), l2s = log2f(tot.s);
  float loss = 0.0f;
  if (team.rank == 0)
    loss = kDense ? tot.S * logs + tot.A
                  : ce_loss_labels(r, h, m, logs, zy1, zy2, p.eps, p.eps_c, tot.S, tot.A);
  if (!p.grad) return loss;

  // ---- pass 2: g_c = k * (G p_c - base_c), exact formula at the label columns ----
  const CeGrad cg = kDense ? CeGrad{tot.S, 0.0f, 0.0f, 0.0f, false, false}
                           : ce_grad_labels(r, h, p.eps, p.eps_c, tot.S);
  const float Gk = cg.bad ? quiet_nan() : k * cg.G;
  const bool zero = cg.zero && !cg.bad;  // a bad row (its weights are 0 too) is NaN
  // The gradient of column c from its logit x.
  const auto grad_at = [&](int c, float x) -> float {
    if (zero) return 0.0f;
    const float pc = ex2(fmaf(x - m, kLog2e, -l2s));
    if (kDense) return Gk * pc - k * cols.v(c);
    return ce_grad_elem(cg, c == y1, c == y2, pc, p.class_weight ? p.class_weight[c] : 1.0f, k);
  };
  raw *g = static_cast<raw *>(p.grad) + i * p.stride;
  Vec *gv = reinterpret_cast<Vec *>(g + sp.head);
  const Vec *src = cache ? cache : zv;  // the row: this thread's cached vectors, or global
  // Writes the vectors of this thread, out[e] = f(column, logit) for each
  // (a loop per store width, so that the loop carries no test of it).
  const auto write = [&](auto f) {
    const auto loop = [&](auto vec_store) {
      for (int v = team.rank; v < sp.nvec; v += Team::kSize) {
        float x[V];
        decode<T, V>(src[v], x);
        const int c0 = sp.head + v * V;
        Vec o;
        raw *po = reinterpret_cast<raw *>(&o);
        FM_UNROLL
        for (int e = 0; e < V; ++e) po[e] = T::store(f(c0 + e, x[e]));
        if (decltype(vec_store)::value) {
          gv[v] = o;
        } else {
          FM_UNROLL
          for (int e = 0; e < V; ++e) g[c0 + e] = po[e];
        }
      }
    };
    if (p.gvec)
      loop(std::true_type{});
    else
      loop(std::false_type{});
  };
  if (zero) {
    write([](int, float) { return 0.0f; });
  } else if (kDense || (p.class_weight && cg.base != 0.0f)) {
    write(grad_at);  // every column has its own target
  } else {
    // Every column as if it held no label (G p - base, base = 0 without
    // smoothing), then the label columns again with the exact formula, by
    // the thread that wrote them (the gathered logits are broadcast by the
    // team's reduction; in place, z there is already overwritten).
    const float bk = k * cg.base;
    write([&](int, float x) { return fmaf(Gk, ex2(fmaf(x - m, kLog2e, -l2s)), -bk); });
    const auto fix = [&](int y, float zy) {
      if (y < sp.head || y >= sp.tail0) return;  // -1, or an edge column (written exactly)
      if ((y - sp.head) / V % Team::kSize == team.rank) g[y] = T::store(grad_at(y, zy));
    };
    fix(y1, zy1);
    fix(y2, zy2);
  }
  if (ec >= 0) g[ec] = T::store(grad_at(ec, xe));
  return loss;
}

// ---- binary cross-entropy: one row --------------------------------------------
// log1p(e) for e in [0, 1] from the hardware logarithm, accurate also for
// small e (1 + e rounded to u: log(u) * e / (u - 1) is log1p(e) to a few
// ulps; u == 1 means log1p(e) = e within float).
__device__ __forceinline__ float log1p_small(float e) {
  const float u = 1.0f + e;
  return u == 1.0f ? e : lg2(u) * kLn2 * __fdividef(e, u - 1.0f);
}

template <class T, bool kDense, class Team>
__device__ __forceinline__ float bce_row_dev(const LossParams &p, int64_t i, const Team &team,
                                             float k) {
  using raw = typename T::raw;
  constexpr int V = kVecBytes / (int)sizeof(raw);
  const int C = p.classes;
  const raw *z = static_cast<const raw *>(p.logits) + i * p.stride;
  const RowSplit sp = row_split<T>(z, C);
  using Vec = typename VecOf<T>::type;
  const Vec *zv = reinterpret_cast<const Vec *>(z + sp.head);
  const void *trow = kDense ? target_row(p, i) : nullptr;
  LabelPair lp{};
  if (!kDense) lp = st_row(p.labels, p.lambdas, p.partners, i, p.batch, C);
  const bool bad = !kDense && lp.bad;
  const int y1 = !kDense && !bad ? (int)lp.y1 : -1;
  const int y2 = !kDense && !bad && lp.mixed ? (int)lp.y2 : -1;
  const float t0 = bce_threshold(p.eps_c, p.threshold);  // a label-free column's target
  const float kk = bad ? quiet_nan() : k;
  raw *g = static_cast<raw *>(p.grad);
  if (g) g += i * p.stride;

  // The loss term of column c, and its gradient into *gc.
  const auto term = [&](int c, float x, bool exact, float *gc) -> float {
    float t = t0;
    if (kDense)
      t = bce_threshold(smooth_target(load_target(trow, c, p.targets_dtype), p.eps, p.eps_c),
                        p.threshold);
    else if (exact)
      t = bce_threshold(soft_target(lp, c, p.eps, p.eps_c), p.threshold);
    const float cw = p.class_weight ? p.class_weight[c] : 1.0f;
    const float pw = p.pos_weight ? p.pos_weight[c] : 1.0f;
    const float e = ex2(-fabsf(x) * kLog2e);
    const float rr = __fdividef(1.0f, 1.0f + e);
    *gc = kk * bce_grad(x, t, cw, pw, e, rr);
    return bce_loss(x, t, cw, pw, log1p_small(e));
  };

  float loss = 0.0f;
  for (int v = team.rank; v < sp.nvec; v += Team::kSize) {
    const Vec q = zv[v];
    float x[V];
    decode<T, V>(q, x);
    const int c0 = sp.head + v * V;
    const bool exact = (unsigned)(y1 - c0) < (unsigned)V || (unsigned)(y2 - c0) < (unsigned)V;
    Vec o;
    raw *po = reinterpret_cast<raw *>(&o);
    FM_UNROLL
    for (int e = 0; e < V; ++e) {
      float gc;
      loss += term(c0 + e, x[e], exact, &gc);
      po[e] = T::store(gc);
    }
    if (g) {
      if (p.gvec) {
        reinterpret_cast<Vec *>(g + sp.head)[v] = o;
      } else {
        FM_UNROLL
        for (int e = 0; e < V; ++e) g[c0 + e] = po[e];
      }
    }
  }
  if (team.rank < sp.nedge) {
    const int ec = team.rank < sp.head ? team.rank : sp.tail0 + (team.rank - sp.head);
    float gc;
    loss += term(ec, T::load(z[ec]), true, &gc);
    if (g) g[ec] = T::store(gc);
  }
  const float total = team.sum(loss);
  return bad ? quiet_nan() : total;
}

// ---- the kernels ----------------------------------------------------------------
// The MEAN denominator of the labelled cross-entropy, sum_i (c1 + c2), by one
// block in a fixed order (per-thread strided float64 sums, then CUB's tree):
// the same bits on every run.  Every thread gets the result.
template <int kTh>
__device__ double block_weight_sum(const LossParams &p,
                                   typename BlockSumReduce<kTh>::TempStorage &temp, double &slot) {
  double w = 0.0;
  for (int64_t i = threadIdx.x; i < p.batch; i += kTh)
    w +=
        ce_weight_cw(ce_row(p.labels, p.lambdas, p.partners, i, p.batch, p.classes, p.ignore_index),
                     p.class_weight);
  const double total = BlockSumReduce<kTh>(temp).Sum(w);
  if (threadIdx.x == 0) slot = total;
  __syncthreads();
  return slot;
}

// Workspace path, before the rows: the labelled MEAN denominator.
__global__ void __launch_bounds__(kTeamThreads) ce_weight_kernel(const LossParams p, double *out) {
  __shared__ typename BlockSumReduce<kTeamThreads>::TempStorage temp;
  __shared__ double slot;
  const double w = block_weight_sum<kTeamThreads>(p, temp, slot);
  if (threadIdx.x == 0) *out = w;
}

// Workspace path, after the rows: their losses summed in a fixed order into
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
// (kTeamThreads).  kReduce (the labelled cross-entropy of fastmix_cross_entropy
// without a workspace): MEAN/SUM reduced in the kernel, run as a single
// block; else one loss per row.  At most 64 registers: two 512-thread (four
// 256-thread) blocks per SM.
template <class T, Kind K, bool kBlockTeam, bool kReduce>
__global__ void __launch_bounds__(threads_of(kBlockTeam),
                                  kReduce ? 1 : blocks_per_sm_of(kBlockTeam))
    loss_kernel(const LossParams p) {
  static_assert(!kReduce || K == Kind::kCeLabels, "only the labelled cross-entropy reduces here");
  constexpr int kTh = threads_of(kBlockTeam);
  extern __shared__ uint4 ce_cache[];
  __shared__ typename BlockAccReduce<kTh>::TempStorage acc_temp;
  __shared__ typename BlockFloatReduce<kTh>::TempStorage float_temp;
  __shared__ typename BlockSumReduce<kTh>::TempStorage sum_temp;
  __shared__ Acc acc_slot[2];
  __shared__ double weight_slot;

  float k = p.k;
  double weight_sum = 0.0;
  if (K == Kind::kCeLabels && p.reduction == FASTMIX_REDUCTION_MEAN) {
    if (kReduce) {
      weight_sum = block_weight_sum<kTh>(p, sum_temp, weight_slot);
      __syncthreads();  // sum_temp is reused below
      k = ce_grad_factor(p.reduction, p.grad_scale, weight_sum);
    } else if (p.weight_sum_dev) {
      k = ce_grad_factor(p.reduction, p.grad_scale, *p.weight_sum_dev);
    }
  }

  double loss_sum = 0.0;  // kReduce: this team leader's rows, in row order
  if constexpr (kBlockTeam) {
    const BlockTeam team{(int)threadIdx.x, &acc_temp, &float_temp, acc_slot};
    uint4 *cache = p.cache_vecs ? ce_cache : nullptr;
    for (int64_t i = blockIdx.x; i < p.batch; i += gridDim.x) {
      const float l = row_dev<T, K>(p, i, team, k, cache);
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
      const float l = row_dev<T, K>(p, i, team, k, cache);
      if (lane == 0) {
        if (kReduce)
          loss_sum += (double)l;
        else
          p.loss[i] = l;
      }
    }
  }
  if (kReduce) {
    const double total = BlockSumReduce<kTh>(sum_temp).Sum(loss_sum);
    if (threadIdx.x == 0) p.loss[0] = ce_reduced(p.reduction, total, weight_sum);
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
// is asked and it fits one block per SM at least, and one block (kReduce) or
// up to a full wave.
template <class T, Kind K, bool kReduce>
fastmix_status launch_rows(const char *func, const Device &dev, LossParams p, cudaStream_t stream) {
  constexpr int64_t V = kVecBytes / (int64_t)sizeof(typename T::raw);
  const int64_t row_vecs = p.classes / V;  // no row has more aligned vectors
  const bool block_team = row_vecs > kWarpMaxVecs;
  const int64_t teams = block_team ? 1 : kWarps;
  void (*kernel)(LossParams) =
      block_team ? loss_kernel<T, K, true, kReduce> : loss_kernel<T, K, false, kReduce>;
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
  if (smem > 48 * 1024)
    FM_TRY(allow_dynamic_smem(func, reinterpret_cast<const void *>(kernel), dev, (int)smem_room));
  int64_t grid = 1;
  if (!kReduce) {
    int per_sm = 0;
    FM_TRY(blocks_per_sm(func, reinterpret_cast<const void *>(kernel), threads, (size_t)smem,
                         &per_sm));
    // The grid itself keeps the cache's blocks per SM (not only the
    // occupancy query, which a simulator may answer without shared memory).
    const int64_t wave = (int64_t)dev.sms * (per_sm < per_sm_cap ? per_sm : per_sm_cap);
    const int64_t blocks = (p.batch + teams - 1) / teams;
    grid = blocks < wave ? blocks : wave;
  }
  return launch(func, kernel, (unsigned)grid, (unsigned)threads, (size_t)smem, stream, p);
}

// MEAN/SUM with the caller's workspace, [double denominator][float row
// losses]: the labelled denominator (MEAN), the rows over the whole grid,
// then their sum in a fixed order into loss[0].
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
  FM_TRY((launch_rows<T, K, false>(a.func, dev, p, stream)));
  return launch(a.func, loss_sum_kernel, 1, kTeamThreads, 0, stream, ws_rows, a.batch,
                p.weight_sum_dev, loss_shape_denominator(a), a.loss, a.reduction);
}

template <class T, Kind K>
fastmix_status launch_kind(const Device &dev, const LossArgs &a, cudaStream_t stream) {
  if (a.reduction == FASTMIX_REDUCTION_NONE)
    return a.batch == 0 ? FASTMIX_SUCCESS
                        : launch_rows<T, K, false>(a.func, dev, make_params(a), stream);
  if (a.workspace && a.batch > 0) return launch_workspace<T, K>(dev, a, stream);
  // An empty batch still writes the reduced loss (MEAN: NaN, SUM: 0); so
  // does the single block of fastmix_cross_entropy, the only caller without
  // a workspace (the API refuses the other kinds without one).
  if constexpr (K == Kind::kCeLabels) {
    return launch_rows<T, K, true>(a.func, dev, make_params(a), stream);
  } else {
    return launch(a.func, loss_sum_kernel, 1, kTeamThreads, 0, stream, (const float *)nullptr,
                  (int64_t)0, (const double *)nullptr, loss_shape_denominator(a), a.loss,
                  a.reduction);
  }
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
  return dispatch_dtype(a.dtype, [&](auto t) { return launch_loss<decltype(t)>(dev, a, s); });
}

}  // namespace fm
