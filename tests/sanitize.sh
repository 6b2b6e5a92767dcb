#!/usr/bin/env bash
# The whole C/C++ test suite under AddressSanitizer + UndefinedBehaviorSanitizer:
# a separate build with -DFASTMIX_SANITIZE=address,undefined (host
# code of the library and of the tests; nvcc's code is not instrumented), then
# CTest.  Any sanitizer report aborts the test that triggers it.
# Usage: bash tests/sanitize.sh [build dir, default build/sanitize]
#   FASTMIX_SANITIZE_CUDA=ON|OFF|auto  build the CUDA backend too (auto, the
#       default: only where nvidia-smi sees a GPU, since without one the CUDA
#       tests are skipped and the kernels would only cost compile time)
#   FASTMIX_SANITIZE_PYTHON=1  afterwards also run the NumPy tests of the
#       Python package against this library (needs .venv from tests/python/run.sh);
#       =only: just that, against an existing sanitizer build (tests/run.sh
#       does this after the Python suite has made .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
FASTMIX_TEST_DEPS=1 source tests/deps.sh

build=${1:-build/sanitize}
cuda=${FASTMIX_SANITIZE_CUDA:-auto}
if [ "$cuda" = auto ]; then
  if nvidia-smi -L >/dev/null 2>&1; then cuda=ON; else cuda=OFF; fi
fi
py=${FASTMIX_SANITIZE_PYTHON:-0}
if [ "$py" != only ]; then
echo "tests/sanitize.sh: ASan+UBSan build in $build (CUDA backend: $cuda)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTMIX_WARNINGS_AS_ERRORS=ON \
  -DFASTMIX_SANITIZE=address,undefined -DFASTMIX_ENABLE_CUDA="$cuda" -DFASTMIX_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$FASTMIX_JOBS"

# protect_shadow_gap=0: the CUDA driver maps memory where ASan's shadow gap
# would be.  verify_asan_link_order=0: the install test builds consumers
# without -fsanitize against the instrumented library.  Leak checking stays on.
fi
export ASAN_OPTIONS="protect_shadow_gap=0:verify_asan_link_order=0:detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
[ "$py" = only ] || ctest --test-dir "$build" --output-on-failure -j "$FASTMIX_JOBS"

if [ "$py" = 1 ] || [ "$py" = only ]; then
  # The NumPy tests of the Python package with the instrumented library
  # preloaded.  Not the torch tests: torch's own allocators and bundled CUDA
  # libraries make an ASan run of them impractical (see docs/reliability.md).
  # Leak checking is off here: CPython does not free its own objects at exit.
  asan=$(${CXX:-g++} -print-file-name=libasan.so)
  ubsan=$(${CXX:-g++} -print-file-name=libubsan.so)
  LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
    FASTMIX_LIBRARY="$PWD/$build/libfastmix.so" \
    .venv/bin/python -m pytest -p no:cacheprovider -q tests/python/test_numpy.py
fi
echo "tests/sanitize.sh: all passed under address,undefined"
