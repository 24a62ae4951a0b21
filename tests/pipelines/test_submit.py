"""``ovr submit`` against a stub of the KFP v2beta1 API (``kfp_api_stub``, served for real by uvicorn).

KFP's API server cannot run here (it needs MySQL, Argo and a cluster), so ``kfp.Client`` talks to a
stub that records every request: these tests assert the compiled spec is uploaded byte for byte,
the parameters are sent typed, a known pipeline gets a new version, the experiment is created once,
and waiting on a run that SUCCEEDED / FAILED gives exit 0 / 1.
"""

# No `from __future__ import annotations`: kfp reads the component signatures' real types.
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))  # the stub module beside this file
from kfp_api_stub import serve_stub

from pipelines.submit import DEFAULT_PIPELINE, parse_params, read_pipeline, submit

pytestmark = pytest.mark.filterwarnings("ignore:This client only works with Kubeflow Pipeline:FutureWarning")


@pytest.fixture()
def kfp_stub():
    with serve_stub() as stub:
        yield stub


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    """A two-task pipeline with typed parameters, compiled here (independent of ovr's own DAG)."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11-slim")
    def scale(x: int, factor: float, tags: list, verbose: bool) -> float:
        return x * factor

    @dsl.component(base_image="python:3.11-slim")
    def show(v: float, label: str):
        print(label, v)

    @dsl.pipeline(name="tiny-submit", description="submit test")
    def tiny(x: int = 1, factor: float = 2.0, label: str = "out", tags: list = [], verbose: bool = False):  # noqa: B006
        s = scale(x=x, factor=factor, tags=tags, verbose=verbose).set_display_name("Scale")
        show(v=s.output, label=label).set_display_name("Show")

    path = tmp_path_factory.mktemp("kfp") / "tiny.yaml"
    compiler.Compiler().compile(tiny, str(path))
    return path


def _cli(*args: str):
    from ovr.cli import app

    return CliRunner().invoke(app, ["submit", *args])


def test_parse_params_types_and_errors():
    _, declared = read_pipeline(DEFAULT_PIPELINE)
    got = parse_params(["recipe=ovr-7b", "rl_nodes=4", 'overrides=["rl.lr=1e-6"]', "model_path=s3://b/m=1"], declared)
    assert got == {"recipe": "ovr-7b", "rl_nodes": 4, "overrides": ["rl.lr=1e-6"], "model_path": "s3://b/m=1"}
    with pytest.raises(ValueError, match="unknown pipeline parameter 'nodes'"):
        parse_params(["nodes=2"], declared)
    with pytest.raises(ValueError, match="rl_nodes"):
        parse_params(["rl_nodes=four"], declared)
    with pytest.raises(ValueError, match="expected a JSON list"):
        parse_params(['overrides={"a": 1}'], declared)
    with pytest.raises(ValueError, match="name=value"):
        parse_params(["recipe"], declared)


def test_new_pipeline_is_uploaded_and_run_with_typed_parameters(kfp_stub, tiny_pipeline):
    sub = submit(
        kfp_stub.url,
        tiny_pipeline,
        experiment="exp-a",
        token="tok-1",
        params=["x=3", "factor=0.5", 'tags=["a","b"]', "verbose=true", "label=hello"],
    )

    assert kfp_stub.calls("GET", "/healthz"), "kfp.Client checks healthz first"
    (up,) = kfp_stub.calls("POST", "/pipelines/upload")
    assert up["query"]["name"] == "tiny-submit"
    assert up["files"]["uploadfile"] == tiny_pipeline.read_bytes()  # the compiled spec, byte for byte
    assert up["headers"]["authorization"] == "Bearer tok-1"
    assert not kfp_stub.calls("POST", "/pipelines/upload_version")
    (exp,) = kfp_stub.calls("POST", "/experiments")
    assert exp["json"]["display_name"] == "exp-a"
    (run,) = kfp_stub.calls("POST", "/runs")
    body = run["json"]
    assert body["runtime_config"]["parameters"] == {
        "x": 3,
        "factor": 0.5,
        "tags": ["a", "b"],
        "verbose": True,
        "label": "hello",
    }
    assert body["pipeline_version_reference"] == {"pipeline_id": sub.pipeline_id, "pipeline_version_id": sub.version_id}
    assert body["experiment_id"] == sub.experiment_id and sub.state is None
    assert kfp_stub.versions[sub.pipeline_id][0]["pipeline_spec"]["pipelineInfo"]["name"] == "tiny-submit"


def test_existing_pipeline_gets_a_new_version_and_experiment_is_reused(kfp_stub, tiny_pipeline):
    first = submit(kfp_stub.url, tiny_pipeline, experiment="exp-b")
    second = submit(kfp_stub.url, tiny_pipeline, experiment="exp-b", version="v2", params=["x=7"])

    assert second.pipeline_id == first.pipeline_id and second.version_id != first.version_id
    assert len(kfp_stub.calls("POST", "/pipelines/upload")) == 1
    (upv,) = kfp_stub.calls("POST", "/pipelines/upload_version")
    assert upv["query"] == {"name": "v2", "pipelineid": first.pipeline_id}
    assert upv["files"]["uploadfile"] == tiny_pipeline.read_bytes()
    assert len(kfp_stub.calls("POST", "/experiments")) == 1 and second.experiment_id == first.experiment_id
    runs = kfp_stub.calls("POST", "/runs")
    assert runs[-1]["json"]["pipeline_version_reference"]["pipeline_version_id"] == second.version_id
    assert runs[-1]["json"]["runtime_config"]["parameters"] == {"x": 7}
    # A version name already taken is refused by the server and surfaces as an API error.
    from kfp_server_api.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        submit(kfp_stub.url, tiny_pipeline, experiment="exp-b", version="v2")
    assert err.value.status == 409
    res = _cli(
        "--host", kfp_stub.url, "--pipeline-file", str(tiny_pipeline), "--experiment", "exp-b", "--version", "v2"
    )
    assert res.exit_code == 1 and "HTTP 409" in res.output and "already exists" in res.output


@pytest.mark.parametrize("outcome, code", [("SUCCEEDED", 0), ("FAILED", 1)])
def test_cli_wait_exit_code_follows_the_run(kfp_stub, tiny_pipeline, outcome, code):
    kfp_stub.outcomes.append(outcome)
    res = _cli(
        "--host",
        kfp_stub.url,
        "--pipeline-file",
        str(tiny_pipeline),
        "--experiment",
        "exp-c",
        "--param",
        "x=2",
        "--wait",
        "--poll",
        "0.01",
    )
    assert res.exit_code == code, res.output
    (run,) = kfp_stub.runs.values()
    assert run["state"] == outcome
    assert f"run {run['run_id']}: RUNNING" in res.output and f"run {run['run_id']}: {outcome}" in res.output
    if outcome == "FAILED":
        assert "PyTorchJob ovr-rl failed" in res.output


def test_cli_rejects_bad_parameters_before_contacting_the_server(kfp_stub, tiny_pipeline):
    res = _cli("--host", kfp_stub.url, "--pipeline-file", str(tiny_pipeline), "--param", "nope=1")
    assert res.exit_code == 2 and "unknown pipeline parameter 'nope'" in res.output
    res = _cli("--host", kfp_stub.url, "--pipeline-file", str(tiny_pipeline) + ".missing")
    assert res.exit_code == 2 and "no compiled pipeline" in res.output
    assert kfp_stub.requests == []


def test_submits_the_checked_in_ovr_pipeline(kfp_stub):
    sub = submit(
        kfp_stub.url,
        DEFAULT_PIPELINE,
        experiment="ovr",
        params=["recipe=ovr-7b", "rl_nodes=4", "sft_nodes=2", 'overrides=["rl.max_steps=900"]'],
        wait=True,
        poll_s=0.01,
    )
    assert sub.succeeded
    (up,) = kfp_stub.calls("POST", "/pipelines/upload")
    assert up["files"]["uploadfile"] == DEFAULT_PIPELINE.read_bytes()
    assert up["query"]["name"] == yaml.safe_load_all(DEFAULT_PIPELINE.read_text()).__next__()["pipelineInfo"]["name"]
    (run,) = kfp_stub.calls("POST", "/runs")
    assert run["json"]["runtime_config"]["parameters"] == {
        "recipe": "ovr-7b",
        "rl_nodes": 4,
        "sft_nodes": 2,
        "overrides": ["rl.max_steps=900"],
    }


def test_namespaced_repeat_submit_finds_its_pipeline_and_passes_account_and_auth(kfp_stub, tiny_pipeline):
    """Multi-user KFP: the pipeline lives in the profile namespace, so the second submit must look
    there (it would re-upload and hit 409 otherwise); the run gets the service account; the bearer
    token and the Dex session cookie reach every request."""
    kw = dict(
        namespace="team-a",
        service_account="ovr-pipeline",
        token="tok-1",
        cookies="authservice_session=abc",
        on_state=lambda s: None,
    )
    first = submit(kfp_stub.url, tiny_pipeline, **kw)
    second = submit(kfp_stub.url, tiny_pipeline, version="v2", **kw)
    assert second.pipeline_id == first.pipeline_id and second.version_id != first.version_id
    assert len(kfp_stub.calls("POST", "/pipelines/upload")) == 1
    assert len(kfp_stub.calls("POST", "/pipelines/upload_version")) == 1
    runs = kfp_stub.calls("POST", "/runs")
    assert [r["json"]["service_account"] for r in runs] == ["ovr-pipeline", "ovr-pipeline"]
    for r in kfp_stub.requests:
        if r["path"].endswith("/healthz"):
            continue
        assert (
            r["headers"].get("authorization") == "Bearer tok-1" and "authservice_session=abc" in r["headers"]["cookie"]
        )
