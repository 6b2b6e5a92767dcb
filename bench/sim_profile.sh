#!/usr/bin/env bash
# The instruction budget of every CUDA kernel, measured without a GPU: runs
# bench/sim_profile.cpp (every op of the C API once per dtype, on device
# buffers) on GPGPU-Sim, the functional simulator in ../shared/gpgpu-sim, and
# prints thread-instructions per element for each call and kernel next to its
# target (docs/performance.md says what the figure means and why these
# targets).
#
#   bash bench/sim_profile.sh [--check] [--log FILE] [-- PROGRAM OPTIONS]
#
#   --check   exit 1 when a target is missed (without it the report exits 0
#             whatever the figures are)
#   --log F   only parse F, the simulator output of an earlier run (the run
#             writes build/prof/sim_profile.log)
#   PROGRAM OPTIONS  passed to fastmix-sim-profile: --only OP (the ops whose
#             name starts with OP), --images N C H W,
#             --logits N C, --samples N (defaults 64x3x128x128, 8x32000, 65536:
#             the smallest sizes where the figures have converged)
#
# Builds the simulator configuration (-DFASTMIX_SIMULATOR=ON: PTX for sm_80,
# bfloat16 converted by the cvt.rn.bf16 instructions that the project's
# simulator patch adds) into build/prof, target
# fastmix-sim-profile only; the simulator's ptxas answers are cached in
# build/prof/ptxas-cache (tests/sim/env.sh).  A run simulates about 1.3
# billion thread-instructions: 4 to 8 minutes on one core.
# Exit status: 0 (report printed), 1 (--check and a target missed), 2 (no
# report: build or simulator failure, or no simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0 log="" args=()
while (($#)); do
  case $1 in
    --check) check=1 ;;
    --log) log=$2; shift ;;
    --) shift; args=("$@"); break ;;
    *) echo "sim_profile.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
build=${FASTMIX_PROF_BUILD:-build/prof}  # FASTMIX_PROF_BUILD: another build folder

if [[ -z $log ]]; then
  source tests/sim/env.sh
  if [[ ! -x $FASTMIX_SIM_DIR/run.sh ]]; then
    echo "sim_profile.sh: no simulator at $FASTMIX_SIM_DIR (set FASTMIX_SIM_DIR): no report" >&2
    exit 2
  fi
  echo "== building fastmix-sim-profile for GPGPU-Sim into $build" >&2
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_SIMULATOR=ON >/dev/null
  cmake --build "$build" -j "${FASTMIX_JOBS:-2}" --target fastmix-sim-profile >/dev/null
  fastmix_sim_env "$build"
  log=$build/sim_profile.log
  echo "== running it on the simulator (output: $log)" >&2
  start=$SECONDS
  rm -rf "$build/sim-work"
  if ! FASTMIX_SIM_WORKDIR=$PWD/$build/sim-work fastmix_sim_run "$PWD/$build/fastmix-sim-profile" \
    "${args[@]}" >"$log" 2>&1; then
    grep -v '^GPGPU-Sim' "$log" | tail -20 >&2
    echo "sim_profile.sh: the program failed on the simulator (log: $log): no report" >&2
    exit 2
  fi
  echo "   simulated in $((SECONDS - start)) s" >&2
  rm -rf "$build/sim-work"
fi

CHECK=$check python3 - "$log" <<'PY'
import os, re, subprocess, sys

# Targets in thread-instructions per element (per logit for the loss), by op
# and storage width: (float32, 16-bit).  The loss targets apply to the whole
# call (for MEAN with a workspace: its three kernels together).
TARGETS = {
    "blend": (8, 14), "blend-inplace": (8, 14), "blend-odd-stride": (8, 14),
    "mixup-odd-stride": (8, 14), "blend-inplace-odd-stride": (8, 14),
    "mixup-inplace-odd-stride": (8, 14),
    "mixup": (8, 14), "mixup-inplace": (8, 14),
    "cutmix": (8, 14), "cutmix-inplace": (8, 14),
    "loss-none": (20, 24), "loss-mean-ws": (20, 24), "loss-plain": (20, 24),
}
LABELS = {
    "blend": "blend, out of place", "blend-inplace": "blend, in place",
    "blend-odd-stride": "blend, out of place, stride not a multiple of 16 bytes",
    "blend-odd-stride-scalar": "the same, x and out at different offsets (scalar kernel)",
    "mixup-odd-stride": "mixup (draw + blend), out of place, stride not a multiple of 16 bytes",
    "blend-inplace-odd-stride": "blend, in place, stride not a multiple of 16 bytes",
    "mixup-inplace-odd-stride": "mixup (draw + blend), in place, stride not a multiple of 16 bytes",
    "mixup": "mixup (draw + blend), out of place", "mixup-inplace": "mixup (draw + blend), in place",
    "cutmix": "cutmix + mixup (draw + apply), out of place",
    "cutmix-inplace": "cutmix + mixup (draw + apply), in place",
    "input-u8": "uint8 NHWC in, cutmix + mixup, normalized NCHW out",
    "sample": "sample", "loss-none": "loss + gradient, NONE",
    "loss-mean-ws": "loss + gradient, MEAN, workspace", "soft-targets": "soft targets",
    "loss-plain": "loss + gradient, labels, no smoothing, NONE",
    "loss-weighted": "loss + gradient, class weights, MEAN, workspace",
    "loss-dense": "loss + gradient, probability targets, MEAN, workspace",
    "bce": "binary cross-entropy + gradient, mixed labels, MEAN, workspace",
}

