// The CUDA kernel of fastmix_soft_targets and its launcher.  The targets are
// bitwise the CPU backend's (the row math of kernels/math/cross_entropy.cuh),
// so this file, unlike the loss kernels, is built without multiply-add
// contraction.
#include "cuda_util.cuh"
#include "math/cross_entropy.cuh"
#include "math/dtype.cuh"

#include <cuda_runtime.h>

namespace fm {
namespace {

constexpr int kStThreads = 256;
constexpr int64_t kStChunk = 4096;

// One block per (row, chunk of kStChunk columns) item, strided over a grid.
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

fastmix_status cuda_soft_targets(const SoftTargetsArgs &a, void *stream) {
  const char *func = a.func;
  Device dev;
  FM_TRY(current_device(func, &dev));
  FM_TRY(check_pointers(func, dev,
                        {{"labels", a.labels},
                         {"lambdas", a.lambdas, true},
                         {"partners", a.partners, true},
                         {"targets", a.targets}}));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return dispatch_dtype(a.dtype, [&](auto t) { return launch_st<decltype(t)>(dev, a, s); });
}

}  // namespace fm
