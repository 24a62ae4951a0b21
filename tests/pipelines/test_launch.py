"""The launcher against what a real cluster does to a job: a Trainer that would prune the manifest,
pods that never start, a Kueue queue that does not admit.

The API server is kmock's emulator plus :mod:`trainer_api` (TrainJob field validation by a Trainer
release's served fields); the controller's status and the pods' states are scripted per GET of the
job, as in test_trainjob.py. No scheduler, kubelet or Kueue runs: their verdicts are the scripted
pod conditions, container waiting states and the job's Suspended condition.
"""

from __future__ import annotations

import asyncio

import kubernetes
import pytest
from trainer_api import PODS, TRAINJOBS, serve_trainer

from ovr.k8s.jobs import run_job
from ovr.k8s.kinds import trainjob_manifest
from ovr.k8s.pods import FollowLimits
from ovr.k8s.spec import QUEUE_LABEL
from ovr.k8s.status import JobError, JobStuck
from tests.pipelines.test_trainjob import NS, cond, make_spec, trainjob_steps


@pytest.fixture()
def api(kmock):
    """The emulated API server with pods, and a kubernetes client for it."""
    kmock.resources[PODS] = kmock.ResourceInfo(namespaced=True, kind="Pod")
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=str(kmock.url).rstrip("/")))
    yield kmock, client
    client.close()


def pending_pod(name: str, *, scheduled: tuple[str, str] | None = None, waiting: tuple[str, str] | None = None):
    """A node pod as the kubelet/scheduler leave it: Unschedulable, or a container waiting for a reason."""
    status: dict = {"phase": "Pending", "conditions": []}
    if scheduled:
        status["conditions"].append(
            {"type": "PodScheduled", "status": "False", "reason": scheduled[0], "message": scheduled[1]}
        )
    if waiting:
        status["containerStatuses"] = [
            {
                "name": "node",
                "image": "ghcr.io/ovr/ovr:1.0",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": waiting[0], "message": waiting[1]}},
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"jobset.sigs.k8s.io/jobset-name": "ovr-sft", "jobset.sigs.k8s.io/replicatedjob-name": "node"},
        },
        "status": status,
    }


def deleted(kmock) -> bool:
    return kmock.objects[kmock.resource(TRAINJOBS), NS, "ovr-sft"].deleted


async def test_a_trainer_that_would_prune_the_manifest_refuses_it(api):
    """Trainer v2.1 serves v1alpha1 TrainJob without runtimePatches/activeDeadlineSeconds: created with
    the default field validation the job would lose its volumes, tolerations and deadline silently."""
    kmock, client = api
    serve_trainer(kmock, "v2.1.0")
    with pytest.raises(JobError, match=r"spec.activeDeadlineSeconds, spec.runtimePatches.*Trainer >= v2.2"):
        await asyncio.to_thread(run_job, make_spec(), api_client=client, poll_s=0.01, on_status=lambda e: None)
    key = (kmock.resource(TRAINJOBS), NS, "ovr-sft")
    assert key not in kmock.objects or kmock.objects[key].deleted  # never stored


STUCK = [
    (
        {"scheduled": ("Unschedulable", "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")},
        r"Unschedulable for \d+ s: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu.*gpus_per_node",
    ),
    (
        {"waiting": ("ImagePullBackOff", 'Back-off pulling image "ghcr.io/ovr/ovr:1.0"')},
        r"ImagePullBackOff.*Back-off pulling image.*pull secrets",
    ),
    (
        {"waiting": ("CreateContainerConfigError", 'secret "ovr-s3" not found')},
        r'CreateContainerConfigError.*secret "ovr-s3" not found.*s3_secret',
    ),
]


@pytest.mark.parametrize("state, message", STUCK, ids=["unschedulable", "image-pull", "missing-secret"])
async def test_a_pod_that_cannot_start_fails_the_launch_with_its_reason(api, state, message):
    """Pending pods keep a job Running to the controller; the launcher fails it after the grace period
    (here 0.1 s) with the scheduler's or kubelet's message and what to change, and deletes it."""
    kmock, client = api
    serve_trainer(kmock)
    pods = [pending_pod("ovr-sft-node-0-0-a", **state), pending_pod("ovr-sft-node-0-1-b", **state)]
    trainjob_steps(kmock, "ovr-sft", [{"status": {"jobsStatus": [{"name": "node", "active": 2}]}, "pods": pods}])
    limits = FollowLimits(unschedulable_s=0.1, waiting=dict.fromkeys(FollowLimits().waiting, 0.1))
    events: list = []
    with pytest.raises(JobStuck, match=message) as err:
        await asyncio.to_thread(
            run_job, make_spec(), api_client=client, poll_s=0.02, timeout_s=30, limits=limits, on_status=events.append
        )
    assert "pod ovr-sft-node-0-0-a" in str(err.value)
    assert [e.phase for e in events] == ["Running", "Deleted"] and deleted(kmock)


