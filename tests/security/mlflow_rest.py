"""A small, real MLflow tracking server over HTTP on 127.0.0.1 (the REST calls mlgate makes).

The real `mlflow server` takes a minute to start on a loaded machine; this one answers the
experiments, runs, tags and artifact-list endpoints from memory, and records the Authorization
header of every request, so a test can show that the credentials in a tracking URI were used.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/api/2.0/mlflow/"


class Store:
    def __init__(self) -> None:
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.authorizations: list[str] = []

    def experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        exp_id = str(len(self.experiments) + 1)
        self.experiments[exp_id] = {"experiment_id": exp_id, "name": body["name"], "artifact_location": f"mlflow-artifacts:/{exp_id}", "lifecycle_stage": "active", "tags": []}
        return {"experiment_id": exp_id}

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = uuid.uuid4().hex
        info = {"run_id": run_id, "run_uuid": run_id, "experiment_id": body["experiment_id"], "user_id": "", "status": "RUNNING", "start_time": body.get("start_time", 0),
                "artifact_uri": f"mlflow-artifacts:/{body['experiment_id']}/{run_id}/artifacts", "lifecycle_stage": "active", "run_name": body.get("run_name") or "run"}
        self.runs[run_id] = {"info": info, "data": {"metrics": [], "params": [], "tags": list(body.get("tags", []))}, "inputs": {}}
        return {"run": self.runs[run_id]}

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        tags = [t for t in self.runs[run_id]["data"]["tags"] if t["key"] != key]
        self.runs[run_id]["data"]["tags"] = [*tags, {"key": key, "value": value}]

    def batch(self, body: dict[str, Any]) -> dict[str, Any]:
        data = self.runs[body["run_id"]]["data"]
        data["params"] += body.get("params", [])
        data["metrics"] += body.get("metrics", [])
        for tag in body.get("tags", []):
            self.set_tag(body["run_id"], tag["key"], tag["value"])
        return {}

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        info = self.runs[body["run_id"]]["info"]
        info.update({k: body[k] for k in ("status", "end_time") if k in body})
        return {"run_info": info}

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        found = [r for r in self.runs.values() if r["info"]["experiment_id"] in body.get("experiment_ids", [])]
        return {"runs": sorted(found, key=lambda r: -r["info"]["start_time"])}


def _handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            store.authorizations.append(self.headers.get("Authorization", ""))
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            name = url.path.split(API, 1)[-1] if API in url.path else url.path
            if name == "experiments/get-by-name":
                found = [e for e in store.experiments.values() if e["name"] == query.get("experiment_name")]
                return (200, {"experiment": found[0]}) if found else (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"})
            if name == "runs/get":
                run = store.runs.get(query.get("run_id", ""))
                return (200, {"run": run}) if run else (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"})
            if name == "runs/set-tag":
                store.set_tag(body["run_id"], body["key"], body["value"])
                return 200, {}
            routes = {"experiments/create": store.experiment, "runs/create": store.create_run, "runs/log-batch": store.batch, "runs/update": store.update, "runs/search": store.search}
            if name in routes:
                return 200, routes[name](body)
            return 200, {}  # artifact listings and anything else: empty

        def do_GET(self) -> None:
            self._answer(*self._route({}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(*self._route(json.loads(self.rfile.read(length) or b"{}")))

    return Handler


@contextmanager
def mlflow_rest_server() -> Iterator[tuple[str, Store]]:
    """Yields ("127.0.0.1:PORT", store) while the server runs in a thread."""
    store = Store()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()
