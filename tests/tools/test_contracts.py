"""Public contracts: each schema file in contracts/ is what its pydantic model generates now, the
schemas are valid draft 2020-12, a document missing a key is refused, and real documents (a real
denial through an MCP client, a real training run's artifacts and record) match them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from server.app import build_server
from server.ports import build_ports
from server.settings import Settings
from tests.tools.test_run_experiment import REASONING, call, governed  # noqa: F401 (fixture)
from tools.contracts import CONTRACTS, CONTRACTS_DIR, ContractViolation, file_name, main, schema_text, validated

RECEIPT = {
    "basis": "validation",
    "gates": [{"gate": "min_primary_metric", "status": "PASS", "observed": 0.81, "threshold": 0.7, "reason": "roc_auc 0.81 >= 0.7"}],
    "passed": True,
    "sealed_test": {"gates": [], "passed": True},
}


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_each_schema_file_is_what_its_model_generates(name: str) -> None:
    path = CONTRACTS_DIR / file_name(name)
    assert path.is_file(), f"{path} is missing: run python -m tools.contracts"
    assert path.read_text() == schema_text(name), f"{path.name} disagrees with its model: run python -m tools.contracts (and bump the version if readers would break)"


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_each_schema_is_a_versioned_draft_2020_12_schema(name: str) -> None:
    document = json.loads((CONTRACTS_DIR / file_name(name)).read_text())
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema" and document["$id"].endswith(f":{name}:v{CONTRACTS[name][1]}")


def test_a_receipt_missing_a_key_or_with_an_unknown_status_is_refused() -> None:
    assert validated("gate_receipt", RECEIPT) is RECEIPT
    with pytest.raises(ContractViolation, match="'passed' is a required property"):
        validated("gate_receipt", {k: v for k, v in RECEIPT.items() if k != "passed"})
    with pytest.raises(ContractViolation, match="gates/0/status"):
        validated("gate_receipt", {**RECEIPT, "gates": [{**RECEIPT["gates"][0], "status": "MAYBE"}]})
    with pytest.raises(ContractViolation, match="reason"):
        validated("gate_receipt", {**RECEIPT, "gates": [{k: v for k, v in RECEIPT["gates"][0].items() if k != "reason"}]})


def test_the_check_command_flags_a_stale_schema_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path)]) == 0 and main(["--check", "--dir", str(tmp_path)]) == 0
    edited = tmp_path / file_name("gate_receipt")
    edited.write_text(edited.read_text().replace('"passed"', '"ok"', 1))
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert file_name("gate_receipt") in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_real_denial_matches_the_error_response_contract(settings: Settings) -> None:
    async with Client(build_server(settings, build_ports(settings))) as client:
        result = await client.call_tool("rollback_alias", {"model": "demo-bank-credit-default"})
    assert result.is_error
    validated("error_response", result.structured_content)
    with pytest.raises(ContractViolation, match="remediation"):
        validated("error_response", {k: v for k, v in result.structured_content.items() if k != "remediation"})


@pytest.mark.anyio
async def test_a_training_runs_artifacts_and_record_match_their_contracts(governed: dict[str, Any]) -> None:  # noqa: F811
    result = await call(governed, {"reasoning": REASONING})
    assert not result.is_error, result.structured_content
    tracking = governed["ports"].tracking
    run_id = result.structured_content["run_id"]
    artifacts = governed["ports"].run_artifacts
    bundle = artifacts.read_json(run_id, "bundle_manifest.json")
    for name, document in (("model_bundle", bundle), ("gate_receipt", artifacts.read_json(run_id, "gate_receipt.json")), ("evaluation_report", artifacts.read_json(run_id, "evaluation_report.json"))):
        assert document is not None and validated(name, document) is document
    validated("dataset_manifest_ref", bundle["dataset_manifest"])
    validated("training_run", tracking.get_run(run_id))
