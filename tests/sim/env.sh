# Sourced (from the repository root) by the scripts that run fastmix programs
# on GPGPU-Sim, the functional GPU simulator: tests/sim/run.sh (the simulated
# test suite) and bench/sim_profile.sh (the instruction-budget report).
#
# Sets FASTMIX_SIM_DIR: the simulator's folder (default ../shared/gpgpu-sim
# next to the repository; set it beforehand to use another), and exports
# FASTMIX_SIM_PATCHES: every tests/sim/patches/*.patch, joined by ':', which
# the simulator's build.sh (called by its run.sh as well) applies on top of
# its own and keys its cache on, so that every simulated program runs on the
# simulator with the project's patches (bf16-cvt.patch: the bfloat16
# conversions of sm_80 PTX; shared-window.patch: shared memory past 96 KiB
# per block).  Defines:
#   fastmix_sim_env BUILD   prepares the simulator's environment for programs
#                           built in BUILD: a copy of the simulator's CUDA
#                           folder whose ptxas is tests/sim/ptxas-cache.sh
#                           (GPGPU-Sim runs ptxas on every PTX file at every
#                           process start; the cache answers in milliseconds
#                           instead of ~8 s per file), and tests/sim/launch_shim.c
#                           built for LD_PRELOAD (the simulator's
#                           cudaLaunchKernel needs it); exports the FASTMIX_SIM_*
#                           variables tests/sim/case.sh reads (it appends
#                           tests/sim/sm80.gpgpusim.config to the simulator's
#                           config in each working folder).
#   fastmix_sim_run PROG ARGS...
#                           runs PROG on the simulator in that environment
#                           (in a fresh working folder, FASTMIX_SIM_WORKDIR to
#                           choose it); call fastmix_sim_env first.
FASTMIX_SIM_DIR=${FASTMIX_SIM_DIR:-$(cd .. && pwd)/shared/gpgpu-sim}
FASTMIX_SIM_PATCHES=$(printf '%s\n' "$PWD"/tests/sim/patches/*.patch | paste -sd:)
export FASTMIX_SIM_PATCHES

fastmix_sim_env() {
  local build=$1 root=$PWD env_sh sim_cuda farm f
  env_sh=$("$FASTMIX_SIM_DIR/build.sh" | tail -1)
  # The simulator's CUDA folder, linked file by file, with ptxas replaced by
  # the caching stand-in.
  sim_cuda=$(source "$env_sh" >/dev/null 2>&1; echo "$CUDA_INSTALL_PATH")
  farm=$root/$build/sim-cuda
  rm -rf "$farm"
  mkdir -p "$farm/bin"
  for f in "$sim_cuda"/*; do [[ $(basename "$f") == bin ]] || ln -s "$f" "$farm/"; done
  for f in "$sim_cuda"/bin/*; do [[ $(basename "$f") == ptxas ]] || ln -s "$f" "$farm/bin/"; done
  ln -s "$root/tests/sim/ptxas-cache.sh" "$farm/bin/ptxas"
  export FASTMIX_SIM_REAL_PTXAS=$sim_cuda/bin/ptxas
  export FASTMIX_SIM_PTXAS_CACHE=$root/$build/ptxas-cache
  export FASTMIX_SIM_CUDA=$farm
  # The simulator's cudaLaunchKernel needs the launch configuration pushed first.
  export FASTMIX_SIM_LAUNCH_SHIM=$root/$build/liblaunch_shim.so
  cc -shared -fPIC -O2 -Wall -Werror -I"$sim_cuda/include" tests/sim/launch_shim.c \
    -o "$FASTMIX_SIM_LAUNCH_SHIM" -ldl
}

fastmix_sim_run() {
  "$FASTMIX_SIM_DIR/run.sh" "$PWD/tests/sim/case.sh" "$@"
}
