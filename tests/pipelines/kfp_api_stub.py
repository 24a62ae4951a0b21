"""A stub of the Kubeflow Pipelines v2beta1 REST API, served for real by uvicorn on 127.0.0.1.

KFP's API server (Go, with MySQL, Argo and a cluster behind it) cannot run here, so tests of
``ovr submit`` talk to this stub instead: a FastAPI app with just the endpoints ``kfp.Client`` uses
(healthz, pipelines + upload/upload_version + versions, experiments, runs). It keeps what it is sent
in memory, records every request (method, path, query, headers, JSON body, uploaded files) for
assertions, rejects what the real server would (a non-pipeline upload, an unknown pipeline or
experiment, a duplicate version name), and walks each created run PENDING -> RUNNING -> the next
outcome in ``stub.outcomes`` (SUCCEEDED by default) on successive GETs.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI, HTTPException, Request

from ovr.serving import free_port

API = "/apis/v2beta1"


@dataclass
class KfpStub:
    """In-memory state of the stub (read by tests, changed by requests)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, list[dict]] = field(default_factory=dict)  # pipeline id -> versions, oldest first
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)  # final states of the next runs (SUCCEEDED if empty)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == API + path]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_filter(raw: str | None) -> str | None:
    """The display_name an EQUALS filter asks for (the only filter kfp.Client sends here)."""
    if not raw:
        return None
    for p in json.loads(raw).get("predicates", []):
        if p.get("key") == "display_name":
            return p.get("stringValue", p.get("string_value"))
    return None


