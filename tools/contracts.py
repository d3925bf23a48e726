"""Public contracts: the JSON documents mlgate writes for others to read, as pydantic models whose
JSON Schemas (draft 2020-12) are generated into `contracts/<name>.v<version>.schema.json`.

A contract names every key a reader may rely on: a missing one fails validation. Sections that are
documented as open (report sections other helpers of a run add, extra observations of a gate,
extra fields of a denial such as the gate receipt of a refused promotion) allow more keys.
Changing a model changes its schema: bump the version when a reader would break, regenerate with
`python -m tools.contracts` (or `mlgate contracts export`); tests/tools/test_contracts.py fails
while a model and its file disagree.

The bundle manifest and the gate receipt are validated when written (`validated`): a payload that
does not match is a server error (ContractViolation), never written.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
SHA256 = r"^[0-9a-f]{64}$"
RUN_ID = r"^[0-9a-f]{32}$"


class Closed(BaseModel):
    """Every key is named; an unknown key is a contract change."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """The named keys are required; more may follow (documented as open)."""

    model_config = ConfigDict(extra="allow")


# --- shared parts ---------------------------------------------------------------------------------


class GateEntry(Open):
    gate: str = Field(description="Gate name, e.g. min_primary_metric.")
    status: Literal["PASS", "FAIL", "SKIPPED"] = Field(description="SKIPPED: the gate does not apply yet (e.g. no champion).")
    observed: Any = Field(description="What was measured (a number, a paired comparison object, a list); null when not measured.")
    threshold: Any = Field(description="The standard the observation is held to.")
    reason: str = Field(description="One sentence saying why the gate has this status.")


class FileEntry(Closed):
    path: str = Field(description="Path of the file inside the dataset.")
    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=0, description="Bytes.")


class DatasetManifestRef(Closed):
    """The dataset a run used, as the bundle records it (a subset of the CAS manifest)."""

    content_hash: str = Field(pattern=SHA256, description="The CAS content hash (`mlgate data list`).")
    schema_hash: str = Field(pattern=SHA256, description="Hash of the column names and dtypes.")
    files: list[FileEntry]
    rows: int = Field(ge=0)
    columns: list[str]


# --- gate receipt ---------------------------------------------------------------------------------


class SealedGates(Closed):
    gates: list[GateEntry] = Field(description="The same gates on the sealed test rows (for humans; agents never read them).")
    passed: bool


class GateReceipt(Closed):
    """gate_receipt.json, logged with every finished training run."""

    basis: Literal["validation"] = Field(description="Which rows the top-level gates judged.")
    gates: list[GateEntry]
    passed: bool = Field(description="True when no gate FAILed.")
    sealed_test: SealedGates


# --- model bundle ---------------------------------------------------------------------------------


class FeatureSchema(Closed):
    features: list[str] = Field(description="Feature columns, in the order the model reads them.")
    categorical: list[str]


class BundleManifest(Closed):
    """bundle_manifest.json: what a finished run's model bundle holds and what it was built from."""

    artifacts: list[str] = Field(description="Artifact paths of the run, sorted (model/ files included).")
    evaluation_report: Literal["evaluation_report.json"]
    gate_receipt: Literal["gate_receipt.json"]
    feature_schema: FeatureSchema
    dataset_manifest: DatasetManifestRef
    config_hash: str = Field(pattern=SHA256)
    feature_pipeline_hash: str = Field(pattern=SHA256)


# --- evaluation report ----------------------------------------------------------------------------

Figure = float | None  # NaN and infinities are written as null


class ValidationSection(Open):
    all_: dict[str, Figure] = Field(alias="_all", description="Every metric on the validation (out-of-fold) rows.")
    bootstrap: dict[str, Any] = Field(alias="_bootstrap", description="Bootstrap settings and the intervals.")
    rows: int = Field(alias="_rows", ge=0)


class FoldSummary(Open):
    mean: Figure
    std: Figure


class Comparison(Open):
    metric: str
    outcome: str = Field(description="improved, regressed or neutral against the best prior run.")
    metric_delta: Figure


class DataSection(Open):
    rows: int = Field(ge=0)
    columns: int = Field(ge=0)
    features: list[str]
    test_rows: int = Field(ge=0)
    validation_rows: int = Field(ge=0)


class SealedTestSection(Open):
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Figure]]
    gates: list[GateEntry]


class EvaluationReport(Open):
    """evaluation_report.json. Open: evidence sections (fairness, leakage, columns, split_fractions,
    ...) follow the named ones; test figures live only under `sealed_test`."""

    schema_version: int = Field(ge=1)
    run_id: str = Field(pattern=RUN_ID)
    gates_basis: Literal["validation"]
    gates: list[GateEntry]
    validation: ValidationSection
    validation_baselines: dict[str, dict[str, Figure]]
    validation_paired: dict[str, Any]
    folds: dict[str, FoldSummary]
    comparison: Comparison
    data: DataSection
    split: dict[str, Any]
    sealed_test: SealedTestSection


