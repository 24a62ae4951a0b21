"""Multi-node launch as a Kubeflow job (Trainer v2 TrainJob, Training Operator v1 PyTorchJob): the
manifests, API discovery, and the job's life against an emulated API.

No real kube-apiserver (nor the training operator) can run here, so the API is **emulated** by
``kmock``'s ``KubernetesEmulator`` (a real aiohttp server on 127.0.0.1 keeping objects in memory),
which the official ``kubernetes`` client talks to over HTTP. The controller's part (status
conditions, pods, pod logs) is played by ``OperatorEmulation``: each GET of the job applies the next
scripted step, so every transition is observed exactly once whatever the timing. TrainJob manifests
are checked against the Trainer v2.3.0 schema in ``crds/`` and their core parts against Kubernetes'.
"""

from __future__ import annotations

import asyncio
import functools

import kmock as kmocklib
import kubernetes
import kubernetes_validate
import pytest
from pydantic import ValidationError

from ovr.k8s.jobs import run_job
from ovr.k8s.kinds import (
    PYTORCHJOB,
    SPEC_HASH_ANNOTATION,
)
from ovr.k8s.kinds import (
    pytorchjob_manifest as manifest,
)
from ovr.k8s.kinds import (
    pytorchjob_status as job_status,
)
from ovr.k8s.spec import TrainerJobSpec as PyTorchJobSpec
from ovr.k8s.status import JobError as PyTorchJobError
from ovr.k8s.status import JobFailed as PyTorchJobFailed
from ovr.k8s.status import JobTimeout as PyTorchJobTimeout

run_pytorchjob = functools.partial(run_job, kind=PYTORCHJOB)

JOBS, PODS, NS = "kubeflow.org/v1/pytorchjobs", "v1/pods", "ml"


def make_spec(**kw) -> PyTorchJobSpec:
    base = dict(
        name="ovr-sft",
        namespace=NS,
        image="ghcr.io/ovr/ovr:1.0",
        nodes=3,
        gpus_per_node=8,
        command=["torchrun", "-m", "ovr", "sft", "--recipe", "recipes/ovr-7b.yaml"],
        cpu="48",
        memory="900Gi",
        env={"OVR_RUN": "r1"},
        secret_env={"ovr-s3": {"access_key": "OVR_S3_ACCESS_KEY", "secret_key": "OVR_S3_SECRET_KEY"}},
        node_selector={"nvidia.com/gpu.product": "H100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        shm_size="64Gi",
        service_account="ovr-runner",
        labels={"ovr.dev/run": "r1"},
    )
    return PyTorchJobSpec(**{**base, **kw})


# ------------------------------------------------------------------------------------ manifest


def test_manifest_replicas_resources_env_and_scheduling():
    m = manifest(make_spec())
    assert (m["apiVersion"], m["kind"], m["metadata"]["namespace"]) == ("kubeflow.org/v1", "PyTorchJob", NS)
    assert m["spec"]["nprocPerNode"] == "8"
    reps = m["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in reps.items()} == {"Master": 1, "Worker": 2}
    for rep in reps.values():
        assert rep["restartPolicy"] == "OnFailure"
        pod = rep["template"]["spec"]
        (c,) = pod["containers"]
        assert c["name"] == "pytorch" and c["command"][0] == "torchrun"
        assert c["resources"] == {
            "requests": {"cpu": "48", "memory": "900Gi", "nvidia.com/gpu": "8"},
            "limits": {"memory": "900Gi", "nvidia.com/gpu": "8"},
        }
        assert {"name": "OVR_RUN", "value": "r1"} in c["env"]
        assert {
            "name": "OVR_S3_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": "ovr-s3", "key": "secret_key"}},
        } in c["env"]
        assert c["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
        assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
        assert pod["serviceAccountName"] == "ovr-runner"
        # The pod template is a valid core/v1 PodSpec (checked against the Kubernetes 1.30 schema).
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod}, "1.30", strict=True
        )


