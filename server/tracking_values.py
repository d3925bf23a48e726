"""Values on their way into and out of MLflow (server/tracking.py): dotted flattening, text forms,
key and metric checks, truncation, and the plain dict view of a run with credentials redacted."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tools.errors import InvalidInput
from tools.provenance import canonical_json
from tools.redact import redact_text, redact_value
from tools.secrets_scan import secret_kind_of_value

MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}\Z")


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: {"model": {"type": x}} -> {"model.type": x}."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def as_text(value: Any) -> str:
    """Strings as they are; everything else as canonical JSON (true, null, [1,2], 0.1)."""
    return value if isinstance(value, str) else canonical_json(value)


def check_keys(keys: Iterator[str] | list[str]) -> None:
    bad = sorted(k for k in keys if not MLFLOW_KEY.match(k))
    if bad:
        raise InvalidInput(
            f"names MLflow cannot store: {bad[:5]}",
            "use letters, digits, '_', '-', '.', ' ' and '/' only, at most 250 characters",
            rule_id="tracking.key",
        )


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics flattened to dotted keys, None (undefined) dropped. Raises InvalidInput for non-numbers."""
    flat = {k: v for k, v in flatten(metrics).items() if v is not None}
    check_keys(list(flat))
    not_numbers = sorted(k for k, v in flat.items() if isinstance(v, bool) or not isinstance(v, (int, float)))
    if not_numbers:
        raise InvalidInput(f"metrics must be numbers: {not_numbers[:5]}", "log text as a tag or an artifact", rule_id="tracking.metric_value")
    return flat


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = " ...[truncated]"
    return text[: limit - len(marker)] + marker


def scrub_credential(text: str) -> str:
    return "[redacted: looked like a credential]" if secret_kind_of_value(text) else text


def run_record(run: Any) -> dict[str, Any]:
    """A plain, JSON-able view of an MLflow Run; credentials in any URI it holds are redacted."""
    info, data = run.info, run.data
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "artifact_uri": redact_text(info.artifact_uri) if info.artifact_uri else info.artifact_uri,
        "params": redact_value(dict(data.params)),
        "metrics": dict(data.metrics),
        "tags": redact_value({k: v for k, v in data.tags.items() if not k.startswith("mlflow.log-model")}),
    }
