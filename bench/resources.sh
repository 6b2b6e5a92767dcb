#!/usr/bin/env bash
# The resources of every kernel in the sm_90 (Hopper) build, read from the
# binary with cuobjdump, no GPU needed: registers, stack and local memory,
# static shared memory, threads per block and the resulting blocks per SM on
# an H200; and two checks that fail (exit 1):
#   - local memory: a kernel with a stack frame (STACK > 0, which is where
#     ptxas puts spilled registers), LOCAL > 0, or LDL/STL instructions;
#   - 16-byte memory access: the vector-path kernels (the out-of-place blend
#     with Vec = true, "Lb1E" in its mangled name, the staged blend (and
#     CutMix in place) with a vector Layout, the out-of-place CutMix with a
#     vector CutPath, and every instance of the loss kernel, loss_kernel, and
#     of the uint8 input kernel, u8_tiles_kernel) must have a 128-bit global
#     load (LDG...128) and a 128-bit global store (STG...128) inside a loop
#     of their SASS (the hot loops).
#
#   bash bench/resources.sh [--lib PATH]
#
# The library: --lib PATH, else build/test/libfastmix.so when it holds sm_90
# code and is newer than every file under kernels/, else the library of
# build/resources (configured here for sm_90 only, without tests and
# benchmarks, rebuilt incrementally).  cuobjdump: on PATH, in the CUDA
# toolkit, in the simulator's cache (../shared/gpgpu-sim/build.sh fetches it),
# or pip-installed (nvidia-cuda-cuobjdump) into build/tools.
#
# Blocks per SM (an H200, sm_90): 65536 registers, 2048 threads, 32 blocks and
# 228 KiB of shared memory per SM, 1 KiB of it reserved by the system per
# block; registers are allocated per warp in units of 256.  cuobjdump's
# SHARED already includes that reserved KiB when it is non-zero (the
# reservation sits in the kernel's own shared window); dynamic shared memory,
# sized at launch, is not counted (the in-place blend and the loss with its
# row cache ask for more: docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=""
while (($#)); do
  case $1 in
    --lib) lib=$2; shift ;;
    *) echo "resources.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

find_cuobjdump() {
  local c
  for c in "$(command -v cuobjdump || true)" "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump"; do
    [[ -n $c && -x $c ]] && { echo "$c"; return; }
  done
  local sim=${FASTMIX_SIM_DIR:-$(cd .. && pwd)/shared/gpgpu-sim}
  if [[ -x $sim/build.sh ]]; then
    c=$(dirname "$("$sim/build.sh" | tail -1)")/cuda/bin/cuobjdump
    [[ -x $c ]] && { echo "$c"; return; }
  fi
  c=build/tools/cuobjdump/nvidia/cu13/bin/cuobjdump
  if [[ ! -x $c ]]; then
    echo "resources.sh: installing nvidia-cuda-cuobjdump from PyPI into build/tools" >&2
    python3 -m pip install -q --target build/tools/cuobjdump nvidia-cuda-cuobjdump >&2 ||
      python3 -m pip install -q --break-system-packages --target build/tools/cuobjdump \
        nvidia-cuda-cuobjdump >&2
    c=$(find build/tools/cuobjdump -type f -name cuobjdump | head -1)
  fi
  [[ -x $c ]] || { echo "resources.sh: no cuobjdump" >&2; exit 2; }
  echo "$c"
}
cuobjdump=$(find_cuobjdump)

has_sm90() { [[ $("$cuobjdump" --list-elf "$1" 2>/dev/null) == *sm_90* ]]; }
if [[ -z $lib ]]; then
  lib=build/test/libfastmix.so
  newer=$(find kernels -newer "$lib" -type f 2>/dev/null | head -1 || true)
  if [[ ! -f $lib ]] || ! has_sm90 "$lib" || [[ -n $newer ]]; then
    echo "== building the sm_90 library into build/resources" >&2
    cmake -S . -B build/resources -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DFASTMIX_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
    cmake --build build/resources -j "${FASTMIX_JOBS:-2}" --target fastmix >/dev/null
    lib=build/resources/libfastmix.so
  fi