calls = []  # [op, dtype, elements, [(kernel, instructions)]]
shape = ""
ctx = None
kernel = None
last = 0
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if line.startswith("@@fastmix-profile "):
            w = line.split()
            if w[1] == "shape":
                shape = " ".join(w[2:])
            elif w[1] in ("end", "done"):
                ctx = None
            elif w[1] == "setup":
                ctx = None
            else:
                ctx = [w[1], w[2], int(w[3]), []]
                calls.append(ctx)
            continue
        m = re.match(r"GPGPU-Sim: Performing Functional Simulation, executing kernel (\S+)\.\.\.", line)
        if m:
            kernel = m.group(1)
            continue
        m = re.match(r"GPGPU-Sim: Done functional simulation \((\d+) instructions simulated\)", line)
        if m:
            total = int(m.group(1))
            delta = (total - last) % (1 << 32)  # the simulator's counter is 32-bit
            last = total
            if ctx is not None:
                ctx[3].append((kernel, delta))

if not calls or any(not c[3] for c in calls):
    print("sim_profile.sh: the log has no complete run (a call without kernels)", file=sys.stderr)
    sys.exit(2)

names = sorted({k for c in calls for k, _ in c[3]})
pretty = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                        check=True).stdout.splitlines()

def short(p):
    p = p.replace("fm::(anonymous namespace)::", "").replace("(anonymous namespace)::", "")
    p = p.replace("fm::", "")
    p = re.sub(r"^void ", "", p)
    depth = 0
    for i, ch in enumerate(p):  # drop the parameter list after the template arguments
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return p[:i]
    return p

short_name = {n: short(p) for n, p in zip(names, pretty)}

rows = []
missed = []
for op, dtype, elems, kernels in calls:
    target = TARGETS.get(op)
    t = None if target is None else target[0] if dtype == "float32" else target[1]
    label = LABELS.get(op, op)
    dt = "-" if op == "sample" else dtype
    def verdict(per):
        if t is None:
            return "-", "-"
        return "%d" % t, "met" if per <= t else "MISSED"
    if len(kernels) == 1:
        k, n = kernels[0]
        per = n / elems
        tt, v = verdict(per)
        rows.append((label, dt, short_name[k], n, elems, per, tt, v))
    else:
        for k, n in kernels:
            rows.append((label, dt, short_name[k], n, elems, n / elems, "", ""))
        n = sum(n for _, n in kernels)
        per = n / elems
        tt, v = verdict(per)
        rows.append((label, dt, "(the call: %d kernels)" % len(kernels), n, elems, per, tt, v))
    if t is not None and per > t:
        missed.append("%s %s: %.1f > %d" % (label, dtype, per, t))

head = ("op", "dtype", "kernel", "thread-instructions", "elements", "per element", "target",
        "verdict")
cells = [head] + [(a, b, c, "{:,}".format(d), "{:,}".format(e), "%.1f" % f, g, h)
                  for a, b, c, d, e, f, g, h in rows]
width = [max(len(r[i]) for r in cells) for i in range(len(head))]
right = {3, 4, 5, 6}
def fmt(r):
    return "| " + " | ".join(r[i].rjust(width[i]) if i in right else r[i].ljust(width[i])
                             for i in range(len(r))) + " |"
print("fastmix instruction budget on GPGPU-Sim (PTX sm_80; %s)" % shape)
print("elements: image elements (blend, mixup, cutmix, input), logits (loss), target elements (soft targets), "
      "samples (sample)")
print(fmt(cells[0]))
print("|" + "|".join("-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(width)) + "|")
for r in cells[1:]:
    print(fmt(r))
if missed:
    print("targets missed: %d (%s)" % (len(missed), "; ".join(missed)))
else:
    print("every target met")
sys.exit(1 if missed and os.environ.get("CHECK") == "1" else 0)
PY
