"""What get_run and the run resource show of a detached run (run_experiment detach=true).

The worker writes its progress as run tags (PROGRESS_TAGS: done, total, server-worded message) and,
before the run ends FINISHED, the result the call would have returned as the artifact
`run_result.json`. A run without CALL_TAG was not detached and gets no section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CALL_TAG = "mlgate.detached_call"
PROGRESS_TAGS = ("mlgate.progress", "mlgate.progress_total", "mlgate.progress_message")
RESULT_ARTIFACT = "run_result.json"


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def progress_of(tags: Mapping[str, str]) -> dict[str, Any]:
    done, total = _number(tags.get(PROGRESS_TAGS[0])), _number(tags.get(PROGRESS_TAGS[1]))
    fraction = None if done is None or not total else round(min(done / total, 1.0), 4)
    return {"done": done, "total": total, "fraction": fraction, "message": tags.get(PROGRESS_TAGS[2]) or None}


def is_detached(run: Mapping[str, Any]) -> bool:
    return bool((run.get("tags") or {}).get(CALL_TAG))


KEPT = ("run_id", "status")  # the result names its run and end even where the view beside it does too


def detached_view(run: Mapping[str, Any], result: Any, shown: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{"detached": {status, progress, result}}` for a detached run, {} for any other; `result`
    (the call's payload) only once the run FINISHED, less the fields `shown` (the run's view, which
    it sits in) holds with the same value: `same_as_view` names them, so the call's whole result is
    `{field: view[field] for field in same_as_view} | result` (a poll repeats no kilobytes)."""
    if not is_detached(run):
        return {}
    view, shown = {"status": run.get("status"), "progress": progress_of(run.get("tags") or {}), "result": None}, shown or {}
    if run.get("status") == "FINISHED" and isinstance(result, Mapping):
        same = sorted(k for k, v in result.items() if k not in KEPT and k in shown and shown[k] == v)
        view |= {"result": {k: v for k, v in result.items() if k not in same}, "same_as_view": same}
    return {"detached": view}
