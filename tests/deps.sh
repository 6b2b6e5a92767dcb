#!/usr/bin/env bash
# Installs what building and testing fastmix needs on a fresh Debian machine
# of the project's kind (the CUDA toolkit itself is part of that machine).
# Sourced by bench/demo.sh and tests/run.sh.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# Test-only needs (tests/run.sh sets FASTMIX_TEST_DEPS=1): Catch2, and clang
# with its libFuzzer runtime for tests/fuzz/run.sh (Debian 12: clang 14).
if [ "${FASTMIX_TEST_DEPS:-0}" = 1 ]; then
  if command -v clang++ >/dev/null; then
    [ -f "$(clang++ -print-runtime-dir)/libclang_rt.fuzzer-x86_64.a" ] ||
      missing+=("libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev")
  else
    missing+=(clang libclang-rt-14-dev)
  fi
  [ -f /usr/lib/cmake/Catch2/Catch2Config.cmake ] || [ -f /usr/share/cmake/Catch2/Catch2Config.cmake ] ||
    [ -n "$(find /usr/lib /usr/share /usr/local -path '*Catch2/Catch2Config.cmake' -print -quit 2>/dev/null)" ] ||
    missing+=(catch2)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "fastmix: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "fastmix: please install ${missing[*]} (Debian packages); not root, so not installing" >&2
    exit 1
  fi
fi

if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
if ! command -v nvcc >/dev/null; then
  echo "fastmix: nvcc (the CUDA toolkit; CI uses 13.0) is required and was not found" >&2
  exit 1
fi
export FASTMIX_JOBS="${FASTMIX_JOBS:-$(nproc)}"
