#!/usr/bin/env bash
# Builds fastmix with a CUDA 12 toolkit and runs the C/C++ test suite of that
# build: the library and its kernels must compile with CUDA 12.x and its CCCL
# (CUB 2.3), whose runtime runs on r525+ drivers, while the main build uses
# CUDA 13 (r580+).  See "CUDA toolkits and drivers" in docs/design.md.
#
# The toolkit: CUDA 12.4.1 as Debian 13 ("trixie") packages it: the compiler
# (nvidia-cuda-toolkit), headers and static runtime (nvidia-cuda-dev,
# libcudart12; non-free) and CCCL 2.3.2 (libcub-dev, libthrust-dev,
# libcu++-dev; main).  PyPI has no CUDA 12 compiler: nvidia-cuda-nvcc-cu12
# holds ptxas and libnvvm but not nvcc, cicc, cudafe++, fatbinary or nvlink,
# and nvidia-cuda-runtime-cu12 holds no static runtime before 12.9.  The .deb
# files are fetched with apt-get download from the Debian mirror this machine's
# own sources use, through a private apt state (the system's sources and
# packages are left alone), and unpacked with dpkg-deb into a cache outside
# the checkout, which later runs reuse:
#   FASTMIX_CUDA12_CACHE (default ~/.cache/fastmix/cuda-12.4)
# There bin/, nvvm/, include/ and lib64/ are assembled as a toolkit root that
# nvcc (through its nvcc.profile) and CMake accept.  About 1 GB is downloaded
# once (nvidia-cuda-dev), of which about 250 MB are kept.
#   FASTMIX_CUDA12_ROOT=/usr/local/cuda-12.x  use an installed CUDA 12 toolkit instead
#
# The build: the library and the tests (no benchmarks) in build/cuda12 with
# warnings as errors, for one GPU architecture, sm_90 (FASTMIX_CUDA12_ARCH),
# to keep it to a few minutes on 2 cores; then CTest (the CUDA-only cases
# skip without a GPU) and a check that the library holds sm_90 code.
# Usage: bash tests/cuda12.sh
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/cuda12
arch="${FASTMIX_CUDA12_ARCH:-90}"
jobs="${FASTMIX_JOBS:-$(nproc)}"

# ---- the toolkit ------------------------------------------------------------
fetch_toolkit() {
  local cache=$1
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null ||
     [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "tests/cuda12.sh: skipped: fetching CUDA 12 needs Debian's apt-get on amd64" \
         "(or FASTMIX_CUDA12_ROOT=an installed CUDA 12 toolkit)" >&2
    exit 0
  fi
  # The mirror of this machine's Debian sources (the suite of its release).
  local codename mirror
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
           awk -v s="$codename" '$2 == s { print $1; exit }')
  if [ -z "$mirror" ]; then
    echo "tests/cuda12.sh: no Debian mirror found in this machine's apt sources" >&2
    exit 1
  fi
  local work="$cache.partial"
  rm -rf "$work"
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/debs" "$work/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main non-free" \
    > "$work/apt/sources.list"
  local apt=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o Dir::Etc::sourceparts=-
             -o "Dir::State::lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
             -o APT::Sandbox::User=root -qq)
  echo "tests/cuda12.sh: fetching CUDA 12.4 (Debian trixie's packages, about 1 GB) into $cache"
  apt-get "${apt[@]}" update
  (cd "$work/debs" && apt-get "${apt[@]}" download nvidia-cuda-toolkit nvidia-cuda-dev \
     libcudart12 libcub-dev libthrust-dev libcu++-dev)
  local deb
  for deb in "$work"/debs/*.deb; do
    case "$deb" in
      */nvidia-cuda-dev_*)  # 2.6 GB of libraries: only the headers and the runtime
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" --wildcards \
          './usr/include/*' './usr/lib/x86_64-linux-gnu/libcudart*' \
          './usr/lib/x86_64-linux-gnu/libcudadevrt.a' './usr/lib/x86_64-linux-gnu/libculibos.a' \
          './usr/lib/x86_64-linux-gnu/stubs/libcuda.so' ;;
      *) dpkg-deb -x "$deb" "$work/root" ;;
    esac
  done
  rm -rf "$work/debs" "$work/apt"

  # A toolkit root in the layout nvcc and CMake expect.  nvcc is copied, not
  # linked: it reads nvcc.profile from the folder of its real path.
  local r=../root/usr t="$work/toolkit"
  mkdir -p "$t/bin" "$t/nvvm/bin"
  cp "$work/root/usr/lib/nvidia-cuda-toolkit/bin/nvcc" "$t/bin/nvcc"
  local tool
  for tool in ptxas fatbinary nvlink cudafe++ bin2c cuobjdump nvdisasm nvprune cu++filt; do
    ln -s "../$r/bin/$tool" "$t/bin/$tool"
  done
  ln -s "../$r/lib/nvidia-cuda-toolkit/bin/crt" "$t/bin/crt"
  ln -s "../../$r/lib/nvidia-cuda-toolkit/bin/cicc" "$t/nvvm/bin/cicc"
  ln -s "../$r/lib/nvidia-cuda-toolkit/libdevice" "$t/nvvm/libdevice"
  ln -s "$r/include" "$t/include"
  ln -s "$r/lib/x86_64-linux-gnu" "$t/lib64"
  # nvcc's configuration (Debian's points at /usr): where its tools, libdevice,
  # the headers and the libraries are, relative to bin/.
  cat > "$t/bin/nvcc.profile" <<'EOF'
TOP = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES += "-I$(TOP)/include" $(_SPACE_)
LIBRARIES =+ $(_SPACE_) "-L$(TOP)/lib64/stubs" "-L$(TOP)/lib64"
EOF
  rm -rf "$cache"
  mv "$work" "$cache"
}

if [ -n "${FASTMIX_CUDA12_ROOT:-}" ]; then
  toolkit=$FASTMIX_CUDA12_ROOT
else
  cache="${FASTMIX_CUDA12_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastmix/cuda-12.4}"
  [ -x "$cache/toolkit/bin/nvcc" ] || fetch_toolkit "$cache"
  toolkit=$cache/toolkit
fi
nvcc=$toolkit/bin/nvcc
release=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
case "$release" in
  12.*) echo "tests/cuda12.sh: $nvcc is CUDA $release" ;;
  *) echo "tests/cuda12.sh: $nvcc is CUDA '$release', not 12.x" >&2; exit 1 ;;
esac

# ---- the build and the suite --------------------------------------------------
# CMAKE_CUDA_COMPILER alone chooses the toolkit: the CMakeLists enables CUDA
# before FindCUDAToolkit, which then takes this nvcc's headers and runtime.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_WARNINGS_AS_ERRORS=ON \
  -DFASTMIX_BUILD_BENCH=OFF -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch"
cudart=$(sed -n 's/^CUDA_cudart_static_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt")
case "$cudart" in
  "$toolkit"/*) ;;
  *) echo "tests/cuda12.sh: CMake took the runtime '$cudart', not $toolkit's" >&2; exit 1 ;;
esac
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
# The kernels are there, for the architecture asked for.
elfs=$("$toolkit/bin/cuobjdump" --list-elf "$build/libfastmix.so")
grep -q "\.sm_$arch\.cubin" <<<"$elfs" || {
  echo "tests/cuda12.sh: $build/libfastmix.so holds no sm_$arch code" >&2
  exit 1
}
echo "tests/cuda12.sh: fastmix built with CUDA $release (sm_$arch) and its suite passed"
