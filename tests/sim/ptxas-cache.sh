#!/usr/bin/env bash
# Stands in for ptxas inside the simulator's CUDA folder.  GPGPU-Sim runs
# `ptxas FLAGS -v FILE.ptx --output-file /dev/null` at every process start to
# read register counts, about 8 s per PTX file of fastmix; the answer depends
# only on the flags and the PTX text, so it is kept in FASTMIX_SIM_PTXAS_CACHE
# and replayed (stderr, where -v writes, and the exit code).
set -uo pipefail
real=${FASTMIX_SIM_REAL_PTXAS:?}
cache=${FASTMIX_SIM_PTXAS_CACHE:?}
key=$( (printf '%s\n' "$@" | grep -v '\.ptx$'; for a in "$@"; do [[ $a == *.ptx ]] && cat "$a"; done) |
  sha256sum | cut -c1-32)
if [[ -f $cache/$key.err && -f $cache/$key.rc ]]; then
  cat "$cache/$key.err" >&2
  exit "$(cat "$cache/$key.rc")"
fi
mkdir -p "$cache"
tmp=$(mktemp "$cache/.tmp.XXXXXX")
"$real" "$@" 2>"$tmp"
rc=$?
cat "$tmp" >&2
echo "$rc" >"$tmp.rc" && mv "$tmp.rc" "$cache/$key.rc.new" && mv "$tmp" "$cache/$key.err" &&
  mv "$cache/$key.rc.new" "$cache/$key.rc"
exit $rc
