"""Policy mutation testing: each registered rule in turn replaced by allow-all (`pytest
--mutate-rule ID`, tests/conftest.py), and the tests that name that rule outside the unit cases
(tool, security, e2e tests asserting its rule id) run against the mutant. A rule is caught when a
test fails. Prints one line per rule and the totals; the unit-level check (every rule's own allow
and deny cases) runs in the suite as tests/reliability/test_mutation.py.

    python -m bench.mutation [RULE_ID ...]      (MLGATE_MUTATION_TIMEOUT_S per rule, default 900)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from policies.registry import load_all

ROOT = Path(__file__).resolve().parents[1]
UNIT_DIRS = ("tests/policies", "tests/reliability")
TIMEOUT_S = int(os.environ.get("MLGATE_MUTATION_TIMEOUT_S", "900"))


def naming_tests(rule_id: str) -> list[str]:
    """Test files outside the unit cases that mention the rule id as a string."""
    quoted = (f'"{rule_id}"', f"'{rule_id}'")
    files = sorted((ROOT / "tests").rglob("test_*.py"))
    return [str(f.relative_to(ROOT)) for f in files if not str(f.relative_to(ROOT)).startswith(UNIT_DIRS) and any(q in f.read_text() for q in quoted)]


def run_mutant(rule_id: str, files: list[str]) -> str:
    """caught | survived | timeout | error (pytest's exit 1 is a failed test: the mutant is caught)."""
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--mutate-rule", rule_id, *files]
    try:
        code = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 1: "caught"}.get(code, "error")


def main(rule_ids: list[str] | None = None) -> int:
    results: dict[str, str] = {}
    for rule_id in rule_ids or sorted(load_all()):
        files = naming_tests(rule_id)
        started = time.monotonic()
        results[rule_id] = run_mutant(rule_id, files) if files else "no integration test names it"
        print(f"{rule_id:<45} {results[rule_id]:<30} {len(files)} files, {time.monotonic() - started:.0f} s", flush=True)
    caught = sum(r == "caught" for r in results.values())
    print(f"rules mutated to allow-all: {len(results)}; caught by integration tests: {caught}; every rule is caught by its own deny cases (tests/reliability/test_mutation.py)")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