def test_manifest_single_node_cpu_and_spec_hash():
    one = manifest(make_spec(nodes=1, gpus_per_node=0, shm_size=None, restart_policy="Never"))
    assert list(one["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    assert one["spec"]["nprocPerNode"] == "1"
    c = one["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in c["resources"]["limits"] and "volumeMounts" not in c
    h = lambda **kw: manifest(make_spec(**kw))["metadata"]["annotations"][SPEC_HASH_ANNOTATION]  # noqa: E731
    assert h() == h() and h() != h(nodes=4)


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "SFT_job"},
        {"name": "x" * 49},
        {"nodes": 0},
        {"memory": "lots"},
        {"command": []},
        {"env": {"1BAD": "x"}},
        {"env": {"OVR_S3_ACCESS_KEY": "inline"}},
        {"gpus_per_node": -1},
        {"env": {"PET_NNODES": "4"}},
        {"field_env": {"OVR_RUN": "status.podIP"}},
    ],
)
def test_bad_spec_is_rejected(bad):
    with pytest.raises(ValidationError):
        make_spec(**bad)


def test_job_status_from_operator_conditions():
    job = lambda conds: {"metadata": {"namespace": NS, "name": "j"}, "status": {"conditions": conds}}  # noqa: E731
    assert job_status(job([])) is None and job_status({"metadata": {}}) is None
    assert job_status(job(conditions("Created", "Running"))).phase == "Running"
    done = job_status(job(conditions("Created", "Running", "Succeeded", message="ok")))
    assert (done.phase, done.message, done.job, done.time) == ("Succeeded", "ok", "ml/j", "2026-11-02T10:00:02Z")
    # Failed wins even when the operator lists it before a later condition.
    assert job_status(job(conditions("Created", "Failed") + conditions("Restarting")[:1])).phase == "Failed"


# ------------------------------------------------------------------------------------ emulated API


def conditions(*types: str, message: str = "") -> list[dict]:
    """Status conditions as the training operator writes them (Running turns False once finished)."""
    done = {"Succeeded", "Failed"} & set(types)
    return [
        {
            "type": t,
            "status": "False" if (t == "Running" and done) else "True",
            "reason": f"PyTorchJob{t}",
            "message": message if t in done else f"PyTorchJob ovr-sft is {t.lower()}.",
            "lastTransitionTime": f"2026-11-02T10:00:0{i}Z",
        }
        for i, t in enumerate(types)
    ]


def pod(name: str, replica: str, exit_code: int | None = None, message: str = "") -> dict:
    state = (
        {"running": {}}
        if exit_code is None
        else {
            "terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed", "message": message}
        }
    )
    phase = "Running" if exit_code is None else ("Failed" if exit_code else "Succeeded")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"training.kubeflow.org/job-name": "ovr-sft", "training.kubeflow.org/replica-type": replica},
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "pytorch",
                    "image": "ovr",
                    "imageID": "sha",
                    "ready": exit_code is None,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        },
    }


class OperatorEmulation:
    """Plays the training operator: each GET of the job applies the next step (conditions + pods).

    It acts only on a job it owns: one created fresh (no status yet) or, with ``owned=True``, the
    pre-existing one; a foreign job (e.g. an old Failed one awaiting replacement) is left alone.
    """

    def __init__(self, kmock, steps: list[dict], owned: bool = False):
        self.kmock, self.steps, self.owned = kmock, list(steps), owned

    def __call__(self, request):
        key = (kmocklib.resource(JOBS), NS, request.name)  # membership needs a parsed resource
        if key not in self.kmock.objects or self.kmock.objects[key].deleted:
            raise kmocklib.KubernetesObjectNotFoundError()
        job = self.kmock.objects[key]
        self.owned = self.owned or "status" not in job
        if self.owned and self.steps:
            step = self.steps.pop(0)
            if "http_error" in step:  # the API server failing this request (e.g. while restarting)
                raise kmocklib.KubernetesError(status=step["http_error"], reason="ServiceUnavailable")
            job.patch({"status": {"conditions": step["conditions"]}})
            for p in step.get("pods", []):
                self.kmock.objects[PODS, NS, p["metadata"]["name"]] = p
        return job.raw


