// The simulator's bfloat16 conversions, checked bit for bit against a host
// reference (tests/sim/run.sh runs it on GPGPU-Sim before the suite).
//
// Built for sm_80 PTX, cuda_bf16.h's intrinsics are single PTX instructions:
//   __float2bfloat16_rn(a)       cvt.rn.bf16.f32   d, a
//   __floats2bfloat162_rn(a, b)  cvt.rn.bf16x2.f32 d, b, a  (first source in
//                                the upper half: b, the .y of the result)
//   __bfloat162float(h)          mov.b32 f, {0, h}
// GPGPU-Sim's parser knows none of the bf16 types; tests/sim/patches/
// bf16-cvt.patch adds the two conversions.  Without it the program does not
// load (the PTX fails to parse); with a wrong rounding, NaN or packing it
// prints the first mismatches and exits 1.
//
// The inputs: every upper half (all 65536: zeros, subnormals, normals, the
// largest finite values, infinities, NaNs of both signs) with the lower halves
// 0x0000 (exact), 0x0001, 0x7fff (below halfway), 0x8000 (a tie: to even, so
// down from an even upper half and up from an odd one), 0x8001 (above
// halfway) and 0xffff (rounds up, carrying into the exponent; from the
// largest finite upper half to infinity), then pseudo-random words.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

// Round to nearest, ties to even, in integers: the upper half of the float's
// bits, plus one when the lower half is above halfway, or exactly halfway and
// the upper half odd.  Every NaN gives the canonical NaN 0x7fff, as the PTX
// instruction does; infinities and zeros keep their sign.
uint16_t reference_bf16(uint32_t x) {
  const bool nan = (x & 0x7f800000u) == 0x7f800000u && (x & 0x007fffffu) != 0;
  if (nan) return 0x7fff;
  const uint32_t upper = x >> 16, lower = x & 0xffffu;
  const bool up = lower > 0x8000u || (lower == 0x8000u && (upper & 1u) != 0);
  return (uint16_t)(upper + (up ? 1u : 0u));
}

__global__ void to_bf16(const float *in, uint16_t *out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
}

// Pair i is (in[i], in[n - 1 - i]): two different values, so that swapped
// halves show.
__global__ void to_bf16x2(const float *in, uint32_t *out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const __nv_bfloat162 r = __floats2bfloat162_rn(in[i], in[n - 1 - i]);
    out[i] = (uint32_t)__bfloat16_as_ushort(r.x) | (uint32_t)__bfloat16_as_ushort(r.y) << 16;
  }
}

__global__ void from_bf16(const uint16_t *in, float *out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = __bfloat162float(__ushort_as_bfloat16(in[i]));
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

bool ok(cudaError_t err, const char *what) {
  if (err == cudaSuccess) return true;
  std::printf("bf16_cvt: %s: %s\n", what, cudaGetErrorString(err));
  return false;
}

struct Report {
  const char *name;
  long checked = 0, wrong = 0;
  void mismatch(const char *fmt, uint32_t in, uint32_t got, uint32_t want) {
    if (++wrong <= 8) {
      std::printf("bf16_cvt: %s: ", name);
      std::printf(fmt, in, got, want);
      std::printf("\n");
    }
  }
  bool done() const {
    std::printf("bf16_cvt: %-40s %7ld values, %ld wrong\n", name, checked, wrong);
    return checked > 0 && wrong == 0;
  }
};

}  // namespace

