"""Submit the compiled ovr pipeline to a Kubeflow Pipelines server (what ``ovr submit`` runs).

Through ``kfp.Client``: upload the compiled YAML as a pipeline (named by its ``pipelineInfo``), or
as a new version when a pipeline of that name exists; find or create the experiment; create a run
of that exact version with typed parameters; optionally follow it to the end.

A pipeline uploaded for the first time gets one version, named by the server after the pipeline;
later submissions add a version named ``--version`` or ``<UTC time>-<sha256 of the YAML>``. On a
multi-user KFP the pipeline, experiment and run live in the profile ``namespace`` (the lookup of an
existing pipeline asks that namespace too, so a second submit finds it), the run's pods run as
``service_account``, and a Dex/oauth2-proxy front end takes a bearer ``token`` or a session ``cookies``
string (``authservice_session=...``).

>>> submit("https://kfp.example.com", params=["recipe=ovr-7b", "rl_nodes=4"], wait=True)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PIPELINE = Path(__file__).with_name("ovr_pipeline.yaml")
FINISHED = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


@dataclass
class Submission:
    """What a submission created (and, when waited for, how the run ended)."""

    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str
    state: str | None = None  # final run state when waited for
    error: str = ""  # the run's error message when it did not succeed

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def read_pipeline(path: str | Path) -> tuple[str, dict[str, dict]]:
    """The pipeline's name and its declared run parameters (``root.inputDefinitions.parameters``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no compiled pipeline at {path} (run `ovr pipeline compile`)")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = next((d for d in docs if "pipelineInfo" in d), None)
    if spec is None:
        raise ValueError(f"{path} is not a compiled KFP pipeline (no pipelineInfo)")
    params = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return spec["pipelineInfo"]["name"], params


def _convert(name: str, raw: str, ptype: str) -> Any:
    if ptype == "STRING":
        return raw
    if ptype == "NUMBER_INTEGER":
        return int(raw)
    if ptype == "NUMBER_DOUBLE":
        return float(raw)
    if ptype == "BOOLEAN":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"not a boolean: {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    value = json.loads(raw)  # LIST / STRUCT are given as JSON
    want = {"LIST": list, "STRUCT": dict}.get(ptype)
    if want is not None and not isinstance(value, want):
        raise ValueError(f"expected a JSON {want.__name__}, got {raw!r}")
    return value


def parse_params(pairs: list[str], declared: dict[str, dict]) -> dict[str, Any]:
    """``["k=v", ...]`` -> run parameters typed by the pipeline's declarations; unknown names rejected.

    >>> parse_params(["rl_nodes=4", "overrides=[\\"rl.lr=1e-6\\"]"],
    ...              {"rl_nodes": {"parameterType": "NUMBER_INTEGER"}, "overrides": {"parameterType": "LIST"}})
    {'rl_nodes': 4, 'overrides': ['rl.lr=1e-6']}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"parameter {pair!r} is not of the form name=value")
        if name not in declared:
            raise ValueError(f"unknown pipeline parameter {name!r}; declared: {', '.join(sorted(declared))}")
        ptype = declared[name].get("parameterType", "STRING")
        try:
            out[name] = _convert(name, raw, ptype)
        except ValueError as err:
            raise ValueError(f"parameter {name} ({ptype}): {err}") from err
    return out


def default_version_name(path: str | Path) -> str:
    """``<UTC time>-<first 8 hex of the YAML's sha256>``: unique per upload, traceable to the file."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest}"


def find_pipeline(client, name: str, namespace: str | None = None) -> str | None:
    """The id of the pipeline named ``name`` in ``namespace`` (shared pipelines when None)."""
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": name}]})
    found = client.list_pipelines(filter=flt, namespace=namespace, page_size=2).pipelines or []
    if len(found) > 1:
        raise ValueError(f"{len(found)} pipelines are named {name!r} in namespace {namespace or '(shared)'}")
    return found[0].pipeline_id if found else None


def upload(client, path: str | Path, name: str, version: str | None, namespace: str | None = None) -> tuple[str, str]:
    """Upload the pipeline (or a new version of the one named ``name``): ``(pipeline_id, version_id)``."""
    pipeline_id = find_pipeline(client, name, namespace)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(path), pipeline_name=name, namespace=namespace)
        versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc", page_size=1)
        if not versions.pipeline_versions:
            raise RuntimeError(f"pipeline {name} ({pipeline.pipeline_id}) was uploaded but has no version")
        return pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    v = client.upload_pipeline_version(str(path), version or default_version_name(path), pipeline_id=pipeline_id)
    return pipeline_id, v.pipeline_version_id


def wait_for_run(
    client, run_id: str, *, timeout_s: float, poll_s: float, on_state: Callable[[str], Any] = print
) -> Any:
    """Poll the run until it finishes, reporting each state change with the elapsed time."""
    start, last = time.monotonic(), None
    while True:
        run = client.get_run(run_id)
        state = run.state or "PENDING"
        if state != last:
            on_state(f"[{time.monotonic() - start:7.1f} s] run {run_id}: {state}")
            last = state
        if state in FINISHED:
            return run
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"run {run_id} still {state} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def make_client(host: str, token: str | None = None, namespace: str | None = None, cookies: str | None = None):
    """A ``kfp.Client`` for ``host`` (its constructor checks the server's healthz)."""
    import kfp

    kwargs: dict[str, Any] = {"host": host.rstrip("/")}
    if token:
        kwargs["existing_token"] = token
    if cookies:
        kwargs["cookies"] = cookies
    if namespace:
        kwargs["namespace"] = namespace
    return kfp.Client(**kwargs)


def submit(
    host: str,
    pipeline_file: str | Path = DEFAULT_PIPELINE,
    *,
    experiment: str = "ovr",
    params: list[str] | None = None,
    version: str | None = None,
    run_name: str | None = None,
    wait: bool = False,
    timeout_s: float = 7 * 24 * 3600,
    poll_s: float = 30.0,
    token: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    cookies: str | None = None,
    on_state: Callable[[str], Any] = print,
) -> Submission:
    """Upload/version the pipeline, create a run in ``experiment``; with ``wait``, follow it to the end."""
    name, declared = read_pipeline(pipeline_file)
    values = parse_params(list(params or []), declared)  # bad input fails before any request
    client = make_client(host, token, namespace, cookies)
    pipeline_id, version_id = upload(client, pipeline_file, name, version, namespace)
    exp = client.create_experiment(experiment, namespace=namespace)  # finds it when it exists
    run = client.run_pipeline(
        exp.experiment_id,
        run_name or f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
        params=values,
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=service_account,
    )
    sub = Submission(pipeline_id, version_id, exp.experiment_id, run.run_id)
    if wait:
        done = wait_for_run(client, run.run_id, timeout_s=timeout_s, poll_s=poll_s, on_state=on_state)
        sub.state = done.state
        sub.error = (done.error.message or "") if done.error else ""
    return sub
