#!/usr/bin/env bash
# The GPU measurement of bench/gpu_efficiency.py on a machine with no package registry, in one
# command: install the kit's wheels (bench/device/prepare.sh made .device-kit/ beforehand), unpack
# its bubblewrap, check that a training child runs in that sandbox (on CUDA where a GPU is
# visible), then run `python -m bench gpu_efficiency` and write what it printed and a JSON summary
# under $OUT. Each step has its own time limit and a failed step does not stop the next ones.
#
#   bash bench/device/check.sh        (README.md beside this file: the call, what comes back)
# Sizes: MLGATE_BENCH_ROWS (100000), MLGATE_BENCH_EPOCHS (20), MLGATE_BENCH_REPEATS (3),
# MLGATE_BENCH_THREADS (16); whole script: MLGATE_CHECK_BUDGET_S (450 s).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
KIT=$REPO/.device-kit
export OUT=${OUT:-/tmp/mlgate-device-out} KIT REPO PYTHONUNBUFFERED=1 PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
umask 022  # the sandboxed child runs as nobody: what is installed must be world-readable

say() { echo "[$1] ${*:2}"; }

host() {  # what the machine is: the facts a surprising figure is read against
    say host "$(uname -srm); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); $(nproc) CPUs"
    free -g | sed -n 2p
    python3 -c 'import sys; print("python3", sys.executable, sys.version.split()[0], "prefix", sys.prefix, "base", sys.base_prefix)'
    say host "bwrap as the launcher finds it (before the kit's): $(python3 -c 'import shutil; print(shutil.which("bwrap"))')"
    for tool in prlimit setpriv dpkg-deb timeout nvidia-smi ldd; do
        say host "$tool: $(command -v "$tool" || echo MISSING)"
    done
    say host "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}; libcuda in ld.so.cache: $(ldconfig -p 2>/dev/null | grep -c 'libcuda\.so')"
    say host "GPU device files: $(ls /dev/nvidia* 2>/dev/null | tr '\n' ' ')"
}

gpu() {
    local rc=0
    nvidia-smi -L || rc=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "visible", torch.cuda.is_available())'
    return $rc
}

wheels() {  # into the interpreter itself: the child (bwrap, clean environment) sees only its site-packages
    local tag dir
    tag=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    dir=$KIT/wheels/$tag
    [ -d "$dir" ] || { say wheels "no wheels for $tag in the kit"; return 1; }
    if ! python3 -m pip --version; then
        say wheels "no pip: unzipping $(ls "$dir" | tr '\n' ' ') into the interpreter's site-packages"
        python3 -c 'import sys, sysconfig, zipfile, pathlib
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")): zipfile.ZipFile(wheel).extractall(sysconfig.get_paths()["purelib"])' "$dir"
        return
    fi
    say wheels "pip install --no-index --find-links $dir $(tr '\n' ' ' <"$KIT/requirements.txt")"
    if ! python3 -m pip install -q --no-index --find-links "$dir" -r "$KIT/requirements.txt"; then
        say wheels "the interpreter's site-packages refused them: --target $KIT/site on PYTHONPATH" \
            "(the bench process sees them; the sandboxed child and the bare loops do not)"
        python3 -m pip install -q --no-index --find-links "$dir" --target "$KIT/site" -r "$KIT/requirements.txt" || return 1
        echo "export PYTHONPATH=$KIT/site" >>"$KIT/env.sh"
    fi
}

imports() {
    python3 -c 'import pydantic, yaml, bench.gpu_efficiency; print("pydantic", pydantic.VERSION, "yaml", yaml.__version__, "bench imports")'
}

bwrap_kit() {  # the .deb unpacked; its libraries too when the machine lacks them; $KIT/bin/bwrap first on PATH
    local deb
    rm -rf "${KIT:?}/bwrap" "${KIT:?}/bin" && mkdir -p "$KIT/bin"
    deb=$(ls "$KIT"/debs/bubblewrap_*.deb) && dpkg-deb -x "$deb" "$KIT/bwrap" || return 1
    say bwrap "unpacked $(basename "$deb") into $KIT/bwrap"
    ln -s "$KIT/bwrap/usr/bin/bwrap" "$KIT/bin/bwrap"
    if ! "$KIT/bin/bwrap" --version; then  # a library it links is missing here: the kit's, by LD_LIBRARY_PATH
        for deb in "$KIT"/debs/lib*.deb; do dpkg-deb -x "$deb" "$KIT/bwrap"; done
        rm "$KIT/bin/bwrap"
        printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$KIT/bwrap/lib/x86_64-linux-gnu:$KIT/bwrap/usr/lib/x86_64-linux-gnu" \
            "$KIT/bwrap/usr/bin/bwrap" >"$KIT/bin/bwrap" && chmod 755 "$KIT/bin/bwrap"
        say bwrap "unpacked the kit's libcap2, libselinux1 and libpcre2: $KIT/bin/bwrap sets LD_LIBRARY_PATH"
    fi
    echo "export PATH=$KIT/bin:\$PATH" >>"$KIT/env.sh"
    "$KIT/bin/bwrap" --version || return 1
    "$KIT/bin/bwrap" --ro-bind / / --dev /dev --proc /proc --unshare-pid --unshare-net true && say bwrap "an empty sandbox ran"
}

