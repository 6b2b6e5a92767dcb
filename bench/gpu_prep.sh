#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a device call: copies Debian's
# Catch2 (headers + CMake package) into .deps/catch2, which git ignores, so
# that the call can carry it (carry: [".deps"]) to a machine without internet.
set -euo pipefail
cd "$(dirname "$0")/.."
FASTMIX_TEST_DEPS=1 source tests/deps.sh
rm -rf .deps/catch2
mkdir -p .deps/catch2/include .deps/catch2/lib/cmake
cp -r /usr/include/catch2 .deps/catch2/include/
cp -r /usr/lib/cmake/Catch2 .deps/catch2/lib/cmake/
cp /usr/lib/libCatch2WithMain.a .deps/catch2/lib/
echo "bench/gpu_prep.sh: Catch2 copied into .deps/catch2 ($(du -sh .deps | cut -f1))"