@pytest.fixture()
def cluster(kmock):
    """The emulated API server with the PyTorchJob and Pod resources, pod logs, and a client for it."""
    kmock.resources[JOBS] = kmock.ResourceInfo(namespaced=True, kind="PyTorchJob")
    kmock.resources[PODS] = kmock.ResourceInfo(namespaced=True, kind="Pod")
    logs = {
        "ovr-sft-worker-1": "step 41 loss 2.31\nTraceback (most recent call last):\n"
        "torch.OutOfMemoryError: CUDA out of memory\n"
    }
    kmock["get", kmock.resource(PODS), kmock.subresource("log")] << (
        lambda req: logs.get(req.name, f"log of {req.name}\n").encode()
    )
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=str(kmock.url).rstrip("/")))

    def script(steps: list[dict], owned: bool = False) -> OperatorEmulation:
        emu = OperatorEmulation(kmock, steps, owned)
        kmock["get", kmock.resource(JOBS), kmock.name("ovr-sft")] << emu
        return emu

    yield kmock, api, script
    api.close()


def calls(kmock, method: str, *, path_end: str = "") -> list:
    return [r for r in list(kmock) if r.method.value.upper() == method and r.url.path.endswith(path_end)]


def running_pods():
    return [pod("ovr-sft-master-0", "master"), pod("ovr-sft-worker-0", "worker"), pod("ovr-sft-worker-1", "worker")]


