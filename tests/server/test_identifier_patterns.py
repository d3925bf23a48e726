"""Identifiers from clients are matched whole: a trailing newline never slips through `$`."""

import re

import pytest

from server.approvals import APPROVAL_ID, CHANGE_HASH
from server.git import SAFE_PATH, SAFE_REF
from server.pr_providers import RECORD_NAME
from server.rundirs import STAGE
from server.tracking import ARTIFACT_NAME, RUN_ID
from server.tracking_values import MLFLOW_KEY
from tools.propose_config_change import PATH

CASES = [
    (SAFE_REF, "main"), (SAFE_PATH, "configs/project_standards.yaml"), (APPROVAL_ID, "apr-0123456789ab"),
    (CHANGE_HASH, "a" * 64), (RECORD_NAME, "local-7.json"), (STAGE, "fold-0"), (RUN_ID, "b" * 32),
    (MLFLOW_KEY, "config.model.type"), (ARTIFACT_NAME, "gate_receipt.json"), (PATH, "model.params.max_depth"),
]


@pytest.mark.parametrize(("pattern", "valid"), CASES, ids=lambda v: v.pattern[:20] if isinstance(v, re.Pattern) else v)
def test_a_valid_identifier_matches_and_the_same_with_a_newline_does_not(pattern: re.Pattern[str], valid: str) -> None:
    assert pattern.match(valid)
    assert not pattern.match(valid + "\n")