async def test_a_pod_that_recovers_within_its_grace_is_left_alone(api):
    kmock, client = api
    serve_trainer(kmock)
    pulling = pending_pod("ovr-sft-node-0-0-a", waiting=("ErrImagePull", "timeout"))
    running = {**pulling, "status": {"phase": "Running"}}
    trainjob_steps(
        kmock,
        "ovr-sft",
        [{"status": {"jobsStatus": [{"name": "node", "active": 1}]}, "pods": [pulling]}, {"status": {}}] * 3
        + [{"status": {"jobsStatus": [{"name": "node", "active": 1}]}, "pods": [running]}]
        + [{"status": {"conditions": [cond("Complete")]}}],
    )
    events: list = []
    await asyncio.to_thread(run_job, make_spec(), api_client=client, poll_s=0.01, on_status=events.append)
    assert [e.phase for e in events] == ["Running", "Succeeded", "Deleted"]


def suspended(message: str = "TrainJob is suspended") -> dict:
    return {"status": {"conditions": [{**cond("Suspended", message), "reason": "Suspended"}]}}


async def test_a_queued_job_waits_for_admission_and_fails_after_the_bound(api):
    """The queue is a label on the job only (Kueue's webhook suspends the job; pods must not carry it
    or Kueue's pod integration would queue them a second time); a job not admitted in time fails."""
    kmock, client = api
    serve_trainer(kmock)
    trainjob_steps(kmock, "ovr-sft", [suspended()])
    spec = make_spec(queue="gpu-queue")
    body = trainjob_manifest(spec)
    assert body["metadata"]["labels"][QUEUE_LABEL] == "gpu-queue"
    patch = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert QUEUE_LABEL not in patch["template"]["spec"]["template"]["metadata"]["labels"]
    events: list = []
    with pytest.raises(JobStuck, match=r"still suspended after .*not admitted by Kueue \(queue gpu-queue\)"):
        await asyncio.to_thread(
            run_job,
            spec,
            api_client=client,
            poll_s=0.02,
            timeout_s=30,
            limits=FollowLimits(admission_s=0.2),
            on_status=events.append,
        )
    assert events[0].phase == "Suspended" and "waiting for admission in queue gpu-queue" in events[0].message
    assert deleted(kmock)


async def test_an_admitted_job_runs_on(api):
    kmock, client = api
    resumed = {**cond("Suspended", "TrainJob is resumed"), "status": "False", "reason": "Resumed"}
    serve_trainer(kmock)
    trainjob_steps(
        kmock,
        "ovr-sft",
        [suspended()] * 3
        + [{"status": {"conditions": [resumed], "jobsStatus": [{"name": "node", "active": 3}]}}]
        + [{"status": {"conditions": [resumed, cond("Complete")]}}],
    )
    events: list = []
    await asyncio.to_thread(
        run_job,
        make_spec(queue="gpu-queue"),
        api_client=client,
        poll_s=0.01,
        limits=FollowLimits(admission_s=30),
        on_status=events.append,
    )
    assert [e.phase for e in events] == ["Suspended", "Running", "Succeeded", "Deleted"]


async def test_pods_the_account_cannot_list_turn_the_watch_off_once(api):
    kmock, client = api
    serve_trainer(kmock)
    del kmock.resources[PODS]  # the API answers 404 for pods
    trainjob_steps(
        kmock,
        "ovr-sft",
        [{"status": {"jobsStatus": [{"name": "node", "active": 3}]}}] * 3
        + [{"status": {"conditions": [cond("Complete")]}}],
    )
    events: list = []
    await asyncio.to_thread(run_job, make_spec(), api_client=client, poll_s=0.01, on_status=events.append)
    assert [e.phase for e in events] == ["Running", "PodsUnreadable", "Succeeded", "Deleted"]