sandbox() {  # one small child through the real launcher: on cuda where a GPU is visible, so none is a failure
    local device=cpu
    ls /dev/nvidia0 >/dev/null 2>&1 && device=cuda
    MLGATE_BENCH_EPOCHS=2 python3 - "$device" <<'PY'
import sys, tempfile
from pathlib import Path
import anyio
from bench.gpu_efficiency import write_inputs
from server.sandbox import SandboxLauncher
from server.settings import SandboxLimits
launcher = SandboxLauncher(SandboxLimits(threads=2, wall_clock_seconds=120))
layout = launcher.layout
print("[sandbox] mode", launcher.mode, "bwrap", layout.bwrap, "gpu devices", layout.gpu_devices, "python", layout.python, "venv", layout.venv)
run_dir = write_inputs(Path(tempfile.mkdtemp()) / "run", 2000, sys.argv[1])
outcome = anyio.run(launcher.run, run_dir)
print("[sandbox] child ok" if outcome.ok else "[sandbox] child FAILED", "device", getattr(outcome.result, "device", None), outcome.result if not outcome.ok else "")
if not outcome.ok:
    print((run_dir / "logs" / "child.stderr").read_text()[-3000:])
sys.exit(0 if outcome.ok else 1)
PY
}

measure() {
    export MLGATE_BENCH_ROWS=${MLGATE_BENCH_ROWS:-100000} MLGATE_BENCH_EPOCHS=${MLGATE_BENCH_EPOCHS:-20} \
        MLGATE_BENCH_REPEATS=${MLGATE_BENCH_REPEATS:-3} MLGATE_BENCH_THREADS=${MLGATE_BENCH_THREADS:-16} \
        MLGATE_BENCH_JSON=$OUT/bench.json MLGATE_BENCH_DIR=$KIT/runs
    say bench "rows $MLGATE_BENCH_ROWS, epochs $MLGATE_BENCH_EPOCHS, repeats $MLGATE_BENCH_REPEATS, threads $MLGATE_BENCH_THREADS"
    python3 -m bench gpu_efficiency 2>&1 | tee "$OUT/bench.log"
}

run_logs() {  # the runs' logs and results (not their models or data), for a child that failed
    [ -d "$KIT/runs" ] || { say logs "no run directories"; return 0; }
    tar -C "$KIT/runs" -czf "$OUT/runs.tgz" --wildcards --exclude='*/inputs' --exclude='*/model' --exclude='*.parquet' . && ls -l "$OUT/runs.tgz"
}

summary() {
    python3 - "$KIT/steps.tsv" "$OUT" <<'PY'
import json, sys
from pathlib import Path
steps_file, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = [dict(zip(("step", "rc", "seconds", "limit_s"), line.split("\t"))) for line in steps_file.read_text().splitlines()]
steps = [{**s, "rc": int(s["rc"]), "seconds": int(s["seconds"]), "limit_s": int(s["limit_s"]), "timed_out": s["rc"] in ("124", "137")} for s in steps]
bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else None
gpu = (bench or {}).get("gpu") or {}
verdict = {"child_on_cuda": gpu.get("device") == "cuda", "gpu_over_cpu": (bench or {}).get("gpu_over_cpu"),
           "gpu_not_slower": None if bench is None or "gpu_over_cpu" not in bench else bench["gpu_over_cpu"] <= 1.0, "gpu_child_over_bare": gpu.get("child", 0) / gpu["bare_fused"] if gpu else None,
           "gpu_bit_identical_runs": gpu.get("reproducible"), "gpu_bare_matches_child": gpu.get("identical"),
           "launcher_mode": (bench or {}).get("launcher_mode"), "failed_steps": [s["step"] for s in steps if s["rc"]]}
(out / "summary.json").write_text(json.dumps({"verdict": verdict, "steps": steps, "bench": bench}, indent=2))
print(json.dumps(verdict, indent=2))
PY
}

if [ "${1:-}" = --step ]; then  # one step, in a process of its own (so `timeout` can end it)
    [ -f "$KIT/env.sh" ] && . "$KIT/env.sh"
    "$2"
    exit
fi

mkdir -p "$OUT" && : >"$OUT/check.log" && : >"$KIT/steps.tsv" && rm -f "$KIT/env.sh"
BUDGET_S=${MLGATE_CHECK_BUDGET_S:-450}
START=$(date +%s)
step() {  # step NAME LIMIT_S: its output into check.log (and stdout), its rc and seconds into steps.tsv
    local left=$((BUDGET_S - ($(date +%s) - START))) began rc limit=$2
    [ "$limit" -gt "$left" ] && limit=$left
    [ "$limit" -lt 5 ] && limit=5
    began=$(date +%s)
    echo "== $1 (limit ${limit}s, ${left}s of the budget left)" | tee -a "$OUT/check.log"
    timeout -k 5 "$limit" bash "$0" --step "$1" 2>&1 | tee -a "$OUT/check.log"
    rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\t%s\n' "$1" "$rc" "$(($(date +%s) - began))" "$limit" >>"$KIT/steps.tsv"
    echo "== $1: rc $rc in $(($(date +%s) - began))s" | tee -a "$OUT/check.log"
}
step host 20
step gpu 40
step wheels 90
step imports 60
step bwrap_kit 30
step sandbox 120
BENCH_LIMIT=$((BUDGET_S - ($(date +%s) - START) - 25))
step measure "$BENCH_LIMIT"
step run_logs 15
step summary 15
echo "check done in $(($(date +%s) - START))s; under $OUT: $(ls "$OUT" | tr '\n' ' ')"
