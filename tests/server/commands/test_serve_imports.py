"""What `mlgate serve` imports before it answers its first request: an agent's client spawns the
server and waits for tools/list, so the numeric and tracking libraries (about 1 s of imports on
2 cores) are loaded where a tool first needs them (bench/cold_start.py measures the effect)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
LATE_LIBRARIES = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "sqlalchemy", "xgboost", "torch")
# The real serve command up to the point it would serve: `run` records what is imported by then.
# The recovery thread is left out: it imports MLflow on purpose, beside the first answers.
AT_SERVE = """
import json, sys
import server.commands.serve as serve
import server.registration as registration

def record(self, transport):
    print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in LATE)))

serve.reconcile_in_background = lambda ports: None
registration.GovernedServer.run = record
LATE = set(json.loads(sys.argv[2]))
sys.exit(serve.serve_command(serve.argparse.Namespace(http=None, workspace=sys.argv[1])))
"""


def _imported_when_serving(workspace: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", AT_SERVE, str(workspace), json.dumps(LATE_LIBRARIES)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serving_starts_without_the_numeric_and_tracking_libraries(workspace: Path) -> None:
    assert _imported_when_serving(workspace) == []