def test_scratch_runtime_class_and_rdma_reach_the_job_pods():
    """Checkpoints and model copies go to a scratch volume with its size requested (not the container's
    writable layer, which DiskPressure evicts); RDMA devices reach every pod; a runtime class reaches
    PyTorchJob pods, while a TrainJob's is its ClusterTrainingRuntime's (runtimePatches cannot carry one)."""
    from ovr.k8s.kinds import pytorchjob_manifest
    from tests.pipelines.test_trainjob import validate_trainjob

    with pytest.raises(ValueError, match="ClusterTrainingRuntime"):
        trainjob_manifest(make_spec(runtime_class="nvidia"))
    master = pytorchjob_manifest(make_spec(runtime_class="nvidia"))["spec"]["pytorchReplicaSpecs"]["Master"]
    assert master["template"]["spec"]["runtimeClassName"] == "nvidia"
    extra = {"extra_resources": {"rdma/ib": "1"}, "scratch_size": "800Gi"}
    m = trainjob_manifest(make_spec(**extra))
    validate_trainjob(m)  # the Trainer v2.3 schema and Kubernetes 1.30's core types
    res = m["spec"]["trainer"]["resourcesPerNode"]
    assert res["requests"]["ephemeral-storage"] == "800Gi" and res["limits"]["rdma/ib"] == res["requests"]["rdma/ib"]
    pod = m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]
    pod = pod["spec"]["template"]["spec"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "800Gi"}} in pod["volumes"]
    assert {"name": "scratch", "mountPath": "/scratch"} in pod["containers"][0]["volumeMounts"]
    # on a storage class (local NVMe, say): a claim per pod, so no ephemeral-storage request
    m = trainjob_manifest(make_spec(**extra, scratch_storage_class="local-nvme"))
    validate_trainjob(m)
    assert "ephemeral-storage" not in m["spec"]["trainer"]["resourcesPerNode"]["requests"]
    pod = m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]
    (vol,) = [v for v in pod["spec"]["template"]["spec"]["volumes"] if v["name"] == "scratch"]
    claim = vol["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "local-nvme" and claim["resources"]["requests"]["storage"] == "800Gi"


INSTALL_PLACEMENT = {
    "OVR_TRAINER_IMAGE": "registry.local/ovr-project/ovr:0.1.0",
    "OVR_IMAGE_PULL_SECRETS": "mirror, backup",
    "OVR_TRAINER_NODE_SELECTOR": '{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}',
    "OVR_TRAINER_TOLERATIONS": '[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]',
    "OVR_TRAINER_RUNTIME": "torch-distributed-rdma",
    "OVR_TRAINER_RESOURCES": '{"rdma/rdma_shared_device_a": "1"}',
    "OVR_SCRATCH_SIZE": "800Gi",
    "NCCL_SOCKET_IFNAME": "eth0",
    "NCCL_IB_HCA": "mlx5",
    "NCCL_IB_DISABLE": "0",
}


def test_the_install_places_the_job_pods(repo_root):
    """Node selector, tolerations, runtime, RDMA devices, scratch and NCCL transport from the install's
    ConfigMap reach the job; tokens of services that may run without auth are optional Secret refs."""
    from components.jobs import JobSettings, stage_job_spec
    from components.settings import SCRATCH_MOUNT
    from ovr.config import load_config
    from ovr.context import RunContext
    from tests.pipelines.test_trainjob import validate_trainjob

    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)
    settings = JobSettings(
        run_id="r", s3_secret="ovr-s3", mlflow_secret="ovr-mlflow", reward_secret="ovr-reward", deadline_s=3600
    )
    run, queued = RunContext.for_config(cfg, "r1"), settings.model_copy(update={"queue": "gpu"})
    spec = stage_job_spec("rl", cfg, run, 4, 8, None, queued, INSTALL_PLACEMENT)
    assert spec.image == INSTALL_PLACEMENT["OVR_TRAINER_IMAGE"] and spec.image_pull_secrets == ["mirror", "backup"]
    assert spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert [t.key for t in spec.tolerations] == ["nvidia.com/gpu", "dedicated"]
    assert spec.runtime == "torch-distributed-rdma" and spec.queue == "gpu"
    assert spec.extra_resources == {"rdma/rdma_shared_device_a": "1"} and spec.scratch_size == "800Gi"
    assert {k: spec.env[k] for k in ("NCCL_SOCKET_IFNAME", "NCCL_IB_HCA", "NCCL_IB_DISABLE")} == {
        "NCCL_SOCKET_IFNAME": "eth0",
        "NCCL_IB_HCA": "mlx5",
        "NCCL_IB_DISABLE": "0",
    }
    assert spec.scratch_path == SCRATCH_MOUNT  # the pods point their folders there (components.runtime.use_scratch)
    m = trainjob_manifest(spec)
    validate_trainjob(m)
    env = m["spec"]["trainer"]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert "optional" not in refs["OVR_S3_ACCESS_KEY"] and refs["OVR_REWARD_TOKEN"]["optional"] is True
    assert refs["MLFLOW_TRACKING_PASSWORD"]["optional"] is True


@pytest.mark.parametrize(
    "key, value",
    [
        ("OVR_TRAINER_TOLERATIONS", '[{"key": "a", "operator": "Maybe"}]'),
        ("OVR_TRAINER_NODE_SELECTOR", "gpu=h100"),
        ("OVR_TRAINER_RESOURCES", '{"rdma/ib": "lots"}'),
    ],
)
def test_a_bad_install_setting_names_its_key(key, value):
    from components.placement import InstallPlacement, PlacementError

    with pytest.raises(PlacementError, match=key):
        InstallPlacement.from_env({key: value})
