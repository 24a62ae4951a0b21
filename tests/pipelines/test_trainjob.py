"""Trainer v2 TrainJobs: the manifest against the v2.3.0 API schema, API discovery, the job's life on an
emulated API server, the job a stage becomes, and deletion when the launcher is cancelled.

The API server is ``kmock``'s emulator (no kube-apiserver nor Trainer controller runs here); the
controller's status updates are scripted per GET, as in test_jobs.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import kubernetes
import kubernetes_validate
import pytest
import yaml

from components.jobs import JobSettings, job_name, stage_job_spec
from components.resources import WEIGHTS_MOUNT
from ovr.config import load_config
from ovr.context import RunContext
from ovr.k8s.jobs import run_job
from ovr.k8s.kinds import PYTORCHJOB, TRAINJOB, NoJobApi, discover, trainjob_manifest, trainjob_status
from ovr.k8s.spec import ClaimMount, Owner, TrainerJobSpec
from ovr.k8s.status import JobFailed

SCHEMA = yaml.safe_load((Path(__file__).parent / "crds" / "trainjob-v1alpha1.yaml").read_text())
TRAINJOBS, PYTORCHJOBS, PODS, NS = (
    "trainer.kubeflow.org/v1alpha1/trainjobs",
    "kubeflow.org/v1/pytorchjobs",
    "v1/pods",
    "ml",
)
REPO = Path(__file__).resolve().parents[2]


def make_spec(**kw) -> TrainerJobSpec:
    base = dict(
        name="ovr-sft",
        namespace=NS,
        image="ghcr.io/ovr/ovr:1.0",
        nodes=3,
        gpus_per_node=8,
        command=["torchrun", "-m", "components.train", "sft", "--config", "/tmp/c.yaml"],
        cpu="48",
        memory="900Gi",
        env={"OVR_RUN": "r1"},
        secret_env={"ovr-s3": {"access_key": "OVR_S3_ACCESS_KEY", "secret_key": "OVR_S3_SECRET_KEY"}},
        field_env={"OVR_POD_IP": "status.podIP"},
        claims=[ClaimMount(claim="ovr-weights", mount_path="/weights")],
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        node_selector={"nvidia.com/gpu.product": "H100"},
        shm_size="64Gi",
        service_account="ovr-runner",
        image_pull_secrets=["mirror"],
        labels={"ovr.dev/run": "r1"},
        owner=Owner(name="launcher-pod", uid="u-1"),
        active_deadline_s=3600,
    )
    return TrainerJobSpec(**{**base, **kw})


def validate_trainjob(m: dict) -> None:
    """The Trainer v2.3.0 schema, then the core types inside it against Kubernetes 1.30's."""
    jsonschema.validate(m, SCHEMA)
    trainer = m["spec"]["trainer"]
    pod = m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"][
        "spec"
    ]["template"]["spec"]
    (node,) = pod["containers"]
    assert node["name"] == "node" and "env" not in node  # the node container's env only via trainer.env
    container = {
        "name": "node",
        "image": trainer["image"],
        "command": trainer["command"],
        "env": trainer["env"],
        "resources": trainer["resourcesPerNode"],
        "volumeMounts": node["volumeMounts"],
    }
    core = {k: v for k, v in pod.items() if k != "containers"} | {"containers": [container]}
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": core}, "1.30", strict=True
    )


