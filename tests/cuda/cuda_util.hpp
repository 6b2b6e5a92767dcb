// What the CUDA tests share beyond tests/device.hpp (whose Buffer holds
// their device and managed memory): streams and graph capture and replay.
#pragma once

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include "../device.hpp"

#include <fastmix/fastmix.h>

#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace fmt_test {

// A non-blocking stream for a test case's lifetime.
class Stream {
 public:
  Stream() { FMT_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    const cudaError_t e = cudaStreamDestroy(s_);
    if (std::uncaught_exceptions() == 0) CHECK(e == cudaSuccess);
  }
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  operator cudaStream_t() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// For every dtype, out of place and in place (INFO names them): body(d, in_place).
inline void each_dtype_and_place(const std::function<void(fastmix_dtype, bool)> &body) {
  for (fastmix_dtype d : kAllDtypes)
    for (bool in_place : {false, true}) {
      INFO(dtype_name(d) << (in_place ? " in place" : " out of place"));
      body(d, in_place);
    }
}

// Captures `call` on `stream` into an executable graph; REQUIREs success.
inline cudaGraphExec_t capture(cudaStream_t stream, const std::function<fastmix_status()> &call) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  FMT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const fastmix_status st = call();
  const std::string msg = fastmix_last_error();
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  INFO("during capture: " << msg);
  REQUIRE(st == FASTMIX_SUCCESS);
  FMT_CUDA(end);
  FMT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  FMT_CUDA(cudaGraphDestroy(graph));
  return exec;
}

// Captures `call` on `stream` and launches the graph `launches` times, each
// after `prepare` (inputs restored, outputs poisoned) and followed, once the
// stream is idle, by `check(launch)`.
inline void replay(cudaStream_t stream, const std::function<fastmix_status()> &call, int launches,
                   const std::function<void()> &prepare, const std::function<void(int)> &check) {
  cudaGraphExec_t exec = capture(stream, call);
  for (int launch = 0; launch < launches; ++launch) {
    CAPTURE(launch);
    prepare();
    FMT_CUDA(cudaGraphLaunch(exec, stream));
    FMT_CUDA(cudaStreamSynchronize(stream));
    check(launch);
  }
  FMT_CUDA(cudaGraphExecDestroy(exec));
}

}  // namespace fmt_test
