#!/usr/bin/env bash
# One case of the simulated suite (called by tests/sim/run.sh).
#   case.sh --run SIM_RUN TESTS_DIR OUT "INDEX<TAB>BINARY<TAB>CASE NAME"
#     runs the case in its own simulator process and working folder, writes
#     OUT/logs/INDEX.log (the simulator's output), .case, and .pass on success,
#     and prints one line for it (the test's own output too when it failed);
#   case.sh PROGRAM ARGS... (inside the simulator's environment, in the
#     working folder holding its config)
#     points the simulator at the CUDA folder whose ptxas caches its answers,
#     preloads tests/sim/launch_shim.c (FASTMIX_SIM_LAUNCH_SHIM) and appends
#     tests/sim/sm80.gpgpusim.config to the config (sm_80 PTX: fastmix's).
set -uo pipefail
if [[ ${1:-} != --run ]]; then
  export CUDA_INSTALL_PATH=$FASTMIX_SIM_CUDA
  export LD_PRELOAD=$FASTMIX_SIM_LAUNCH_SHIM${LD_PRELOAD:+:$LD_PRELOAD}
  cat "$(dirname "$(readlink -f "$0")")/sm80.gpgpusim.config" >>gpgpusim.config || exit 2
  exec "$@"
fi
sim_run=$2 tests=$3 out=$4
IFS=$'\t' read -r index binary name <<<"$5"
log=$out/logs/$index.log
printf '%s\t%s\t%s\n' "$index" "$binary" "$name" >"${log%.log}.case"
# Catch2 reads commas and brackets in a test spec as operators: escape them.
spec=$(printf '%s' "$name" | sed -e 's/\\/\\\\/g' -e 's/,/\\,/g' -e 's/\[/\\[/g' -e 's/\]/\\]/g')
t0=$SECONDS
FASTMIX_SIM_WORKDIR=$out/work/$index timeout 1200 "$sim_run" "$0" "$tests/$binary" "$spec" >"$log" 2>&1
rc=$?
secs=$((SECONDS - t0))
kernels=$(grep -c '^GPGPU-Sim: Performing Functional Simulation, executing kernel' "$log")
if [[ $rc -eq 0 ]] && grep -q '^All tests passed' "$log"; then
  touch "${log%.log}.pass"
  printf '   passed  %4ds %5d launches  %s: %s\n' "$secs" "$kernels" "$binary" "$name"
else
  printf '   FAILED  %4ds %5d launches  %s: %s (exit %d; log %s)\n' "$secs" "$kernels" "$binary" "$name" "$rc" "$log"
  # The test's own lines, without the simulator's.
  grep -v -e '^GPGPU-Sim' -e '^\s*$' -e '^self exe links' -e '^Extracting' -e '^Running md5sum' \
    -e '^[-a-zA-Z_]* *[-0-9.,:a-zA-Z]* *#' -e '^padded cta size' -e '^Max CTA' \
    -e '^Destroy streams' -e '^gpgpu_simulation_' -e '^\[cuda_runtime_api' "$log" | tail -40 |
    sed 's/^/      | /'
fi
rm -rf "$out/work/$index"