# --- training run record --------------------------------------------------------------------------


class TrainingParams(Open):
    """The Tier-1 provenance every training run logs (DESIGN §6); other params follow."""

    git_commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    git_dirty: Literal["true", "false", "True", "False"]
    dataset_content_hash: str = Field(pattern=SHA256)
    dataset_schema_hash: str = Field(pattern=SHA256)
    uv_lock_sha256: str = Field(min_length=1)
    feature_pipeline_hash: str = Field(pattern=SHA256)
    config_hash: str = Field(pattern=SHA256)
    standards_sha256: str = Field(pattern=SHA256)
    seed: str = Field(pattern=r"^-?[0-9]+$")


class TrainingRunRecord(Closed):
    """A training run as mlgate reads it from MLflow (server/tracking.run_record)."""

    run_id: str = Field(pattern=RUN_ID)
    experiment_id: str
    status: Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
    start_time: int | None = Field(description="Milliseconds since the epoch.")
    end_time: int | None
    artifact_uri: str | None = Field(description="Credentials in the URI are redacted.")
    params: TrainingParams
    metrics: dict[str, float]
    tags: dict[str, str]


# --- error response -------------------------------------------------------------------------------


class Denial(Closed):
    rule_id: str
    reason: str
    remediation: str


class ErrorResponse(Open):
    """The structured content of every refused or failed tool call (server/results.py). Open: a
    tool may add what helps the caller (a gate receipt, an approval id)."""

    decision: Literal["allow", "deny"] = Field(description="deny: a rule refused; allow with a status: decided, then failed.")
    rule_id: str = Field(description="The rule (or error kind) that decided, e.g. promotion.human_approval.")
    reason: str
    remediation: str = Field(description="What the caller can do next.")
    status: Literal["failed", "error"] | None = Field(None, description="Present when the call was allowed but did not complete.")
    denials: list[Denial] | None = Field(None, description="Every denial, when several rules refused.")


# name -> (model, version); the file is contracts/<name>.v<version>.schema.json
CONTRACTS: dict[str, tuple[type[BaseModel], int]] = {
    "training_run": (TrainingRunRecord, 1),
    "model_bundle": (BundleManifest, 1),
    "gate_receipt": (GateReceipt, 1),
    "dataset_manifest_ref": (DatasetManifestRef, 1),
    "evaluation_report": (EvaluationReport, 1),
    "error_response": (ErrorResponse, 1),
}


class ContractViolation(RuntimeError):
    """A document mlgate was about to write does not match its public contract (a server bug)."""


def file_name(name: str) -> str:
    return f"{name}.v{CONTRACTS[name][1]}.schema.json"


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of contract `name`, generated from its model. Raises KeyError."""
    model, version = CONTRACTS[name]
    generated = model.model_json_schema(by_alias=True)
    return {"$schema": DRAFT, "$id": f"urn:mlgate:contract:{name}:v{version}", **generated}


def schema_text(name: str) -> str:
    return json.dumps(schema(name), indent=2, sort_keys=True) + "\n"


@lru_cache(maxsize=None)
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (deferred: only writers need it)

    path = CONTRACTS_DIR / file_name(name)
    # an installed wheel carries no contracts/ folder: the generated schema is the same document
    document = json.loads(path.read_text()) if path.is_file() else schema(name)
    return Draft202012Validator(document)


def validated(name: str, payload: Any) -> Any:
    """`payload`, after checking it against contract `name`. Raises ContractViolation."""
    errors = sorted(_validator(name).iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise ContractViolation(f"{file_name(name)}: {where}: {errors[0].message} ({len(errors)} problem(s))")
    return payload


def export(directory: Path = CONTRACTS_DIR) -> list[Path]:
    """Write every contract's schema file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONTRACTS:
        path = directory / file_name(name)
        path.write_text(schema_text(name))
        written.append(path)
    return written


def stale(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Contract files missing or different from what their models generate."""
    return [file_name(n) for n in CONTRACTS if not (directory / file_name(n)).is_file() or (directory / file_name(n)).read_text() != schema_text(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.contracts", description="Write (or --check) the JSON Schemas in contracts/.")
    parser.add_argument("--check", action="store_true", help="exit 1 when a schema file is missing or stale; write nothing")
    parser.add_argument("--dir", type=Path, default=CONTRACTS_DIR, help="where the schema files live (default: the repository's contracts/)")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.dir)
        for problem in problems:
            print(f"stale: {problem} (regenerate with python -m tools.contracts)", file=sys.stderr)
        return 1 if problems else 0
    for path in export(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
