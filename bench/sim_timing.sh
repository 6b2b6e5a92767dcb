#!/usr/bin/env bash
# GPU speed without a GPU: every CUDA op of the C ABI run once on GPGPU-Sim's
# cycle model of an Ampere GPU (SMs, L1, L2, interconnect and DRAM simulated
# cycle by cycle on the PTX the simulated suite runs), each beside a copy
# kernel that moves the same number of bytes, in a table of cycles, DRAM
# bytes against the op's floor, the fraction of the copy's rate (the model's
# fastest copy, 2 blocks of 256 per SM, and beside it the same copy with a
# full SM of threads), the fraction of the model's DRAM peak, the issue-rate
# bound and the target.
#
#   bash bench/sim_timing.sh [--only CASE[,CASE...]] [--jobs N] [--keep] [--report] [--check]
#
#   --only    these cases, by name or shell pattern ('loss-*'; the names:
#             build/timing/fastmix-sim-timing --list; default: all)
#   --jobs N  simulator processes at a time (default FASTMIX_JOBS, else the
#             number of cores); each case and each copy size is its own
#   --keep    do not run again the cases whose complete log is kept (their
#             missing copies still run)
#   --report  only print the table from the logs of earlier runs
#   --check   exit 1 when a case misses its target
#
# The model: bench/sim_timing.config appended to the simulator's tested A100
# config (an A100 scaled to 8 SMs and 3 DRAM channels with 1 MB of L2 each;
# docs/performance.md says why).  Each case's log is
# build/timing/logs/CASE.log; a copy of B bytes is measured once per model
# and kept (build/timing-copies/copy-B.log, and copy-B-8.log for the full-SM
# copy) until the model or the copy kernel changes.  The draw cases
# (sample-*) run on the A100's full 108 SMs too (CASE-108.log).  A case takes
# 2 to 6 minutes of simulation on an idle machine (several times that under
# load); the whole table about an hour on 2 cores.  A benchmark: tests/run.sh
# does not run it.
# Exit status: 0 (table printed), 1 (--check and a target missed), 2 (no
# table: build or simulator failure, or no simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
only="" jobs=${FASTMIX_JOBS:-$(nproc)} report=0 check=0 keep=0
while (($#)); do
  case $1 in
    --only) only=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --report) report=1 ;;
    --keep) keep=1 ;;
    --check) check=1 ;;
    *) echo "sim_timing.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
build=${FASTMIX_TIMING_BUILD:-build/timing}  # FASTMIX_TIMING_BUILD: another build folder
logs=$build/logs
# The copies, kept across build folders (FASTMIX_TIMING_COPIES: another folder).
copies=${FASTMIX_TIMING_COPIES:-build/timing-copies}
prog=$PWD/$build/fastmix-sim-timing
# The draw cases also run on the A100's own SM count (see below).
full_sms=108

