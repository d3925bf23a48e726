#!/usr/bin/env bash
# check.sh here, on a machine that looks like the GPU one as far as the kit is concerned: a copy of
# what `run` sends (tracked and unignored files, and .device-kit), an interpreter with torch, numpy,
# pandas, pyarrow, scikit-learn and anyio but no pydantic or yaml, /usr/bin/bwrap masked (a mount
# namespace), a fresh $OUT, small sizes; what the kit installed in the venv is removed after. Needs root (unshare -m) and bench/device/prepare.sh run first.
#
#   python3 -m venv /tmp/devsim && /tmp/devsim/bin/pip install torch numpy pandas pyarrow scikit-learn anyio
#   bash bench/device/simulate.sh /tmp/devsim        (then: ls /tmp/devsim-out)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${1:?the interpreter environment to simulate with}
COPY=${SIM_COPY:-/tmp/devsim-repo} OUT_DIR=${SIM_OUT:-/tmp/devsim-out}
if "$VENV/bin/python" -c 'import pydantic' 2>/dev/null || "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
    echo "$VENV already has pydantic or yaml: the kit's install would not be tested" && exit 1
fi
rm -rf "$COPY" "$OUT_DIR" && mkdir -p "$COPY" "$OUT_DIR"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$COPY" 2>/dev/null || true
cp -a .device-kit "$COPY/"
: >/tmp/devsim-nobwrap
"$VENV/bin/python" -m pip freeze --all >/tmp/devsim-before.txt
trap '"$VENV/bin/python" -m pip freeze --all | grep -vxFf /tmp/devsim-before.txt | cut -d= -f1 | xargs -r "$VENV/bin/python" -m pip uninstall -q -y' EXIT
# SIM_HIDE_LIBCAP=1: libcap.so.2 unreadable too, so the kit's bwrap needs the kit's libraries.
hide_libcap=true
[ "${SIM_HIDE_LIBCAP:-}" = 1 ] && hide_libcap="mount --bind /tmp/devsim-nobwrap $(readlink -f /lib/x86_64-linux-gnu/libcap.so.2)"
unshare -m --propagation private bash -c "mount --bind /tmp/devsim-nobwrap /usr/bin/bwrap && $hide_libcap"' && exec "$@"' _ \
    env PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" OUT="$OUT_DIR" MLGATE_BENCH_ROWS="${MLGATE_BENCH_ROWS:-5000}" \
    MLGATE_BENCH_EPOCHS="${MLGATE_BENCH_EPOCHS:-2}" MLGATE_BENCH_REPEATS="${MLGATE_BENCH_REPEATS:-2}" \
    MLGATE_BENCH_THREADS="${MLGATE_BENCH_THREADS:-2}" bash "$COPY/bench/device/check.sh"
