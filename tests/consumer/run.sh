#!/usr/bin/env bash
# The install test: installs the already-built fastmix into a temporary
# prefix, then builds and runs
#   1. tests/consumer as a CMake project (find_package(fastmix) -> fastmix::fastmix),
#   2. consumer.c compiled with the flags of `pkg-config --cflags --libs fastmix`.
# usage: run.sh <fastmix build dir> [cmake] [C compiler]
set -euo pipefail

build=${1:?usage: run.sh <fastmix build dir> [cmake] [C compiler]}
cmake=${2:-cmake}
cc=${3:-cc}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fastmix-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step() { printf '\n== %s\n' "$*"; }

step "install $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix"

step "CMake consumer project (find_package(fastmix))"
"$cmake" -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="$cc"
"$cmake" --build "$tmp/cmake-build"
"$tmp/cmake-build/consumer_c"
"$tmp/cmake-build/consumer_cxx"

step "pkg-config consumer"
pc=$(find "$prefix" -name fastmix.pc -print -quit)
if [[ -z $pc ]]; then
  echo "FAIL: no fastmix.pc installed under $prefix" >&2
  exit 1
fi
export PKG_CONFIG_PATH=$(dirname "$pc")
pc_prefix=$(pkg-config --variable=prefix fastmix)
if [[ $(realpath -m "$pc_prefix") != $(realpath -m "$prefix") ]]; then
  echo "FAIL: the installed fastmix.pc says prefix=$pc_prefix, but it was installed into $prefix" >&2
  echo "      (cmake --install --prefix must give a usable .pc file: it must not hard-code the" >&2
  echo "      configure-time CMAKE_INSTALL_PREFIX; e.g. prefix=\${pcfiledir}/../.. in cmake/fastmix.pc.in)" >&2
  exit 1
fi
flags=$(pkg-config --cflags --libs fastmix)
libdir=$(pkg-config --variable=libdir fastmix)
echo "pkg-config --cflags --libs fastmix: $flags"
# shellcheck disable=SC2086  # the flags are words
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror "$here/consumer.c" -o "$tmp/consumer_pc" $flags \
  -Wl,-rpath,"$libdir"
"$tmp/consumer_pc"

step "pkg-config consumer: the README's command line, as written"
readme_line=$(grep -o 'cc app\.c \$(pkg-config --cflags --libs fastmix)[^`]*' "$here/../../README.md" | head -1)
if [[ -z $readme_line ]]; then
  echo "FAIL: README.md has no 'cc app.c \$(pkg-config --cflags --libs fastmix) ...' line" >&2
  exit 1
fi
echo "$readme_line"
mkdir -p "$tmp/readme"
cp "$here/consumer.c" "$tmp/readme/app.c"
(cd "$tmp/readme" && eval "\"$cc\"${readme_line#cc}" && ./a.out)

step "install consumer: all passed"
