#!/usr/bin/env bash
# Builds fastmix and runs its demo: one fastmix_mixup call on a synthetic
# batch, on the CUDA device when there is one, else on the CPU.
# Usage: bash bench/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh

# The build takes a few minutes the first time (nvcc compiles every kernel
# for two GPU generations): its progress lines and errors are shown, the
# rest of CMake's output is not.
build=build/demo
echo "fastmix demo: configuring $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
echo "fastmix demo: building (a few minutes the first time)"
cmake --build "$build" -j "$FASTMIX_JOBS" --target fastmix-demo 2>&1 |
  grep --line-buffered -E '^\[ *[0-9]+%\]|[Ee]rror'
echo
"$build/bench/fastmix-demo"