fi
has_sm90 "$lib" || { echo "resources.sh: $lib has no sm_90 code" >&2; exit 2; }
echo "fastmix kernel resources, sm_90 code of $lib ($(date -r "$lib" '+%Y-%m-%d %H:%M'))"

python3 - "$cuobjdump" "$lib" <<'PY'
import re, subprocess, sys

cuobjdump, lib = sys.argv[1], sys.argv[2]
def dump(*flags):
    return subprocess.run([cuobjdump, *flags, "-arch", "sm_90", lib], capture_output=True,
                          text=True, check=True).stdout

def functions(flag, head):
    """(kernel, line) for every line of a dump below a kernel's header line
    (matched by `head`, the name its group 1), and (kernel, None) for the
    header itself."""
    name = None
    for line in dump(flag).splitlines():
        m = re.match(head, line)
        if m:
            name = m.group(1)
            yield name, None
        elif name:
            yield name, line

# Registers, stack, shared, local per kernel.
res = {}
for name, line in functions("--dump-resource-usage", r"\s*Function (\S+):"):
    m = line and re.match(r"\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
    if m:
        res[name] = dict(zip(("reg", "stack", "shared", "local"), map(int, m.groups())))

# Threads per block: the __launch_bounds__ the cubin records (EIATTR_MAX_THREADS);
# kernels without one are launched with a fixed configuration, known here.
LAUNCHED_WITH = {"advance_offset_kernel": 1}
maxthreads = {}
name = None
lines = dump("-elf").splitlines()
for i, line in enumerate(lines):
    m = re.match(r"\.nv\.info\.(\S+)$", line)
    if m:
        name = m.group(1)
    elif name and "EIATTR_MAX_THREADS" in line:
        v = re.search(r"Value:\s+(0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+)", lines[i + 2])
        maxthreads[name] = int(v.group(1), 16) * int(v.group(2), 16) * int(v.group(3), 16)

# SASS: per kernel, local-memory instructions and whether a loop (the span
# from a backward branch's target to the branch) holds 128-bit LDG and STG.
sass = {}
for name, line in functions("--dump-sass", r"\s*Function : (\S+)"):
    m = line and re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
    if m:
        sass.setdefault(name, []).append((int(m.group(1), 16), m.group(2)))
    elif line is None:
        sass.setdefault(name, [])

def sass_facts(ins):
    facts = {"ldl": 0, "ldg128_loop": False, "stg128_loop": False, "ldg128": False, "stg128": False}
    loops = []
    for addr, text in ins:
        op = re.sub(r"^@!?U?P[T0-9]+\s+", "", text).split()[0] if text.strip() else ""
        if op in ("LDL", "STL") or op.startswith(("LDL.", "STL.")):
            facts["ldl"] += 1
        m = re.match(r"BRA(?:\.[A-Z0-9.]+)?\s[^;]*?(0x[0-9a-f]+)\s*$", op and text[text.index(op):])
        if m and int(m.group(1), 16) <= addr:
            loops.append((int(m.group(1), 16), addr))
    for addr, text in ins:
        op = re.sub(r"^@!?U?P[T0-9]+\s+", "", text).split()[0] if text.strip() else ""
        for kind in ("LDG", "STG"):
            if op.startswith(kind + ".") and ".128" in op:
                facts[kind.lower() + "128"] = True
                if any(lo <= addr <= hi for lo, hi in loops):
                    facts[kind.lower() + "128_loop"] = True
    return facts

pretty_in = sorted(res)
pretty = subprocess.run(["c++filt"], input="\n".join(pretty_in), capture_output=True, text=True,
                        check=True).stdout.splitlines()
def short(p):
    p = p.replace("fm::(anonymous namespace)::", "").replace("(anonymous namespace)::", "")
    p = p.replace("fm::", "").replace("void ", "", 1)
    depth = 0
    for i, ch in enumerate(p):
        if ch == "<": depth += 1
        elif ch == ">": depth -= 1
        elif ch == "(" and depth == 0: return p[:i]
    return p
short_name = dict(zip(pretty_in, map(short, pretty)))

# The H200 (sm_90) per-SM limits.
REGS, THREADS, BLOCKS, SMEM, RESERVED = 65536, 2048, 32, 228 * 1024, 1024
def blocks_per_sm(reg, shared, threads):
    warps = -(-threads // 32)
    reg_per_warp = -(-max(reg, 1) * 32 // 256) * 256
    by_regs = (REGS // reg_per_warp) // warps
    by_threads = THREADS // (warps * 32)
    smem = shared if shared >= RESERVED else shared + RESERVED
    by_smem = SMEM // smem
    limits = {"regs": by_regs, "threads": by_threads, "smem": by_smem, "blocks": BLOCKS}
    n = min(limits.values())
    return n, "/".join(k for k, v in limits.items() if v == n)

def is_vector_path(mangled, base):
    if base == "blend_staged_kernel":  # Layout kAligned or kShifted
        return re.search(r"LayoutE[12]E", mangled) is not None
    if base == "cutmix_chunks_kernel":  # CutPath kCutAligned or kCutFlat
        return re.search(r"CutPathE[12]E", mangled) is not None
    if base == "blend_rows_kernel":
        return "Lb1E" in mangled  # template argument Vec = true
    return base in ("loss_kernel", "u8_tiles_kernel")

rows, failures = [], []
for k in pretty_in:
    r = res[k]
    base = re.search(r"(\w+_kernel)", short_name[k]).group(1)
    threads = maxthreads.get(k) or LAUNCHED_WITH.get(base)
    f = sass_facts(sass.get(k, []))
    bps, lim = blocks_per_sm(r["reg"], r["shared"], threads or 1024)
    vec = is_vector_path(k, base)
    problems = []
    if r["stack"] or r["local"] or f["ldl"]:
        problems.append("local memory (STACK %d, LOCAL %d, %d LDL/STL)" % (r["stack"], r["local"], f["ldl"]))
    if vec and not f["ldg128_loop"]:
        problems.append("no 128-bit LDG in a loop" + (" (one outside)" if f["ldg128"] else ""))
    if vec and not f["stg128_loop"]:
        problems.append("no 128-bit STG in a loop" + (" (one outside)" if f["stg128"] else ""))
    v128 = ("LDG+STG" if f["ldg128_loop"] and f["stg128_loop"] else
            "LDG" if f["ldg128_loop"] else "STG" if f["stg128_loop"] else "-")
    rows.append((short_name[k], str(r["reg"]), str(r["stack"]), str(r["local"]), str(f["ldl"]),
                 str(r["shared"]), str(threads) if threads else "? (1024 assumed)",
                 "%d (%s)" % (bps, lim), v128 + (" (checked)" if vec else ""),
                 "FAIL: " + "; ".join(problems) if problems else "ok"))
    if problems:
        failures.append("%s: %s" % (short_name[k], "; ".join(problems)))

rows.sort(key=lambda r: r[0])
head = ("kernel", "regs", "stack", "local", "LDL/STL", "static smem", "threads/block",
        "blocks/SM (limit)", "128-bit in loops", "check")
cells = [head] + rows
width = [max(len(r[i]) for r in cells) for i in range(len(head))]
right = {1, 2, 3, 4, 5, 6}
def fmt(r):
    return "| " + " | ".join(r[i].rjust(width[i]) if i in right else r[i].ljust(width[i])
                             for i in range(len(r))) + " |"
print(fmt(head))
print("|" + "|".join("-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(width)) + "|")
for r in rows:
    print(fmt(r))
print("%d kernels; blocks/SM on an H200 from registers, threads and static shared memory "
      "(dynamic shared memory not counted)" % len(rows))
if failures:
    print("FAILED: %d kernel(s):" % len(failures))
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("ok: no local memory; every vector-path kernel has 128-bit loads and stores in its loops")
PY
