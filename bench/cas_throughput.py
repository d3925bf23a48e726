"""CAS verification throughput against a plain hashlib read of the same bytes.

Writes a CSV dataset (several files, ~80 MB by default) into a temporary workspace's store, then
times, in the same process with a warm page cache, alternating:
  baseline  open + read + hashlib.sha256 of each file
  verify    CasStore.verify: O_NOFOLLOW walk, fstat checks, one read + SHA-256 per file, manifest
            check and the data.* rules (no pandas parsing)
and prints the median and best times and the ratio baseline / verify (target >= 0.9). A second
figure compares the load path, which keeps every file's bytes to parse them, with a hashlib read
that keeps them too (holding the bytes costs the same fresh memory pages on both sides).
Usage: python -m bench.cas_throughput [MEGABYTES] [REPETITIONS]
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from server.cas import CasStore
from server.cas_import import add_dataset

FILES = 4
TARGET = 0.9


def write_csv(path: Path, megabytes: float, seed: int) -> None:
    """Numeric CSV of about `megabytes` MB (a row of 8 floats is ~75 bytes)."""
    rows = int(megabytes * 1_000_000 / 75)
    values = np.random.default_rng(seed).normal(size=(rows, 8))
    header = ",".join(f"x{i}" for i in range(8))
    np.savetxt(path, values, fmt="%.6f", delimiter=",", header=header, comments="")


def baseline(paths: list[Path], keep: bool = False) -> list[bytes]:
    """SHA-256 of each file read whole; `keep` holds every file's bytes, as parsing needs."""
    kept = []
    for path in paths:
        with open(path, "rb") as stream:
            data = stream.read()
        hashlib.sha256(data).hexdigest()
        if keep:
            kept.append(data)
    return kept


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(plain_run: Callable[[], object], verify_run: Callable[[], object], repetitions: int) -> tuple[list[float], list[float]]:
    """Alternating timings (which runs first flips every turn), after one warm-up run each."""
    plain_run(), verify_run()
    plain: list[float] = []
    verified: list[float] = []
    for turn in range(repetitions):
        pair = [lambda: plain.append(timed(plain_run)), lambda: verified.append(timed(verify_run))]
        for run in pair if turn % 2 == 0 else reversed(pair):
            run()
    return plain, verified


def report(title: str, total_mb: float, plain: list[float], verified: list[float]) -> float:
    ratio = statistics.median(plain) / statistics.median(verified)
    print(f"  {title}")
    for name, times in (("plain hashlib read", plain), ("CasStore", verified)):
        print(f"    {name:<19} median {statistics.median(times) * 1e3:7.1f} ms  best {min(times) * 1e3:7.1f} ms  ({total_mb / statistics.median(times):.0f} MB/s)")
    print(f"    ratio baseline/verify: median {ratio:.3f}  best {min(plain) / min(verified):.3f}  (target >= {TARGET})")
    return ratio


def main(argv: list[str] | None = None) -> float:
    argv = argv or []
    megabytes = float(argv[0]) if argv else 80.0
    repetitions = int(argv[1]) if len(argv) > 1 else 9
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        sources = [root / f"part-{n}.csv" for n in range(FILES)]
        for n, path in enumerate(sources):
            write_csv(path, megabytes / FILES, seed=n)
        store = CasStore(root / "ws", max_files=64)
        content_hash = add_dataset(store, sources).content_hash
        stored = [root / "ws" / "data" / "shadow" / content_hash / p.name for p in sources]
        total = sum(p.stat().st_size for p in stored) / 1e6
        print(f"CAS verification throughput: {total:.1f} MB in {FILES} files, {repetitions} repetitions each")
        ratio = report("verify (hash + integrity checks, bytes dropped after hashing)", total, *measure(lambda: baseline(stored), lambda: store.verify(content_hash, registered=False), repetitions))
        report("verify keeping every file's bytes for parsing (load path) vs hashlib read keeping them", total, *measure(lambda: baseline(stored, keep=True), lambda: store.verify(content_hash, keep_bytes=True, registered=False), repetitions))
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
