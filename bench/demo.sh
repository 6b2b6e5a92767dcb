#!/usr/bin/env bash
# Builds fastmix and runs its demo: one fastmix_mixup call on a synthetic
# batch, on the CUDA device when there is one, else on the CPU.
# Usage: bash bench/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh

build=build/demo
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$FASTMIX_JOBS" --target fastmix-demo >/dev/null
"$build/bench/fastmix-demo"
