"""`python -m bench`: run every benchmark module of this package (each exposes `main()`).

`python -m bench NAME... [--option...]`: only the named ones; options (arguments starting with
"-") are passed to each named module's `main(options)`, e.g. `python -m bench scale --quick`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import bench


# Hours at full size: run only when named (`python -m bench mutation`).
EXPLICIT_ONLY = ("mutation", "reliability", "scale")


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_") and m.name not in EXPLICIT_ONLY)


def main(arguments: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default), in name order; exit 1 if one failed."""
    names = [a for a in arguments or [] if not a.startswith("-")]
    options = [a for a in arguments or [] if a.startswith("-")]
    failed = 0
    for name in names or modules():
        print(f"== bench.{name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            _run(module, options)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed += 1
            print(f"bench.{name} failed: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failed else 0


def _run(module: object, options: list[str]) -> None:
    """A module whose main takes arguments gets the options, even none: left to itself it would
    read sys.argv, which holds the benchmark names."""
    main = module.main  # type: ignore[attr-defined]
    main(options) if inspect.signature(main).parameters else main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