source tests/sim/env.sh
if ((!report)); then
  if [[ ! -x $FASTMIX_SIM_DIR/run.sh ]]; then
    echo "sim_timing.sh: no simulator at $FASTMIX_SIM_DIR (set FASTMIX_SIM_DIR): no table" >&2
    exit 2
  fi
  echo "== building fastmix-sim-timing for GPGPU-Sim into $build" >&2
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTMIX_SIMULATOR=ON -DBUILD_TESTING=OFF \
    >/dev/null
  cmake --build "$build" -j "${FASTMIX_JOBS:-2}" --target fastmix-sim-timing \
    fastmix-sim-smem-window >/dev/null
  fastmix_sim_env "$build"
  FASTMIX_SIM_ENV=$("$FASTMIX_SIM_DIR/build.sh" | tail -1)
  config=$PWD/$build/timing.gpgpusim.config
  cat "$FASTMIX_SIM_DIR/timing/SM80_A100.gpgpusim.config" bench/sim_timing.config >"$config"
  # The draw moves a few bytes per sample, and its time is the latency of
  # the samples each SM draws: the scaled model gives each SM 13.5 times the
  # A100's share of a batch.  The draw cases also run on the A100's own SM
  # count (full_sms) and 40 channels (1 MB of L2 each, 40 MB as on the A100).
  config_full=$PWD/$build/timing-$full_sms.gpgpusim.config
  printf -- '-gpgpu_n_clusters %d\n-gpgpu_n_mem 40\n' "$full_sms" | cat "$config" - >"$config_full"
  mkdir -p "$logs" "$copies"
  # A kept copy log is valid for this model and this copy kernel only (the
  # project's simulator patches add instructions that the copy does not use).
  stamp=$(cat "$config" <(sed -n -e '/kCopyBlocksPerSm = /p' -e '/copy_kernel(const/,/^}/p' \
    -e '/^void run_copy/,/^}/p' bench/sim_timing.cu) | sha256sum | cut -c1-16)
  [[ -f $copies/stamp && $(cat "$copies/stamp") == "$stamp" ]] || rm -f "$copies"/copy-*.log
  echo "$stamp" >"$copies/stamp"
  # One program (PROGRAM ARGS...) in the simulator's timing mode, in a fresh
  # working folder holding the model's config (MODEL_CONFIG, default the
  # scaled model; the simulator reads it from there); its exit status.
  model_run() {
    local dir rc
    dir=$(mktemp -d)
    cp "${MODEL_CONFIG:-$config}" "$dir/gpgpusim.config"
    (
      source "$FASTMIX_SIM_ENV"
      unset PTX_SIM_MODE_FUNC  # the simulator's env.sh asks for functional mode
      export SIMSHIM_SMEM_OPTIN=166912  # the A100's opt-in shared memory per block
      cd "$dir"
      "$PWD_ROOT/tests/sim/case.sh" "$@"
    )
    rc=$?
    rm -rf "$dir"
    return $rc
  }
  export -f model_run
  export config config_full FASTMIX_SIM_ENV PWD_ROOT=$PWD
  # The model gives a block up to the A100's 163 KiB of shared memory: the
  # simulator must map more than Volta's 96 KiB (tests/sim/smem_window.cu).
  window=$(model_run "$PWD/$build/fastmix-sim-smem-window" 2>&1) || true
  if ! grep -q '^smem_window: passed$' <<<"$window"; then
    echo "sim_timing.sh: the simulator stops on shared memory past 96 KiB" \
      "(tests/sim/smem_window.cu; tests/sim/patches/shared-window.patch): no table" >&2
    exit 2
  fi
fi

# The cases (name dtype shape read write), from the program itself: it plans
# on the host, the CPU backend giving the draws that decide the floors.
"$prog" --list >"$build/cases.txt"
selected=()
while read -r name _; do
  if [[ -z $only ]]; then selected+=("$name"); continue; fi
  IFS=, read -r -a prefixes <<<"$only"
  # shellcheck disable=SC2053
  for p in "${prefixes[@]}"; do [[ $name == $p ]] && { selected+=("$name"); break; }; done
