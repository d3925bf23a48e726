#!/usr/bin/env bash
# Fills .device-kit/ (git-ignored) with what `bench/device/check.sh` needs on the GPU machine and
# that machine lacks, since it reaches no package registry: wheels of the Python packages the
# measurement imports (pydantic and its closure, PyYAML, anyio) at the versions uv.lock pins, for CPython
# 3.10-3.13 on manylinux x86_64, and Debian bookworm's bubblewrap .deb with the libraries it links
# (unpacked there only if the machine lacks them). Run here, where PyPI and Debian's archive answer.
#
#   bash bench/device/prepare.sh            (MLGATE_KIT_PYTHONS="3.12" for fewer interpreters)
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.device-kit
PYTHONS=${MLGATE_KIT_PYTHONS:-"3.10 3.11 3.12 3.13"}
# What the bench, the launcher and the training child import that the machine lacks (pydantic) or
# may hold too old (pyyaml, anyio), with pyproject.toml's bounds: check.sh installs only what the
# machine does not already satisfy. Beyond these they import torch, numpy, pandas, pyarrow and
# scikit-learn, which the machine has (`python -X importtime -c "import bench.gpu_efficiency"`).
TOP_LEVEL=("pydantic>=2.7" "pyyaml>=6.0.1" "anyio>=4.4")
# Downloaded at uv.lock's versions; what a Python version needs beyond them (exceptiongroup on 3.10)
# comes along.
CLOSURE=(pydantic pydantic-core annotated-types typing-extensions typing-inspection pyyaml anyio idna)
DEBS=(bubblewrap libcap2 libselinux1 libpcre2-8-0)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

pinned() {  # NAME==VERSION of each package of the closure, as uv.lock pins it
    python3 - "${CLOSURE[@]}" <<'PY'
import sys, tomllib
locked = {p["name"]: p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"]}
print(" ".join(f"{name}=={locked[name]}" for name in sys.argv[1:]))
PY
}

rm -rf "$KIT" && mkdir -p "$KIT/wheels" "$KIT/debs"
read -ra requirements <<<"$(pinned)"
echo "packages: ${requirements[*]}"
for version in $PYTHONS; do
    target="$KIT/wheels/cp${version/./}"
    backport=()  # pip reads the markers of dependencies against this interpreter, not --python-version
    [ "$version" = 3.10 ] && backport=(exceptiongroup)
    # PIP_CONFIG_FILE=/dev/null: only PyPI, not this machine's local wheel folders.
    PIP_CONFIG_FILE=/dev/null env -u PIP_FIND_LINKS python3 -m pip download -q --only-binary=:all: --implementation cp \
        --python-version "$version" "${PLATFORMS[@]/#/--platform=}" -d "$target" "${requirements[@]}" "${backport[@]}"
    echo "CPython $version: $(ls "$target" | tr '\n' ' ')"
done
printf '%s\n' "${TOP_LEVEL[@]}" >"$KIT/requirements.txt"

(cd "$KIT/debs" && { apt-get download "${DEBS[@]}" || { apt-get update -qq && apt-get download "${DEBS[@]}"; }; })
for deb in "$KIT"/debs/*.deb; do
    echo "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
done
du -sh "$KIT"
echo "kit bytes: $(du -sb "$KIT" | cut -f1) (the working tree that travels is limited to 64 MiB)"
