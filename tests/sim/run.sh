#!/usr/bin/env bash
# Runs every CUDA test case on GPGPU-Sim, the functional GPU simulator in
# ../shared/gpgpu-sim, so that the kernels execute (and are compared with the
# CPU backend) on a machine without a GPU.
#
#  1. builds fastmix for the simulator (-DFASTMIX_SIMULATOR=ON: static library,
#     shared CUDA runtime, PTX for sm_80) into build/sim; the simulator is
#     built with the project's patches (tests/sim/patches, through
#     tests/sim/env.sh);
#  2. runs tests/sim/bf16_cvt.cu, the simulator's bfloat16 conversions
#     against a host reference bit for bit, and checks that the PTX it ran
#     holds the sm_80 conversion instructions (cvt.rn.bf16.f32,
#     cvt.rn.bf16x2.f32) rather than the headers' software rounding;
#  3. runs each case in its own simulator process, FASTMIX_JOBS at a time, so
#     that one crash cannot hide the others: the [devices] cases of
#     fastmix_tests on CUDA alone (their CPU side ran in the plain suite), and
#     every case of fastmix_cuda_tests except those the simulator cannot run
#     (named, with the reason);
#  4. fails unless the conversion test and every case passed and every kernel
#     in the binary (each template instance: kernel x dtype x path x source)
#     was launched by at least one case; writes the kernel -> first case
#     table to build/sim/coverage.txt.
# Without ../shared/gpgpu-sim it says that the simulated suite was skipped and
# exits 0.  Usage: bash tests/sim/run.sh [Catch2 test spec to narrow the cases]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source tests/sim/env.sh
sim=$FASTMIX_SIM_DIR
if [[ ! -x $sim/run.sh ]]; then
  echo "fastmix: $sim not found: the simulated CUDA suite was SKIPPED (no CUDA kernel ran)"
  exit 0
fi
FASTMIX_TEST_DEPS=1 source tests/deps.sh
jobs=$FASTMIX_JOBS
build=${FASTMIX_SIM_BUILD:-build/sim}  # FASTMIX_SIM_BUILD: another build folder
out=$build/run
spec=${1:-}

echo "== simulated CUDA suite: building for GPGPU-Sim (sm_80 PTX) into $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_SIMULATOR=ON \
  -DFASTMIX_WARNINGS_AS_ERRORS=ON >/dev/null
