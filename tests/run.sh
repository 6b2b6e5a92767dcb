#!/usr/bin/env bash
# Builds fastmix with warnings as errors (the CUDA kernels included, with
# nvcc) and runs every test: the C/C++/CUDA suite through CTest, the same
# built with CUDA 12 (tests/cuda12.sh), every CUDA
# case on the GPGPU-Sim simulator of ../shared (tests/sim/run.sh), the
# resource check of the sm_90 kernels (bench/resources.sh), the suite
# under ASan+UBSan, a minute of fuzzing, then the Python package's suite
# (pip install . into .venv, pytest).
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FASTMIX_TEST_DEPS=1 source tests/deps.sh

build=build/test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_WARNINGS_AS_ERRORS=ON
cmake --build "$build" -j "$FASTMIX_JOBS"
ctest --test-dir "$build" --output-on-failure -j "$FASTMIX_JOBS"

# The library and the suite once more, built with a CUDA 12 toolkit (12.4,
# fetched once into ~/.cache/fastmix; sm_90 only): the build for r525+ drivers.
bash tests/cuda12.sh

# The CUDA kernels executed on the simulator, compared with the CPU backend.
bash tests/sim/run.sh

# The sm_90 kernels of this build: no register spills, 16-byte loads and
# stores in the vector paths (bench/resources.sh prints registers and blocks
# per SM too).
bash bench/resources.sh --lib "$build/libfastmix.so"

# The C/C++ suite again under ASan+UBSan, then the C ABI fuzzed for a
# bounded time (FASTMIX_FUZZ_SECONDS, default 60).
bash tests/sanitize.sh build/sanitize
bash tests/fuzz/run.sh "${FASTMIX_FUZZ_SECONDS:-60}"

bash tests/python/run.sh

# The NumPy tests once more, against the ASan+UBSan library of build/sanitize.
FASTMIX_SANITIZE_PYTHON=only bash tests/sanitize.sh build/sanitize
