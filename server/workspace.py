"""Creating and updating governed workspaces from the copier template."""

from __future__ import annotations

from pathlib import Path

from server.git import GitRepo
from server.settings import CONFIGS_DIR
from tools.errors import InvalidInput

TEMPLATE_DIR = CONFIGS_DIR / "template"


def init_workspace(target: Path, client: str = "demo-bank", project: str = "credit-default") -> Path:
    """Render the template into an empty `target`, `git init` it and commit on main.

    Raises InvalidInput if `target` exists and is not empty.
    """
    import copier

    target = Path(target).resolve()
    if target.exists() and any(target.iterdir()):
        raise InvalidInput(f"{target} is not empty", "choose a new directory for the workspace")
    data = {"client_name": client, "project_name": project}
    copier.run_copy(str(TEMPLATE_DIR), str(target), data=data, defaults=True, quiet=True, unsafe=False, vcs_ref="HEAD")
    repo = GitRepo.init(target)
    repo.commit_all("mlgate: initialise governed workspace")
    return target