done <"$build/cases.txt"
((${#selected[@]})) || { echo "sim_timing.sh: no case matches --only $only" >&2; exit 2; }

# The copy a case is measured against: half its floor each way, rounded to
# half a MiB so that cases of nearly the same size share one copy (the rate
# is taken per byte, and a copy's rate changes by far less than 1% between
# sizes 2% apart at these sizes).
copy_bytes() { echo $(((($1 + $2) / 2 + 262144) / 524288 * 524288)); }

if ((!report)); then
  # The jobs: each selected case, and each copy size they need that is not kept.
  work=()
  for name in "${selected[@]}"; do
    if ((!keep)) || ! grep -qs '^@@fastmix-timing end' "$logs/$name.log"; then work+=("$name"); fi
    read -r _ _ _ r w < <(grep "^$name " "$build/cases.txt")
    if [[ $name == sample-* ]]; then
      if ((!keep)) || ! grep -qs '^@@fastmix-timing end' "$logs/$name-$full_sms.log"; then
        work+=("$name $full_sms")
      fi
      continue
    fi
    bytes=$(copy_bytes "$r" "$w")
    # The yardstick, and the same copy with a full SM of threads.
    for job in "copy $bytes" "copy $bytes 8"; do
      grep -qs '^@@fastmix-timing end' "$copies/${job// /-}.log" || work+=("$job")
    done
  done
  mapfile -t work < <(((${#work[@]})) && printf '%s\n' "${work[@]}" | awk '!seen[$0]++')
  echo "== simulating ${#work[@]} runs, $jobs at a time (logs in $logs)" >&2
  start=$SECONDS
  # One run: a case or a copy on the model ("CASE $full_sms": a draw case on
  # the A100's SMs), its log kept when it completed.
  run_one() {
    local job=$1 tag=${1// /-} t0=$SECONDS logs=$logs model=$config
    [[ $job == copy* ]] && logs=$copies
    [[ $job == *" $full_sms" ]] && model=$config_full
    # shellcheck disable=SC2086
    MODEL_CONFIG=$model model_run "$prog" ${job% "$full_sms"} >"$logs/$tag.log.part" 2>&1
    local rc=$?
    if [[ $rc -eq 0 ]] && grep -q '^@@fastmix-timing end' "$logs/$tag.log.part"; then
      mv "$logs/$tag.log.part" "$logs/$tag.log"
      printf '   done    %5ds  %s\n' $((SECONDS - t0)) "$job" >&2
    else
      printf '   FAILED  %5ds  %s (exit %d; log %s)\n' $((SECONDS - t0)) "$job" "$rc" \
        "$logs/$tag.log.part" >&2
      grep -v '^GPGPU-Sim' "$logs/$tag.log.part" | tail -5 | sed 's/^/      | /' >&2
    fi
  }
  export -f run_one
  export prog logs copies full_sms
  if ((${#work[@]})); then
    printf '%s\n' "${work[@]}" | xargs -d '\n' -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
  fi
  echo "   simulated in $((SECONDS - start)) s" >&2
fi

copy_of=()
for name in "${selected[@]}"; do
  read -r _ _ _ r w < <(grep "^$name " "$build/cases.txt")
  copy_of+=("$name=$(copy_bytes "$r" "$w")")
done
CHECK=$check FULL_SMS=$full_sms python3 - "$build" "$copies" "${copy_of[@]}" <<'PY'
import os, re, sys

build, copies = sys.argv[1], sys.argv[2]
copy_of = dict(a.split("=") for a in sys.argv[3:])
names = list(copy_of)
logs = os.path.join(build, "logs")
cases = {}
for line in open(os.path.join(build, "cases.txt")):
    name, dtype, shape, r, w = line.split()
    cases[name] = (dtype, shape, int(r), int(w))

# The model's figures, from its config: DRAM peak in bytes per core cycle,
# SMs, warp schedulers per SM, L2 bytes.
opts = {}
cfg = os.path.join(build, "timing.gpgpusim.config")
for line in open(cfg):
    line = line.split("#")[0].split()
    if len(line) >= 2 and line[0].startswith("-"):
        opts[line[0]] = line[1]
core_mhz, _, _, dram_mhz = (float(v) for v in opts["-gpgpu_clock_domains"].split(":"))
n_mem = int(opts["-gpgpu_n_mem"])
cores = int(opts["-gpgpu_n_cores_per_cluster"])
sms = int(opts["-gpgpu_n_clusters"]) * cores
scheds = int(opts["-gpgpu_num_sched_per_core"])
peak = (n_mem * int(opts["-gpgpu_dram_buswidth"]) * int(opts["-dram_data_command_freq_ratio"])
        * dram_mhz / core_mhz)
sets, line_b, ways = (int(v) for v in opts["-gpgpu_cache:dl2"].split(",")[0][2:].split(":"))
l2 = sets * line_b * ways * n_mem * int(opts["-gpgpu_n_sub_partition_per_mchannel"])
atom = int(opts["-gpgpu_dram_buswidth"]) * int(opts["-gpgpu_dram_burst_length"])

COUNTERS = {"total dram reads": "dram_r", "total dram writes": "dram_w",
            "L2_total_cache_accesses": "l2_acc", "L2_total_cache_misses": "l2_miss",
            "gpgpu_n_shmem_bkconflict": "bank"}

def parse(path):
    """The op's kernels and the counters between begin and end (the
    simulator's counters are running totals: the last value before begin is
    subtracted); None for a log without both markers."""
    kernels, cur, base, last, inside, limit, stall = [], None, {}, {}, False, "", {}
    for line in open(path, errors="replace"):
        if line.startswith("@@fastmix-timing begin"):
            inside, base = True, dict(last)
            continue
        if line.startswith("@@fastmix-timing end"):
            break
        m = re.match(r"GPGPU-Sim uArch: CTA/core = (\d+), limited by: (.*)", line)
        if m:
            limit = "%s (%s)" % (m.group(1), m.group(2).strip())
            continue
        m = re.match(r"kernel_name = (\S+)", line)
        if m and inside:
            cur = {"name": m.group(1), "limit": limit}
            kernels.append(cur)
            continue
        m = re.match(r"(gpu_sim_cycle|gpu_sim_insn) = (\d+)", line)
        if m and cur is not None:
            cur[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"([A-Za-z_ 0-9]+?) ?= (\d+)\s*$", line)
        if m and m.group(1).strip() in COUNTERS:
            last[COUNTERS[m.group(1).strip()]] = int(m.group(2))
            continue
        if line.startswith("Stall:"):
            last["distro"] = dict((k, int(v)) for k, v in re.findall(r"(\w+):(\d+)", line))
    else:
        return None
    delta = {k: v - base.get(k, 0) for k, v in last.items() if k != "distro"}
    # Scheduler cycles by what happened: a warp issued, all warps stalled
    # (waiting on memory or a pipeline), no warp ready (W0_Idle), or every
    # warp waiting on a register (W0_Scoreboard).
    now, before = last.get("distro", {}), base.get("distro", {})
    distro = {k: v - before.get(k, 0) for k, v in now.items()}
    if distro:
        stall = {"stalled": distro.get("Stall", 0), "idle": distro.get("W0_Idle", 0),
                 "scoreboard": distro.get("W0_Scoreboard", 0),
                 "issued": sum(v for k, v in distro.items() if re.match(r"W([1-9]|[1-3]\d)$", k))}
    return kernels, delta, stall

def short(k):
    import subprocess
    p = subprocess.run(["c++filt"], input=k, capture_output=True, text=True).stdout.strip()
    p = re.sub(r"fm::|\(anonymous namespace\)::|^void ", "", p)
    depth = 0
    for i, ch in enumerate(p):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            return p[:i]
    return p

TARGETS = {"blend": 0.90, "blend-odd": 0.90, "mixup": 0.90, "cutmix": 0.90, "cutmix-odd": 0.90,
           "blend-bf16": 0.90, "blend-inplace": 0.85, "blend-inplace-odd": 0.85,
           "mixup-inplace": 0.85, "cutmix-inplace": 0.85, "cutmix-inplace-odd": 0.85,
           "u8-f32": 0.85, "u8-bf16": 0.85}
for n in cases:
    if n.startswith(("loss-", "bce-", "soft-targets-")):
        TARGETS[n] = 0.85
SAMPLE_CYCLES = 8000
FULL_SMS = int(os.environ["FULL_SMS"])

def kernel_detail(label, kernels):
    """A line per kernel of a run: cycles, thread-instructions, occupancy."""
    for k in kernels:
        detail.append("%s: %s: %s cycles, %s thread-instructions, blocks per SM %s"
                      % (label, short(k["name"]), "{:,}".format(k.get("gpu_sim_cycle", 0)),
                         "{:,}".format(k.get("gpu_sim_insn", 0)), k["limit"]))

rows, missed, detail = [], [], []
for name in names:
    dtype, shape, r, w = cases[name]
    got = parse(os.path.join(logs, name + ".log")) if os.path.exists(os.path.join(logs, name + ".log")) else None
    if got is None:
        rows.append((name, dtype, shape, "not run"))
        continue
    kernels, d, stall = got
    cycles = sum(k.get("gpu_sim_cycle", 0) for k in kernels)
    insn = sum(k.get("gpu_sim_insn", 0) for k in kernels)
    issue = insn / 32.0 / (scheds * sms)  # cycles at one warp-instruction per scheduler a cycle
    dr, dw = d.get("dram_r", 0) * atom, d.get("dram_w", 0) * atom
    if name.startswith("sample-"):
        # The draw on the scaled model, then on the A100's own SMs.
        target = "<= %d cycles" % SAMPLE_CYCLES
        full = os.path.join(logs, "%s-%d.log" % (name, FULL_SMS))
        full_got = parse(full) if os.path.exists(full) else None
        for label, run, n_sms in ((name, got, sms),
                                  ("%s, %d SMs" % (name, FULL_SMS), full_got, FULL_SMS * cores)):
            if run is None:
                rows.append((label, dtype, shape, "not run"))
                continue
            c = sum(k.get("gpu_sim_cycle", 0) for k in run[0])
            i = sum(k.get("gpu_sim_insn", 0) for k in run[0])
            ok = c <= SAMPLE_CYCLES
            rows.append((label, dtype, shape, "{:,}".format(c), "-", "-", "-", "-", "-", "-",
                         "%.0f%%" % (100 * i / 32.0 / (scheds * n_sms) / c), target,
                         "met" if ok else "MISSED"))
            if not ok:
                missed.append(label)
            if run is full_got:
                kernel_detail(label, run[0])
    else:
        bytes_ = int(copy_of[name])

        def copy_cycles(tag):
            cp = os.path.join(copies, "copy-%d%s.log" % (bytes_, tag))
            cgot = parse(cp) if os.path.exists(cp) else None
            return sum(k.get("gpu_sim_cycle", 0) for k in cgot[0]) if cgot else 0

        ccycles, full_cycles = copy_cycles(""), copy_cycles("-8")
        # Bytes per cycle: the op's floor over its cycles, against the copy's.
        frac = (r + w) / cycles / (2 * bytes_ / ccycles) if ccycles else None
        frac_full = (r + w) / cycles / (2 * bytes_ / full_cycles) if full_cycles else None
        t = TARGETS.get(name)
        ok = frac is None or t is None or frac >= t
        rows.append((name, dtype, shape, "{:,}".format(cycles),
                     "%.1f / %.1f" % (dr / 1e6, dw / 1e6), "%.1f / %.1f" % (r / 1e6, w / 1e6),
                     "%.1f, %s" % (bytes_ / 1e6, "{:,}".format(ccycles)) if ccycles else "no copy",
                     "%.0f%%" % (100 * frac) if frac else "-",
                     "{:,}, {:.0f}%".format(full_cycles, 100 * frac_full) if frac_full else "-",
                     "%.0f%%" % (100 * (r + w) / cycles / peak),
                     "%.0f%%" % (100 * issue / cycles),
                     ("%.0f%%" % (100 * t)) if t else "-",
                     ) + (("no copy" if frac is None else "met" if ok else "MISSED") if t else "-",))
        if t and not ok:
            missed.append(name)
    kernel_detail(name, kernels)
    if stall:
        tot = sum(stall.values()) or 1
        top = sorted(((v, k) for k, v in stall.items()), reverse=True)
        detail.append("%s: scheduler cycles: %s; L2 %s accesses, %.0f%% miss; "
                      "shared-memory bank conflicts %s"
                      % (name, ", ".join("%s %.0f%%" % (k, 100 * v / tot) for v, k in top),
                         "{:,}".format(d.get("l2_acc", 0)),
                         100 * d.get("l2_miss", 0) / max(d.get("l2_acc", 1), 1),
                         "{:,}".format(d.get("bank", 0))))

head = ("case", "dtype", "shape", "cycles", "DRAM MB read / written", "floor MB read / written",
        "copy MB, cycles", "of copy rate", "full-SM copy: cycles, of its rate", "of DRAM peak",
        "issue bound", "target", "verdict")
cells = [head] + [tuple(r) + ("",) * (len(head) - len(r)) for r in rows]
width = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
fmt = lambda c: "| " + " | ".join(str(c[i]).ljust(width[i]) for i in range(len(head))) + " |"
print("fastmix on GPGPU-Sim's cycle model: A100 scaled to %d SMs, %d DRAM channels, %.0f MB of L2; "
      "DRAM peak %.1f B/cycle" % (sms, n_mem, l2 / 2**20, peak))
print(fmt(cells[0]))
print("|" + "|".join("-" * (w + 2) for w in width) + "|")
for c in cells[1:]:
    print(fmt(c))
print()
print("DRAM bytes: what the model moved (%d-byte accesses; dirty lines still in L2 at the end "
      "are not counted as writes); floor: the op's least traffic. of copy rate: a copy of the same "
      "bytes' cycles (2 blocks of 256 per SM, the model's fastest copy) over the op's; the verdict "
      "is against it. full-SM copy: the same copy with 8 blocks of 256 per SM. issue bound: the "
      "op's warp-instructions at one per scheduler a cycle, over its cycles." % atom)
for line in detail:
    print("  " + line)
print("targets missed: %s" % (", ".join(missed) if missed else "none"))
sys.exit(1 if missed and os.environ.get("CHECK") == "1" else 0)
PY
