// 16-byte vectors of any storage type, shared by the kernels of mixup and
// CutMix: the blend of one vector or one element, the realignment of a
// partner's vector, where a sample's aligned vectors are, and where a
// vector meets a CutMix box.
#pragma once

#include "cuda_util.cuh"
#include "math/common.cuh"
#include "static_switch.cuh"

namespace fm {

template <class T>
__device__ __forceinline__ uint4 blend_vec(const uint4 &a, const uint4 &b, float lam, float mu) {
  using raw = typename T::raw;
  constexpr int n = kVecBytes / (int)sizeof(raw);
  uint4 o;
  const raw *pa = reinterpret_cast<const raw *>(&a);
  const raw *pb = reinterpret_cast<const raw *>(&b);
  raw *po = reinterpret_cast<raw *>(&o);
  FM_UNROLL
  for (int k = 0; k < n; ++k) po[k] = T::store(blend(lam, mu, T::load(pa[k]), T::load(pb[k])));
  return o;
}

// bfloat16 two at a time: a 32-bit word holds two, and each unpacks to a
// float by a shift or a mask and packs back the same way.
__device__ __forceinline__ uint32_t blend_bf16x2(uint32_t a, uint32_t b, float lam, float mu) {
  const float lo = blend(lam, mu, f32_from_bits(a << 16), f32_from_bits(b << 16));
  const float hi = blend(lam, mu, f32_from_bits(a & 0xffff0000u), f32_from_bits(b & 0xffff0000u));
#if __CUDA_ARCH__ >= 800
  const __nv_bfloat162 r = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t *>(&r);
#else
  return (bf16_round_bits(f32_bits(hi)) & 0xffff0000u) | (bf16_round_bits(f32_bits(lo)) >> 16);
#endif
}

template <>
__device__ __forceinline__ uint4 blend_vec<bf16>(const uint4 &a, const uint4 &b, float lam,
                                                 float mu) {
  return make_uint4(blend_bf16x2(a.x, b.x, lam, mu), blend_bf16x2(a.y, b.y, lam, mu),
                    blend_bf16x2(a.z, b.z, lam, mu), blend_bf16x2(a.w, b.w, lam, mu));
}

template <class T>
__device__ __forceinline__ float4 blend_vec(const float4 &a, const float4 &b, float lam, float mu) {
  return make_float4(blend(lam, mu, a.x, b.x), blend(lam, mu, a.y, b.y), blend(lam, mu, a.z, b.z),
                     blend(lam, mu, a.w, b.w));
}

template <class T>
__device__ __forceinline__ typename Vec16<T>::type nan_vec() {
  using raw = typename T::raw;
  constexpr int n = kVecBytes / (int)sizeof(raw);
  typename Vec16<T>::type o;
  raw *po = reinterpret_cast<raw *>(&o);
  FM_UNROLL
  for (int k = 0; k < n; ++k) po[k] = T::store(quiet_nan());
  return o;
}

// The 16 bytes that start Shift elements into `lo` and run on into `hi`, two
// consecutive 16-byte-aligned vectors: how a partner sample whose offset from
// 16-byte alignment differs from its own sample's is read with aligned loads.
// Shift is a compile-time constant, so picking the words costs nothing and an
// odd shift of a 16-bit type costs one funnel shift per 32-bit word.
template <class T, int Shift, class V>
__device__ __forceinline__ V realign(const V &lo, const V &hi) {
  constexpr int kBytes = Shift * (int)sizeof(typename T::raw);
  constexpr int q = kBytes / 4;
  static_assert(kBytes % 2 == 0 && q < 4, "a shift of whole elements inside one vector");
  uint32_t w[8];
  memcpy(w, &lo, 16);
  memcpy(w + 4, &hi, 16);
  uint32_t r[4];
  FM_UNROLL
  for (int j = 0; j < 4; ++j) {
    if constexpr (kBytes % 4 == 0)
      r[j] = w[j + q];
    else  // the upper half of word j + q, then the lower half of the next
      r[j] = __funnelshift_r(w[j + q], w[j + q + 1], 16);
  }
  V o;
  memcpy(&o, r, 16);
  return o;
}

// Where a sample's vectors are, for the out-of-place kernels of mixup and
// CutMix (a sample a, its partner b, both `elems` elements): head, the
// elements before the first vector, where a + head (and o + head) is 16-byte
// aligned; shift, b + head's offset from alignment in elements; nvec, the
// vectors.  The partner's aligned loads start `shift` elements before
// b + head, so the head grows by a vector when that would be before b, and
// with a shift a vector's second aligned load ends V - shift elements past
// its last partner element, which must still be in the sample.  nvec == 0:
// the whole sample is done with scalars.
struct RowVectors {
  int32_t head, shift;
  int64_t nvec;
};

template <class T>
__device__ __forceinline__ RowVectors row_vectors(const typename T::raw *a,
                                                  const typename T::raw *b, int64_t elems) {
  constexpr int V = kVecBytes / (int)sizeof(typename T::raw);
  RowVectors r;
  r.head = (int32_t)((kVecBytes - (uintptr_t)a % kVecBytes) % kVecBytes / sizeof(*a));
  r.shift = 0;
  if (b) {
    r.shift = (int32_t)((uintptr_t)(b + r.head) % kVecBytes / sizeof(*a));
    if (r.shift > r.head) r.head += V;
  }
  const int64_t room = elems - r.head - (r.shift ? V - r.shift : 0);
  r.nvec = room > 0 ? room / V : 0;
  return r;
}

// a / b for 0 <= a, 0 < b, in 32 bits when both fit (a 64-bit division is
// a long software routine).
__device__ __forceinline__ int64_t div_fast(int64_t a, int64_t b) {
  return ((uint64_t)(a | b) >> 32) == 0 ? (int64_t)((uint32_t)a / (uint32_t)b) : a / b;
}

// Where an element of a sample is in its image: its column in its row (in
// elements) and its image row.
struct Pos {
  int64_t col, y;
};

// A CutMix box as a sample's flat elements see it, for the kernels that
// move a sample as one run of 16-byte vectors: the sample is rows of `len`
// elements, the image row of row r is r mod h (NCHW rows run through the
// channels; NHWC has h rows), and the box is the columns [lo, hi) (in
// elements) of the image rows [y0, y0 + rows).
struct RowBox {
  int64_t lo, hi, len, h;
  int32_t y0;
  uint32_t rows;
  __device__ bool row_in(int64_t y) const { return (uint32_t)((int32_t)y - y0) < rows; }
};

// How a vector of V elements whose first element is at column col of image
// row y meets the box: touch, some element is in it (vec_inside: all are).
// A vector may run past the end of its row into the next (Wraps; rows of at
// least V elements), whose image row follows y.
struct VecHit {
  bool row_in, next_in, touch;
};

template <int V, bool Wraps>
__device__ __forceinline__ VecHit vec_hit(const RowBox &b, int64_t col, int64_t y) {
  const int64_t last = b.len - V;  // a vector starting after it wraps
  VecHit r;
  r.row_in = b.row_in(y);
  r.next_in = Wraps && col > last && b.row_in(y + 1 == b.h ? 0 : y + 1);
  r.touch = (r.row_in && (uint64_t)(col - b.lo + V - 1) < (uint64_t)(b.hi - b.lo + V - 1)) ||
            (r.next_in && col - last > b.lo);
  return r;
}

// Asked only of a vector that touches the box (most do not), so that it
// costs nothing there.
template <int V>
__device__ __forceinline__ bool vec_inside(const RowBox &b, const VecHit &v, int64_t col) {
  return v.row_in && col >= b.lo && col <= b.hi - V;
}

// Whether element e of that vector is in the box.
__device__ __forceinline__ bool elem_in(const RowBox &b, const VecHit &v, int64_t col, int e) {
  const int64_t c = col + e;
  return c < b.len ? v.row_in && c >= b.lo && c < b.hi
                   : v.next_in && c - b.len >= b.lo && c - b.len < b.hi;
}

template <class T>
__device__ __forceinline__ typename T::raw blend_one(typename T::raw a, const typename T::raw *b,
                                                     float lam, float mu) {
  return T::store(b ? blend(lam, mu, T::load(a), T::load(*b)) : quiet_nan());
}

}  // namespace fm
