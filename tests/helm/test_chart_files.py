"""Files the chart carries stay in step with the repository: recipes (and the compiled pipeline, once
it exists) are copies because a packaged chart can only read files inside itself; the KFP upload Job
ships the compiled pipeline; the Dockerfile copies paths that exist; NOTES tell the next steps."""

from __future__ import annotations

import py_compile
import re

import pytest
import yaml
from chart_kit import CHART, NAMESPACE, RELEASE, REPO, find, render_docs, render_notes

SYNC_HINT = "run: .venv/bin/ovr pipeline compile  (it refreshes the chart copies)"


def test_recipes_copy_matches_repository():
    source = {p.name: p.read_text() for p in (REPO / "recipes").glob("*.yaml")}
    copy = {p.name: p.read_text() for p in (CHART / "files" / "recipes").glob("*.yaml")}
    assert source, "no recipes/*.yaml"
    assert copy == source, f"helm/ovr/files/recipes differs from recipes/; {SYNC_HINT}"


def test_recipes_configmap_holds_every_recipe_verbatim():
    data = find(render_docs(), "ConfigMap", f"{RELEASE}-recipes")["data"]
    assert data == {p.name: p.read_text() for p in (REPO / "recipes").glob("*.yaml")}


def test_compiled_pipeline_copy_in_sync_when_present():
    source = REPO / "pipelines" / "ovr_pipeline.yaml"
    copy = CHART / "files" / "pipelines" / "ovr_pipeline.yaml"
    if not source.exists():
        assert not copy.exists(), "the chart carries a pipeline the repository no longer has"
        pytest.skip("pipelines/ovr_pipeline.yaml is not compiled yet")
    assert copy.exists() and copy.read_text() == source.read_text(), SYNC_HINT


def test_kfp_upload_job_ships_the_compiled_pipeline():
    package = CHART / "files" / "pipelines" / "ovr_pipeline.yaml"
    if not package.exists():
        pytest.skip("no compiled pipeline in the chart yet")
    docs = render_docs({"kfpUpload": {"enabled": True, "existingSecret": "kfp-token"}})
    cm = find(docs, "ConfigMap", f"{RELEASE}-kfp-upload")
    assert cm["data"]["ovr_pipeline.yaml"] == package.read_text().rstrip("\n")
    assert next(yaml.safe_load_all(cm["data"]["ovr_pipeline.yaml"]))["pipelineInfo"]["name"] == "ovr"
    assert "def upload(" in cm["data"]["upload_pipeline.py"]
    job = find(docs, "Job", f"{RELEASE}-kfp-upload")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (
        "--host=http://ml-pipeline.kubeflow.svc:8888" in container["args"] and "--version=0.1.0-r1" in container["args"]
    )
    assert {"name": "KFP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "kfp-token", "key": "token"}}} in container[
        "env"
    ]


@pytest.mark.parametrize("script", ["upload_pipeline.py", "bootstrap_model.py"])
def test_chart_scripts_compile(tmp_path, script):
    py_compile.compile(str(CHART / "files" / "scripts" / script), cfile=str(tmp_path / "s.pyc"), doraise=True)


def test_dockerfile_copies_paths_that_exist():
    text = (REPO / "docker" / "ovr.Dockerfile").read_text()
    sources = [
        src
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    ]
    assert sources
    for src in sources:
        matches = list(REPO.glob(src))
        assert matches or src.endswith("*"), f"docker/ovr.Dockerfile copies {src}, which does not exist"
    assert re.search(r"^USER 1000:1000$", text, re.M), "the image must run as the chart's non-root uid"


def test_notes_tell_the_next_steps():
    notes = render_notes()
    assert f"http://{RELEASE}-reward.{NAMESPACE}.svc:8000" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    assert "ovr submit --service-account default-editor" in notes
    assert "s3://ovr-models/Qwen2.5-VL-7B-Instruct" in notes
    minimal = render_notes({"rollout": {"enabled": False}, "mlflow": {"enabled": False}})
    assert "vLLM rollout" not in minimal and "MLflow" not in minimal
