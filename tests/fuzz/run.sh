#!/usr/bin/env bash
# Fuzzes the C ABI (tests/fuzz/fuzz_api.cpp) with libFuzzer for a bounded
# time: clang, -fsanitize=fuzzer,address,undefined, the library's host sources
# compiled in (host/*.cpp, the CUDA launchers replaced by host/cuda_stub.cpp;
# OpenMP off, so each input runs on one thread and replays exactly).
# Usage: bash tests/fuzz/run.sh [seconds, default 60]
#   FASTMIX_FUZZ_BUILD   where to build and keep the growing corpus (default build/fuzz)
# Starts from the seeds in tests/fuzz/corpus/ (replayed first: each must pass)
# and from the corpus grown by earlier runs; a crash leaves its input in
# $FASTMIX_FUZZ_BUILD/crash-* and fails the script.  To keep it as a
# regression test, copy it into tests/fuzz/corpus/ (CTest's fuzz_corpus test
# replays that directory in every build, the sanitizer build included).
set -euo pipefail
cd "$(dirname "$0")/../.."
FASTMIX_TEST_DEPS=1 source tests/deps.sh

seconds=${1:-60}
build=${FASTMIX_FUZZ_BUILD:-build/fuzz}
mkdir -p "$build/corpus"
cuda_include=$(dirname "$(command -v nvcc)")/../include

echo "tests/fuzz/run.sh: building $build/fuzz_api"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -ffp-contract=off -fno-math-errno
  -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-const-variable -Werror
  -Iinclude -isystem "$cuda_include")
# The harness plays a C caller, which may pass any int as an enum: in C++ a
# load of such an enum value is what -fsanitize=enum reports, so the harness
# alone is built without that check (the library keeps it).
clang++ "${flags[@]}" -fno-sanitize=enum -c tests/fuzz/fuzz_api.cpp -o "$build/fuzz_api.o"
clang++ "${flags[@]}" "$build/fuzz_api.o" host/*.cpp -o "$build/fuzz_api"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

echo "tests/fuzz/run.sh: replaying the $(ls tests/fuzz/corpus | wc -l) seeds of tests/fuzz/corpus"
"$build/fuzz_api" tests/fuzz/corpus/* >"$build/replay.log" 2>&1 || { cat "$build/replay.log" >&2; exit 1; }
echo "tests/fuzz/run.sh: $(grep -c '^Executed' "$build/replay.log") seeds passed"

echo "tests/fuzz/run.sh: fuzzing for ${seconds} s"
set +e
# A fixed seed (FASTMIX_FUZZ_SEED, default 1) makes a run a prefix of one
# deterministic sequence, so CI reproduces what a developer ran; set it to 0
# for a fresh random seed when hunting.
"$build/fuzz_api" -seed="${FASTMIX_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=4096 \
  -print_final_stats=1 -artifact_prefix="$build/" "$build/corpus" tests/fuzz/corpus >"$build/last_run.log" 2>&1
status=$?
set -e
grep -E '^(#[0-9]+ +(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|INFO: +[0-9]+ files found)' \
  "$build/last_run.log" || true
if [ "$status" -ne 0 ]; then
  echo "tests/fuzz/run.sh: FAILED (status $status); the full log is $build/last_run.log" >&2
  tail -n 60 "$build/last_run.log" >&2
  exit 1
fi
echo "tests/fuzz/run.sh: no crash in ${seconds} s"
