#!/usr/bin/env bash
# The GPU check: one prepared run that makes a few minutes on a GPU count.
#   bash bench/gpu_check.sh OUTDIR
# Builds in Release for this machine's GPU, runs the CUDA tests, runs them
# again under compute-sanitizer (memcheck over all of them, then racecheck
# over the tests tagged [racecheck]: the in-place blend and the loss, the
# kernels that share memory between threads) where the tool works, runs fastmix-bench --device cuda
# --json and bench/compare.py (when present) on the GPU, writes every log and
# JSON into OUTDIR and prints a summary table last.  Installs nothing (the GPU
# machine has no internet): Catch2 comes from .deps/catch2 (bench/gpu_prep.sh)
# or the system.  Budget: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: bash bench/gpu_check.sh OUTDIR}")
mkdir -p "$out"
start=$(date +%s)
rows=()

# step NAME SECONDS CMD...: runs CMD with a time limit, its output into OUTDIR/NAME.log
step() {
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  local verdict=PASS
  [ $rc -eq 0 ] || verdict="FAIL(rc=$rc)"
  [ $rc -eq 124 ] && verdict="TIMEOUT(${limit}s)"
  [ $rc -eq 77 ] && verdict="SKIPPED"
  rows+=("$(printf '%-22s %-16s %5ss  %s' "$name" "$verdict" "$(($(date +%s) - t0))" "$(tail -n 1 "$out/$name.log" | cut -c1-90)")")
  return $rc
}

for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
{
  date -u +"date: %Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  nvcc --version | tail -n 2
} >"$out/machine.txt" 2>&1
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')
[ -n "$arch" ] || arch=90

prefix=()
[ -d .deps/catch2 ] && prefix=(-DCMAKE_PREFIX_PATH="$PWD/.deps/catch2")
build=build/gpu
step configure 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" "${prefix[@]}" &&
  step build 300 cmake --build "$build" -j "$(nproc)"
# fastmix_cuda_tests: the CUDA-only cases; fastmix_tests: the cases of every
# device, run here on CUDA alone (ctest runs them on the CPU and CUDA).
tests="$build/tests/fastmix_cuda_tests"
shared="$build/tests/fastmix_tests"
if [ -x "$tests" ]; then
  step cuda_tests 120 "$tests"
  step device_tests 240 ctest --test-dir "$build" -E cuda_tests -j "$(nproc)"
  if command -v compute-sanitizer >/dev/null; then
    step memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$tests"
    step memcheck_devices 240 env FASTMIX_TEST_DEVICES=cuda compute-sanitizer --tool memcheck \
      --error-exitcode 1 "$shared" "[devices]"
    step racecheck 120 compute-sanitizer --tool racecheck --error-exitcode 1 "$tests" "[racecheck]"
    step racecheck_devices 180 env FASTMIX_TEST_DEVICES=cuda compute-sanitizer --tool racecheck \
      --error-exitcode 1 "$shared" "[racecheck]"
  else
    rows+=("compute-sanitizer      not found")
  fi
fi
[ -x "$build/bench/fastmix-bench" ] &&
  step bench 150 "$build/bench/fastmix-bench" --device cuda --json "$out/bench_cuda.json"
if [ -f bench/compare.py ]; then
  step compare 120 env FASTMIX_LIBRARY="$PWD/$build/libfastmix.so" PYTHONPATH="$PWD/bindings/python" \
    python3 bench/compare.py --device cuda --json "$out/compare_cuda.json"
fi

echo
echo "fastmix GPU check, $(head -n 1 "$out/machine.txt"), sm_$arch, $(($(date +%s) - start)) s in all; logs in $out"
sed -n 2,3p "$out/machine.txt"
printf '%s\n' "${rows[@]}"
if [ -f "$out/bench_cuda.json" ]; then
  echo "bench (fastmix rows: op dtype shape mode GB/s %ceiling):"
  python3 - "$out/bench_cuda.json" <<'PY' 2>/dev/null || true
import json, sys
for r in json.load(open(sys.argv[1])):
    if r["variant"] == "fastmix":
        print(f'  {r["op"]:<14} {r["dtype"]:<9} {r["shape"]:<18} {r["mode"]:<13} {r["gbps"]:8.1f} {100*r["gbps"]/r["ceiling_gbps"]:6.1f}%')
PY
fi
