// The loss kernels' device code for one row (kernels/cross_entropy.cu): the
// online log-sum-exp accumulator and its team reductions (a warp or the
// whole block per row), the kernel parameters, 16-byte row loads, and the
// row functions of cross-entropy (ce_row_dev: pass 1, the statistics;
// pass 2, the gradient) and of binary cross-entropy (bce_row_dev, one
// pass).  The per-row formulas are kernels/math/cross_entropy.cuh, shared
// with the CPU backend; docs/loss.md explains the design.
#pragma once

#include "cuda_util.cuh"
#include "math/cross_entropy.cuh"
#include "math/dtype.cuh"
#include "static_switch.cuh"

#include <cfloat>
#include <type_traits>
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

namespace fm {
// Definitions in an anonymous namespace, as in the .cu files: every .cu
// that includes this header compiles its own kernels (internal linkage), so
// no two translation units register the same kernel.
namespace {

constexpr int kTeamThreads = 512;   // warp teams: 16 rows per block at a time
constexpr int kBlockThreads = 256;  // a block team: one row, 256 threads (fewer per-row costs)
constexpr int kMinBlocks = 2;       // 512-thread blocks per SM the registers allow (<= 64 each)
constexpr int kWarps = kTeamThreads / 32;
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
  float *loss;  // loss[i] per row (NONE, or the workspace's rows)
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
  using Vec = typename Vec16<T>::type;
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
    bool_switch(p.gvec, loop);
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
  using Vec = typename Vec16<T>::type;
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

}  // namespace
}  // namespace fm