int main() {
  std::vector<float> in;
  const uint32_t lowers[] = {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu};
  for (uint32_t upper = 0; upper <= 0xffffu; ++upper)
    for (uint32_t lower : lowers) in.push_back(from_bits(upper << 16 | lower));
  uint64_t s = 0x9e3779b97f4a7c15ull;  // splitmix64: pseudo-random words
  for (int k = 0; k < 16384; ++k) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    in.push_back(from_bits((uint32_t)(z ^ (z >> 31))));
  }
  const int n = (int)in.size();
  const int nh = 65536;
  std::vector<uint16_t> halves(nh);
  for (int h = 0; h < nh; ++h) halves[h] = (uint16_t)h;

  float *d_in = nullptr, *d_f = nullptr;
  uint16_t *d_h = nullptr, *d_hin = nullptr;
  uint32_t *d_w = nullptr;
  if (!ok(cudaMalloc(&d_in, n * sizeof(float)), "cudaMalloc") ||
      !ok(cudaMalloc(&d_h, n * sizeof(uint16_t)), "cudaMalloc") ||
      !ok(cudaMalloc(&d_w, n * sizeof(uint32_t)), "cudaMalloc") ||
      !ok(cudaMalloc(&d_hin, nh * sizeof(uint16_t)), "cudaMalloc") ||
      !ok(cudaMalloc(&d_f, nh * sizeof(float)), "cudaMalloc"))
    return 1;
  if (!ok(cudaMemcpy(d_in, in.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copy in") ||
      !ok(cudaMemcpy(d_hin, halves.data(), nh * sizeof(uint16_t), cudaMemcpyHostToDevice),
          "copy in"))
    return 1;
  // A small grid: the simulator's cost grows with the thread count.
  const int blocks = 30, threads = 256;
  to_bf16<<<blocks, threads>>>(d_in, d_h, n);
  to_bf16x2<<<blocks, threads>>>(d_in, d_w, n);
  from_bf16<<<blocks, threads>>>(d_hin, d_f, nh);
  if (!ok(cudaGetLastError(), "launch") || !ok(cudaDeviceSynchronize(), "kernels")) return 1;
  std::vector<uint16_t> h(n);
  std::vector<uint32_t> w(n);
  std::vector<float> f(nh);
  if (!ok(cudaMemcpy(h.data(), d_h, n * sizeof(uint16_t), cudaMemcpyDeviceToHost), "copy out") ||
      !ok(cudaMemcpy(w.data(), d_w, n * sizeof(uint32_t), cudaMemcpyDeviceToHost), "copy out") ||
      !ok(cudaMemcpy(f.data(), d_f, nh * sizeof(float), cudaMemcpyDeviceToHost), "copy out"))
    return 1;

  Report one{"__float2bfloat16_rn (cvt.rn.bf16.f32)"};
  Report two{"__floats2bfloat162_rn (cvt.rn.bf16x2.f32)"};
  Report back{"__bfloat162float (mov.b32 {0, h})"};
  long nan_in = 0;
  for (int i = 0; i < n; ++i) {
    const uint32_t x = bits(in[i]), y = bits(in[n - 1 - i]);
    const uint16_t want = reference_bf16(x);
    if (want == 0x7fff) ++nan_in;
    ++one.checked;
    if (h[i] != want) one.mismatch("0x%08" PRIx32 " -> 0x%04" PRIx32 ", want 0x%04" PRIx32, x, h[i], want);
    const uint32_t want2 = (uint32_t)want | (uint32_t)reference_bf16(y) << 16;
    ++two.checked;
    if (w[i] != want2)
      two.mismatch("a = 0x%08" PRIx32 " -> 0x%08" PRIx32 ", want 0x%08" PRIx32 " (a low, b high)", x,
                   w[i], want2);
  }
  for (int i = 0; i < nh; ++i) {
    const uint32_t want = (uint32_t)i << 16;
    ++back.checked;
    if (bits(f[i]) != want) back.mismatch("0x%04" PRIx32 " -> 0x%08" PRIx32 ", want 0x%08" PRIx32, (uint32_t)i, bits(f[i]), want);
  }
  const bool pass = one.done() & two.done() & back.done();
  // The inputs hold NaNs (every upper half 0x7f81..0x7fff, 0xff81..0xffff),
  // each compared with 0x7fff bit for bit.
  std::printf("bf16_cvt: %ld of the inputs are NaN\n", nan_in);
  std::printf("bf16_cvt: %s\n", pass && nan_in > 0 ? "passed" : "FAILED");
  return pass && nan_in > 0 ? 0 : 1;
}
