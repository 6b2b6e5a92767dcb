#!/usr/bin/env bash
# Builds fastmix with warnings as errors (the CUDA kernels included, with
# nvcc) and runs every test: the C/C++/CUDA suite through CTest, then the
# Python package's suite (pip install . into .venv, pytest).
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh

build=build/test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_WARNINGS_AS_ERRORS=ON
cmake --build "$build" -j "$FASTMIX_JOBS"
ctest --test-dir "$build" --output-on-failure -j "$FASTMIX_JOBS"

bash tests/python/run.sh