def test_trainjob_manifest_follows_the_v2_api():
    m = trainjob_manifest(make_spec())
    validate_trainjob(m)
    spec = m["spec"]
    assert spec["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    t = spec["trainer"]
    assert (t["numNodes"], t["numProcPerNode"]) == (3, 8)
    assert t["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert {"name": "OVR_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in t["env"]
    assert not [e for e in t["env"] if e["name"].startswith("PET_")]  # reserved: the torch plugin sets them
    assert spec["activeDeadlineSeconds"] == 3600
    assert m["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "launcher-pod",
            "uid": "u-1",
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    bad = trainjob_manifest(make_spec())
    bad["spec"]["trainer"]["numNodez"] = 2
    with pytest.raises(jsonschema.ValidationError):  # the schema is closed: a typo would be pruned silently
        jsonschema.validate(bad, SCHEMA)


def test_stage_job_names_owner_deadline_model_secrets_and_claim(repo_root):
    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)
    env = {
        "OVR_POD_NAME": "ovr-run-abc-launch-rl",
        "OVR_POD_UID": "5f0c",
        "OVR_POD_NAMESPACE": "team-a",
        "OVR_POD_SERVICE_ACCOUNT": "ovr-pipeline",
        "OVR_TRAINER_IMAGE": "registry.local/ovr-project/ovr:0.1.0",
        "OVR_IMAGE_PULL_SECRETS": "mirror",
    }
    settings = JobSettings(
        run_id="run-1", s3_secret="team-s3", reward_secret="team-token", weights_claim="rwx", deadline_s=86400
    )
    ctx = RunContext.for_config(cfg, "20261206-013000-ab12", "mlflow-1")
    spec = stage_job_spec("rl", cfg, ctx, 4, 8, "runs/ovr-7b/sft-export/step-00001000", settings, environ=env)
    assert spec.namespace == "team-a" and spec.owner.uid == "5f0c" and spec.service_account == "ovr-pipeline"
    assert spec.image == "registry.local/ovr-project/ovr:0.1.0" and spec.image_pull_secrets == ["mirror"]
    assert spec.active_deadline_s == 86400 and (spec.nodes, spec.procs_per_node) == (4, 8)
    assert spec.secret_env == {
        "team-s3": {"access_key": "OVR_S3_ACCESS_KEY", "secret_key": "OVR_S3_SECRET_KEY"},
        "team-token": {"token": "OVR_REWARD_TOKEN"},
    }
    assert spec.claims == [ClaimMount(claim="rwx", mount_path=WEIGHTS_MOUNT)]
    assert spec.env["OVR__ROLLOUT__WEIGHTS_DIR"] == WEIGHTS_MOUNT and spec.field_env == {"OVR_POD_IP": "status.podIP"}
    script = spec.command[-1]
    assert "exec torchrun -m components.train rl" in script
    assert '--init-prefix "runs/ovr-7b/sft-export/step-00001000"' in script  # the model as a store prefix
    shipped = yaml.safe_load(spec.env["OVR_CONFIG_YAML"])
    assert shipped["model"]["path"] == cfg.model.path  # no folder of the launcher's filesystem
    assert (spec.env["OVR_RUN_ID"], spec.env["OVR_MLFLOW_RUN_ID"]) == (ctx.run_id, "mlflow-1")  # the run it joins
    assert spec.labels["ovr.dev/run-id"] == ctx.run_id
    validate_trainjob(trainjob_manifest(spec))
    # unique per run, stable for a retry of the same run, a DNS-1035 label of <= 48 characters
    long = "a-very-long-recipe-name-that-goes-on-and-on"
    names = {job_name(long, "rl", r) for r in ("run-1", "run-2")}
    assert len(names) == 2 and all(len(n) <= 48 for n in names)
    assert job_name(long, "rl", "run-1") == job_name(long, "rl", "run-1") != job_name(long, "sft", "run-1")
    settings = JobSettings(run_id="r", s3_secret="s", deadline_s=60)
    sft = stage_job_spec("sft", cfg, ctx, 2, 8, None, settings, environ=env)
    assert "team-token" not in sft.secret_env and not sft.claims and "--init-prefix" not in sft.command[-1]


@pytest.fixture()
def api(kmock):
    kmock.resources[PODS] = kmock.ResourceInfo(namespaced=True, kind="Pod")
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=str(kmock.url).rstrip("/")))
    yield kmock, client
    client.close()


async def test_discovery_prefers_trainjob_then_pytorchjob(api):
    kmock, client = api
    with pytest.raises(NoJobApi, match="Kubeflow Trainer v2"):
        await asyncio.to_thread(discover, client)
    kmock.resources[PYTORCHJOBS] = kmock.ResourceInfo(namespaced=True, kind="PyTorchJob")
    assert await asyncio.to_thread(discover, client) is PYTORCHJOB
    kmock.resources[TRAINJOBS] = kmock.ResourceInfo(namespaced=True, kind="TrainJob")
    assert await asyncio.to_thread(discover, client) is TRAINJOB


def trainjob_steps(kmock, name: str, steps: list[dict]):
    def step(request):
        job = kmock.objects[kmock.resource(TRAINJOBS), NS, request.name]
        if steps:
            s = steps.pop(0)
            job.patch({"status": s["status"]})
            for p in s.get("pods", []):
                kmock.objects[PODS, NS, p["metadata"]["name"]] = p
        return job.raw

    kmock["get", kmock.resource(TRAINJOBS), kmock.name(name)] << step


