"""Policy mutation testing: each registered rule in turn replaced by allow-all, and a rule is
covered when at least one test fails against its mutant. Prints "N of M rules covered".

    python -m bench.mutation                     unit level, every registered rule (seconds)
    python -m bench.mutation --integration [ID ...]   also the integration tests naming each rule (hours)

Unit level: each mutant (tests/reliability/mutants.py, the registered Rule object's check replaced
in place, so every ToolSpec holding it runs the mutant) against the rule's own RuleCases, the
allow and deny cases in the `CASES` lists of tests/policies/test_*.py (collected by
tests/policies/test_rule_coverage.py `all_cases`); the same check runs in the suite as
tests/reliability/test_mutation.py. Integration level (`--integration`): `pytest --mutate-rule ID`
(tests/conftest.py) over the test files outside tests/policies and tests/reliability that name the
rule id as a string (tool, security and e2e tests asserting it), MLGATE_MUTATION_TIMEOUT_S per rule
(default 900).
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


def unit_coverage() -> dict[str, bool]:
    """{rule id: its allow-all mutant fails one of its own RuleCases} for every registered rule."""
    from tests.reliability.test_mutation import killed_by_cases  # noqa: PLC0415 - tests/ is on the path only from the repo root

    return killed_by_cases()


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


def integration(rule_ids: list[str]) -> int:
    results: dict[str, str] = {}
    for rule_id in rule_ids:
        files = naming_tests(rule_id)
        started = time.monotonic()
        results[rule_id] = run_mutant(rule_id, files) if files else "no integration test names it"
        print(f"{rule_id:<45} {results[rule_id]:<30} {len(files)} files, {time.monotonic() - started:.0f} s", flush=True)
    caught = sum(r == "caught" for r in results.values())
    print(f"integration level: {caught} of {len(results)} rules covered (a test naming the rule fails against its mutant)")
    return caught


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when a rule's mutant survives the unit level (or, with --integration, that level)."""
    args = list(sys.argv[1:] if argv is None else argv)
    deep = "--integration" in args
    chosen = [a for a in args if a != "--integration"] or sorted(load_all())
    killed = unit_coverage()
    survivors = sorted(r for r, caught in killed.items() if not caught)
    print(f"unit level: {len(killed) - len(survivors)} of {len(killed)} rules covered (each allow-all mutant fails one of its own RuleCases in tests/policies/test_*.py)")
    for rule_id in survivors:
        print(f"  survives: {rule_id}")
    caught = integration(chosen) if deep else len(chosen)
    return 0 if not survivors and caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