async def test_job_created_followed_to_succeeded_and_deleted(cluster):
    kmock, api, script = cluster
    script(
        [
            {"conditions": conditions("Created"), "pods": running_pods()},
            {"conditions": conditions("Created", "Running")},
            {"conditions": conditions("Created", "Running", "Succeeded", message="done")},
        ]
    )
    events: list = []
    spec = make_spec()
    await asyncio.to_thread(run_pytorchjob, spec, api_client=api, poll_s=0.01, on_status=events.append)

    assert [e.phase for e in events] == ["Created", "Running", "Succeeded", "Deleted"]
    assert events[1].time == "2026-11-02T10:00:01Z" and "ml/ovr-sft Running" in str(events[1])
    (create,) = calls(kmock, "POST", path_end="/namespaces/ml/pytorchjobs")
    assert create.data == manifest(spec)  # the body sent is exactly the manifest
    workers = create.data["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert workers["replicas"] == 2
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    (delete,) = calls(kmock, "DELETE", path_end="/pytorchjobs/ovr-sft")
    assert delete.params["propagationPolicy"] == "Foreground"
    assert kmock.objects[JOBS, NS, "ovr-sft"].deleted


async def test_failure_carries_the_pods_error_and_still_cleans_up(cluster):
    kmock, api, script = cluster
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    failed = [
        pod("ovr-sft-master-0", "master", exit_code=0),
        pod("ovr-sft-worker-0", "worker"),
        pod("ovr-sft-worker-1", "worker", exit_code=1, message=oom),
    ]
    script(
        [
            {"conditions": conditions("Created"), "pods": running_pods()},
            {"conditions": conditions("Created", "Running")},
            {
                "conditions": conditions(
                    "Created",
                    "Running",
                    "Failed",
                    message="PyTorchJob ovr-sft is failed because 1 Worker replica(s) failed.",
                ),
                "pods": failed,
            },
        ]
    )
    events: list = []
    with pytest.raises(PyTorchJobFailed) as info:
        await asyncio.to_thread(
            run_pytorchjob, make_spec(), api_client=api, poll_s=0.01, on_status=events.append, log_lines=20
        )

    err = info.value
    assert "1 Worker replica(s) failed" in err.message
    (bad,) = err.pods  # only the pod with a non-zero exit
    assert (bad.pod, bad.replica, bad.exit_code) == ("ovr-sft-worker-1", "worker", 1)
    assert bad.message == oom and "Traceback" in bad.log_tail
    assert "ovr-sft-worker-1" in str(err) and "CUDA out of memory" in str(err)
    (log,) = calls(kmock, "GET", path_end="/pods/ovr-sft-worker-1/log")
    assert log.params == {"container": "pytorch", "tailLines": "20"}
    assert [e.phase for e in events] == ["Created", "Running", "Failed", "Deleted"]
    assert len(calls(kmock, "DELETE", path_end="/pytorchjobs/ovr-sft")) == 1


async def test_timeout_raises_and_cleans_up(cluster):
    kmock, api, script = cluster
    script([{"conditions": conditions("Created")}, {"conditions": conditions("Created", "Running")}])
    with pytest.raises(PyTorchJobTimeout, match="last: Running"):
        await asyncio.to_thread(
            run_pytorchjob, make_spec(), api_client=api, poll_s=0.02, timeout_s=0.3, on_status=lambda e: None
        )
    (delete,) = calls(kmock, "DELETE", path_end="/pytorchjobs/ovr-sft")
    assert delete.params["propagationPolicy"] == "Foreground"


async def test_transient_api_errors_while_following_are_retried(cluster):
    _kmock, api, script = cluster
    script(
        [
            {"conditions": conditions("Created", "Running")},
            {"http_error": 503},
            {"http_error": 503},
            {"conditions": conditions("Created", "Running", "Succeeded")},
        ]
    )
    events: list = []
    await asyncio.to_thread(run_pytorchjob, make_spec(), api_client=api, poll_s=0.01, on_status=events.append)
    assert [e.phase for e in events] == ["Running", "ApiError", "ApiError", "Succeeded", "Deleted"]
    assert "retry 2/10" in events[2].message


async def test_keep_leaves_the_job(cluster):
    kmock, api, script = cluster
    script([{"conditions": conditions("Created", "Running", "Succeeded")}])
    await asyncio.to_thread(
        run_pytorchjob, make_spec(), api_client=api, poll_s=0.01, keep=True, on_status=lambda e: None
    )
    assert not calls(kmock, "DELETE") and not kmock.objects[JOBS, NS, "ovr-sft"].deleted


async def test_conflict_with_same_spec_adopts_the_running_job(cluster):
    kmock, api, script = cluster
    spec = make_spec()
    kmock.objects[JOBS, NS, "ovr-sft"] = {**manifest(spec), "status": {"conditions": conditions("Created", "Running")}}
    script([{"conditions": conditions("Created", "Running", "Succeeded")}], owned=True)
    events: list = []
    await asyncio.to_thread(run_pytorchjob, spec, api_client=api, poll_s=0.01, on_status=events.append)
    assert [e.phase for e in events] == ["Adopted", "Succeeded", "Deleted"]
    assert len(calls(kmock, "POST")) == 1  # the 409 attempt only: no re-creation
    assert len(calls(kmock, "DELETE")) == 1  # cleanup only


async def test_conflict_with_failed_job_replaces_it(cluster):
    kmock, api, script = cluster
    spec = make_spec()
    old = manifest(spec)
    kmock.objects[JOBS, NS, "ovr-sft"] = {**old, "status": {"conditions": conditions("Created", "Failed")}}
    script([{"conditions": conditions("Created", "Running", "Succeeded")}])
    events: list = []
    await asyncio.to_thread(run_pytorchjob, spec, api_client=api, poll_s=0.01, on_status=events.append)
    assert [e.phase for e in events] == ["Replaced", "Deleted", "Succeeded", "Deleted"]
    methods = [r.method.value.upper() for r in list(kmock) if "/pytorchjobs" in r.url.path]
    assert methods[:4] == ["POST", "GET", "DELETE", "GET"] and methods.count("POST") == 2
    assert kmock.objects[JOBS, NS, "ovr-sft"].deleted


async def test_cluster_without_the_training_operator_is_a_clear_error(cluster):
    kmock, api, _ = cluster

    def no_crd(request):
        raise kmocklib.KubernetesResourceNotFoundError()

    kmock["post", kmock.resource(JOBS)] << no_crd
    with pytest.raises(PyTorchJobError, match="Training Operator v1 installed"):
        await asyncio.to_thread(run_pytorchjob, make_spec(), api_client=api, poll_s=0.01, on_status=lambda e: None)