def create_app(stub: KfpStub) -> FastAPI:
    app = FastAPI(title="KFP v2beta1 API stub")

    @app.middleware("http")
    async def record(request: Request, call_next):
        body = await request.body()
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": dict(request.headers),
        }
        if request.headers.get("content-type", "").startswith("application/json") and body:
            entry["json"] = json.loads(body)
        stub.requests.append(entry)
        request.state.entry = entry
        return await call_next(request)

    @app.get(f"{API}/healthz")
    def healthz() -> dict:
        return {"multi_user": False, "pipeline_store": "database"}

    @app.get(f"{API}/pipelines")
    def list_pipelines(filter: str | None = None, namespace: str | None = None) -> dict:
        # as multi-user KFP: a namespaced pipeline is listed only when its namespace is asked for
        name = _name_filter(filter)
        found = [
            p
            for p in stub.pipelines.values()
            if (name is None or p["display_name"] == name) and p["namespace"] == (namespace or "")
        ]
        return {"pipelines": found, "total_size": len(found)} if found else {}

    async def _uploaded_spec(request: Request) -> bytes:
        form = await request.form()
        upload = form.get("uploadfile")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "missing multipart field uploadfile")
        data = await upload.read()
        request.state.entry["files"] = {"uploadfile": data}
        docs = [d for d in yaml.safe_load_all(data) if d]
        if not docs or "pipelineInfo" not in docs[0]:
            raise HTTPException(400, "uploaded file is not a compiled pipeline spec")
        return data

    def _add_version(pipeline_id: str, name: str, data: bytes) -> dict:
        if any(v["display_name"] == name for v in stub.versions[pipeline_id]):
            raise HTTPException(409, f"pipeline version {name!r} already exists")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": stub.new_id("version"),
            "display_name": name,
            "created_at": _now(),
            "pipeline_spec": next(iter(yaml.safe_load_all(data))),
        }
        stub.versions[pipeline_id].append(version)
        return version

    @app.post(f"{API}/pipelines/upload")
    async def upload(request: Request, name: str, description: str | None = None, namespace: str | None = None) -> dict:
        data = await _uploaded_spec(request)
        if any(p["display_name"] == name for p in stub.pipelines.values()):
            raise HTTPException(409, f"pipeline {name!r} already exists")
        pipeline = {
            "pipeline_id": stub.new_id("pipeline"),
            "display_name": name,
            "name": name,
            "description": description or "",
            "created_at": _now(),
            "namespace": namespace or "",
        }
        stub.pipelines[pipeline["pipeline_id"]] = pipeline
        stub.versions[pipeline["pipeline_id"]] = []
        _add_version(pipeline["pipeline_id"], name, data)  # the server names the first version after it
        return pipeline

    @app.post(f"{API}/pipelines/upload_version")
    async def upload_version(request: Request, name: str, pipelineid: str) -> dict:
        data = await _uploaded_spec(request)
        if pipelineid not in stub.pipelines:
            raise HTTPException(404, f"pipeline {pipelineid} not found")
        return {k: v for k, v in _add_version(pipelineid, name, data).items() if k != "pipeline_spec"}

    @app.get(f"{API}/pipelines/{{pipeline_id}}/versions")
    def list_versions(pipeline_id: str, sort_by: str = "", page_size: int = 10) -> dict:
        if pipeline_id not in stub.pipelines:
            raise HTTPException(404, f"pipeline {pipeline_id} not found")
        versions = stub.versions[pipeline_id][::-1] if sort_by == "created_at desc" else stub.versions[pipeline_id]
        out = [{k: v for k, v in ver.items() if k != "pipeline_spec"} for ver in versions[:page_size]]
        return {"pipeline_versions": out, "total_size": len(versions)}

    @app.get(f"{API}/experiments")
    def list_experiments(filter: str | None = None, namespace: str | None = None) -> dict:
        name = _name_filter(filter)
        found = [e for e in stub.experiments.values() if name is None or e["display_name"] == name]
        return {"experiments": found, "total_size": len(found)} if found else {}

    @app.post(f"{API}/experiments")
    async def create_experiment(request: Request) -> dict:
        body = await request.json()
        if not body.get("display_name"):
            raise HTTPException(400, "experiment display_name is required")
        exp = {
            "experiment_id": stub.new_id("experiment"),
            "display_name": body["display_name"],
            "namespace": body.get("namespace") or "",
            "created_at": _now(),
        }
        stub.experiments[exp["experiment_id"]] = exp
        return exp

    @app.post(f"{API}/runs")
    async def create_run(request: Request) -> dict:
        body = await request.json()
        if body.get("experiment_id") not in stub.experiments:
            raise HTTPException(404, f"experiment {body.get('experiment_id')} not found")
        ref = body.get("pipeline_version_reference") or {}
        known = [v["pipeline_version_id"] for v in stub.versions.get(ref.get("pipeline_id"), [])]
        if not body.get("pipeline_spec") and ref.get("pipeline_version_id") not in known:
            raise HTTPException(404, f"pipeline version {ref} not found")
        final = stub.outcomes.pop(0) if stub.outcomes else "SUCCEEDED"
        run = {
            **body,
            "run_id": stub.new_id("run"),
            "created_at": _now(),
            "state": "PENDING",
            "_script": ["RUNNING", final],
        }
        stub.runs[run["run_id"]] = run
        return {k: v for k, v in run.items() if not k.startswith("_")}

    @app.get(f"{API}/runs/{{run_id}}")
    def get_run(run_id: str) -> dict:
        run = stub.runs.get(run_id)
        if run is None:
            raise HTTPException(404, f"run {run_id} not found")
        if run["_script"]:
            run["state"] = run["_script"].pop(0)
            if run["state"] == "FAILED":
                run["error"] = {"code": 2, "message": "task multimodal-rl failed: PyTorchJob ovr-rl failed"}
            if not run["_script"]:
                run["finished_at"] = _now()
        return {k: v for k, v in run.items() if not k.startswith("_")}

    return app


@contextmanager
def serve_stub() -> Iterator[KfpStub]:
    """Run the stub under uvicorn in a thread on a free 127.0.0.1 port; stop it on exit."""
    stub = KfpStub()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(stub), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="kfp-api-stub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("KFP API stub did not start")
        time.sleep(0.02)
    stub.url = f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(timeout=10)