def node_pod(name: str, exit_code: int, message: str = "") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"jobset.sigs.k8s.io/jobset-name": "ovr-sft", "jobset.sigs.k8s.io/replicatedjob-name": "node"},
        },
        "status": {
            "phase": "Failed" if exit_code else "Succeeded",
            "containerStatuses": [
                {
                    "name": "node",
                    "image": "ovr",
                    "imageID": "sha",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}},
                }
            ],
        },
    }


def cond(type_: str, message: str = "") -> dict:
    return {
        "type": type_,
        "status": "True",
        "reason": type_,
        "message": message,
        "lastTransitionTime": "2026-12-02T10:00:00Z",
    }


async def test_trainjob_followed_to_complete_and_deleted(api):
    kmock, client = api
    kmock.resources[TRAINJOBS] = kmock.ResourceInfo(namespaced=True, kind="TrainJob")
    trainjob_steps(
        kmock,
        "ovr-sft",
        [
            {"status": {"jobsStatus": [{"name": "node", "active": 3}]}},
            {
                "status": {
                    "conditions": [cond("Complete", "TrainJob completed")],
                    "jobsStatus": [{"name": "node", "succeeded": 3}],
                }
            },
        ],
    )
    events: list = []
    kind = await asyncio.to_thread(run_job, make_spec(), api_client=client, poll_s=0.01, on_status=events.append)
    assert kind is TRAINJOB  # found by discovery
    assert [e.phase for e in events] == ["Running", "Succeeded", "Deleted"]
    assert "TrainJob ml/ovr-sft Succeeded" in str(events[1])
    (create,) = [r for r in list(kmock) if r.method.value.upper() == "POST"]
    assert create.url.path.endswith("/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs")
    validate_trainjob(create.data)


async def test_trainjob_failure_names_the_failed_node_pod(api):
    kmock, client = api
    kmock.resources[TRAINJOBS] = kmock.ResourceInfo(namespaced=True, kind="TrainJob")
    kmock["get", kmock.resource(PODS), kmock.subresource("log")] << (lambda req: b"NCCL error: timeout\n")
    trainjob_steps(
        kmock,
        "ovr-sft",
        [
            {
                "status": {"conditions": [cond("Failed", "jobset failed")]},
                "pods": [node_pod("ovr-sft-node-0-0-x", 0), node_pod("ovr-sft-node-0-1-y", 1, "boom")],
            }
        ],
    )
    with pytest.raises(JobFailed) as err:
        await asyncio.to_thread(
            run_job, make_spec(), kind="trainjob", api_client=client, poll_s=0.01, on_status=lambda e: None
        )
    (pod,) = err.value.pods
    assert (pod.pod, pod.exit_code, pod.message) == ("ovr-sft-node-0-1-y", 1, "boom") and "NCCL error" in pod.log_tail
    assert trainjob_status({"status": {"conditions": [cond("Suspended")]}}).phase == "Suspended"


LAUNCHER = """
import sys
import kubernetes
from components.runtime import _raise_on_sigterm
from ovr.k8s.jobs import run_job
from ovr.k8s.spec import TrainerJobSpec
_raise_on_sigterm()
api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=sys.argv[1]))
spec = TrainerJobSpec(name="ovr-cancel", namespace="ml", image="ovr:1", command=["true"], nodes=2)
print("following", flush=True)
run_job(spec, kind="trainjob", api_client=api, poll_s=0.05, on_status=lambda e: print(e, flush=True))
"""


async def test_cancelled_launcher_deletes_its_job(api, tmp_path):
    """A KFP cancel sends the launcher SIGTERM: the job must go with it (a real subprocess)."""
    kmock, _ = api
    kmock.resources[TRAINJOBS] = kmock.ResourceInfo(namespaced=True, kind="TrainJob")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(kmock.url).rstrip("/")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(r.method.value.upper() == "POST" for r in list(kmock)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    deletes = [r for r in list(kmock) if r.method.value.upper() == "DELETE"]
    assert deletes and deletes[0].url.path.endswith("/trainjobs/ovr-cancel") and "Deleted" in out
