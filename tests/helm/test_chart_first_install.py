"""A first `helm install` converges without a hand upload: the weights claim is ReadWriteMany on a
class that provides it (or the render stops naming the fix), a bootstrap Job copies the model from
the hub into the store once, and the replicas' init container waits for it instead of crash-looping.

The bootstrap script runs here for real against an S3 server (moto) with a hub-like cache folder
(``HF_HUB_OFFLINE``: no download), as the chart's Job would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from chart_kit import CHART, RELEASE, find, helm, pod_spec, render_docs

SCRIPT = CHART / "files" / "scripts" / "bootstrap_model.py"


def test_weights_claim_needs_a_read_write_many_class():
    with pytest.raises(helm.HelmRenderError, match="rollout.weights.storageClass is empty: name a StorageClass"):
        render_docs(required=False)
    with pytest.raises(helm.HelmRenderError, match="accessMode=ReadWriteOnce: .* must be ReadWriteMany"):
        render_docs({"rollout": {"weights": {"accessMode": "ReadWriteOnce"}}})
    claim = find(
        render_docs({"rollout": {"weights": {"storageClass": "efs-sc"}}}), "PersistentVolumeClaim", f"{RELEASE}-weights"
    )
    assert claim["spec"]["storageClassName"] == "efs-sc" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # an existing claim is the user's: no class needed, nothing created
    docs = render_docs({"rollout": {"weightsClaimName": "shared-rwx"}}, required=False)
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim" and "weights" in d["metadata"]["name"]]


def bootstrap_job(docs: list[dict]) -> dict:
    (job,) = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].startswith(f"{RELEASE}-model-bootstrap-")]
    return job


def test_bootstrap_job_copies_the_hub_model_and_the_replicas_wait_for_it():
    docs = render_docs()
    job = bootstrap_job(docs)
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})  # `helm install --wait` must not block on it
    spec = pod_spec(job)
    (c,) = spec["containers"]
    assert c["command"] == ["python", "/scripts/bootstrap_model.py"]
    assert c["args"][:3] == [
        "--repo-id=Qwen/Qwen2.5-VL-7B-Instruct",
        "--revision=main",
        "--dest=s3://ovr-models/Qwen2.5-VL-7B-Instruct",
    ]
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["labels"]["ovr.dev/client"] == "true"  # MinIO's policy admits it
    scripts = find(docs, "ConfigMap", f"{RELEASE}-model-bootstrap")["data"]["bootstrap_model.py"]
    assert scripts == SCRIPT.read_text().rstrip("\n")
    init = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))["initContainers"][0]
    script = init["args"][0]
    assert 'until mc stat "src/${MODEL_URI#s3://}/ovr-model.json"' in script  # the marker the Job writes last
    assert script.index("ovr-model.json") < script.index("mc mirror")
    # a new model or image makes a new Job (a Job's pod template is immutable); the same values, the same Job
    other = bootstrap_job(render_docs({"rollout": {"model": {"bootstrap": {"revision": "v2"}}}}))
    assert other["metadata"]["name"] != job["metadata"]["name"]
    assert bootstrap_job(render_docs())["metadata"]["name"] == job["metadata"]["name"]
    # with the hub id unset there is no Job and the init container tells what to upload
    manual = render_docs({"rollout": {"model": {"bootstrap": {"hubId": ""}}}})
    assert not [d for d in manual if d["metadata"]["name"].startswith(f"{RELEASE}-model-bootstrap")]
    assert "your upload" in pod_spec(find(manual, "StatefulSet", f"{RELEASE}-rollout"))["initContainers"][0]["args"][0]


def hub_cache(root, repo_id: str, files: dict[str, bytes]) -> str:
    """A Hugging Face hub cache holding ``repo_id`` at ``main`` (what ``HF_HUB_OFFLINE`` reads)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        path = repo / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return commit


@pytest.fixture()
def s3_server():
    from ovr.serving import ManagedServer

    srv = ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    )
    yield srv.start()
    srv.stop()


def test_bootstrap_script_copies_a_hub_snapshot_once_and_writes_the_marker_last(tmp_path, s3_server):
    from minio import Minio

    files = {
        "config.json": b'{"model_type": "qwen2_5_vl"}',
        "model.safetensors": b"\0" * 4096,
        "tokenizer.json": b"{}",
        "README.md": b"not copied",
    }
    commit = hub_cache(tmp_path / "hub", "Org/Tiny-VL", files)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    endpoint = f"127.0.0.1:{s3_server.port}"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--repo-id=Org/Tiny-VL",
        "--revision=main",
        "--dest=s3://ovr-models/tiny",
        f"--endpoint={endpoint}",
        "--wait-s=30",
    ]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "copied Org/Tiny-VL@main to s3://ovr-models/tiny (3 files)" in first.stdout
    s3 = Minio(endpoint, access_key="k", secret_key="s", secure=False)
    keys = sorted(o.object_name for o in s3.list_objects("ovr-models", prefix="tiny/", recursive=True))
    assert keys == ["tiny/config.json", "tiny/model.safetensors", "tiny/ovr-model.json", "tiny/tokenizer.json"]
    marker = json.loads(s3.get_object("ovr-models", "tiny/ovr-model.json").read())
    assert marker == {
        "repo_id": "Org/Tiny-VL",
        "revision": "main",
        "commit": commit,
        "files": ["config.json", "model.safetensors", "tokenizer.json"],
    }
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already holds Org/Tiny-VL@main (3 files)" in again.stdout
    bad = subprocess.run(
        cmd[:2] + ["--repo-id=Org/Missing"] + cmd[3:], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "Org/Missing" in bad.stderr  # offline and not cached: a clear failure