cmake --build "$build" -j "$jobs" --target fastmix_tests fastmix_cuda_tests fastmix_sim_bf16_cvt
# The simulator's environment: ptxas answers cached in $build/ptxas-cache,
# the launch shim preloaded (tests/sim/env.sh).
fastmix_sim_env "$build"
rm -rf "$out"
mkdir -p "$out/logs"
export FASTMIX_TEST_SIMULATOR=1 FASTMIX_TEST_DEVICES=cuda
export FASTMIX_TEST_SEED=${FASTMIX_TEST_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
echo "   FASTMIX_TEST_SEED=$FASTMIX_TEST_SEED (set it to repeat this run's inputs)"

tests=$root/$build/tests

# The bfloat16 conversions first, alone: a wrong one would fail many cases at
# once.  The PTX the simulator extracted into the working folder must hold
# both instructions, or the test proved nothing about them.
echo "== simulated CUDA suite: bfloat16 conversion (tests/sim/bf16_cvt.cu)"
bf16_ok=1
if FASTMIX_SIM_WORKDIR=$out/bf16 "$sim/run.sh" "$root/tests/sim/case.sh" \
  "$tests/fastmix_sim_bf16_cvt" >"$out/bf16.log" 2>&1 && grep -q '^bf16_cvt: passed$' "$out/bf16.log"; then
  for insn in cvt.rn.bf16.f32 cvt.rn.bf16x2.f32; do
    if ! grep -qF "$insn" "$out"/bf16/*.ptx; then
      echo "   the simulated PTX has no $insn ($out/bf16): not the sm_80 conversion"
      bf16_ok=0
    fi
  done
else
  bf16_ok=0
fi
grep '^bf16_cvt: ' "$out/bf16.log" | sed 's/^/   /' || true
if ((!bf16_ok)); then
  echo "   FAILED: bfloat16 conversion on the simulator (log $out/bf16.log)"
  grep -v -e '^GPGPU-Sim' -e '^bf16_cvt: ' "$out/bf16.log" | tail -5 | sed 's/^/      | /'
fi

# Cases the simulator cannot run, by tag, with the reason.
declare -A unsupported=(
  [graph]="CUDA graphs and stream capture: the simulator has no graph API"
  [managed]="managed memory: the simulator has no unified memory"
  [threads]="host threads calling at once: the simulated runtime keeps its state (last error, streams) in unlocked globals"
  [large]="a full-size batch: hours on the simulator; the same kernel paths run at smaller sizes"
)
exclude=""
for tag in "${!unsupported[@]}"; do exclude+="~[$tag]"; done
list() { "$tests/$1" --list-test-names-only "$2" | sed -e '/^$/d' -e '/test cases*$/d' -e '/^Matching/d'; }
# The cases of binary $1 that match both specs $2 and $3 (a spec may hold
# commas, Catch2's "or", so the two are intersected rather than joined).
both() { grep -Fx -f <(list "$1" "$3") <(list "$1" "$2") || true; }
: >"$out/cases"
while IFS= read -r name; do printf 'fastmix_tests\t%s\n' "$name" >>"$out/cases"; done \
  < <(both fastmix_tests "[devices]" "${spec:-*}")
while IFS= read -r name; do printf 'fastmix_cuda_tests\t%s\n' "$name" >>"$out/cases"; done \
  < <(both fastmix_cuda_tests "$exclude" "${spec:-*}")
for tag in "${!unsupported[@]}"; do
  while IFS= read -r name; do
    echo "   not run on the simulator: \"$name\" (${unsupported[$tag]})"
  done < <(list fastmix_cuda_tests "[$tag]")
done
total=$(wc -l <"$out/cases")
[[ $total -gt 0 ]] || { echo "fastmix: no test case to simulate" >&2; exit 1; }

# One process per case, `jobs` at a time (PTX register counts cached first).
echo "== simulated CUDA suite: $total cases, $jobs at a time"
for b in fastmix_tests fastmix_cuda_tests; do
  FASTMIX_SIM_WORKDIR=$out/warm-$b "$sim/run.sh" "$root/tests/sim/case.sh" "$tests/$b" \
    --list-test-names-only >"$out/warm-$b.log" 2>&1 &
done
wait
start=$SECONDS
nl -ba -w1 -s$'\t' "$out/cases" |
  xargs -d '\n' -P "$jobs" -I{} bash "$root/tests/sim/case.sh" --run "$sim/run.sh" "$tests" "$out" "{}"
echo "   simulated in $((SECONDS - start)) s"

passed=$(find "$out/logs" -name "*.pass" | wc -l)
failed=$((total - passed))

# Coverage: every kernel entry of the binary launched by some case.
entries=$(grep -ho '^\(\.visible \)\?\.entry [A-Za-z0-9_]*' "$out"/warm-fastmix_tests/*.ptx |
  awk '{print $NF}' | sort -u)
[[ -n $entries ]] || { echo "fastmix: no kernel found in the simulator's PTX ($out/warm-fastmix_tests)" >&2; exit 1; }
: >"$build/coverage.txt"
missing=0
for k in $entries; do
  first=$(grep -l "executing kernel $k\.\.\." "$out"/logs/*.log 2>/dev/null | sort -V | head -1 || true)
  pretty=$(echo "$k" | c++filt | sed -e 's/fm::(anonymous namespace):://g' -e 's/(anonymous namespace):://g')
  if [[ -z $first ]]; then
    echo "   NOT LAUNCHED by any simulated case: $pretty"
    missing=$((missing + 1))
  else
    printf '%s\t%s\n' "$pretty" "$(cut -f2- "${first%.log}.case" | sed 's/\t/: /')" >>"$build/coverage.txt"
  fi
done
echo "   kernel coverage: $(wc -l <"$build/coverage.txt") of $(echo "$entries" | wc -w) kernel instances launched ($build/coverage.txt)"
echo "simulated: $passed passed, $failed failed"
((bf16_ok)) || echo "simulated: the bfloat16 conversion test FAILED ($out/bf16.log)"
[[ $bf16_ok -eq 1 && $failed -eq 0 && $missing -eq 0 ]]
