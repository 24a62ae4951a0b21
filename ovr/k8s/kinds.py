"""The job APIs a multi-node stage can run on, as a registry: Kubeflow Trainer v2 ``TrainJob`` first,
Training Operator v1 ``PyTorchJob`` where the cluster serves only that (:func:`discover`).

Each :class:`JobKind` knows its resource (group/version/plural), how to build its object from a
:class:`~ovr.k8s.spec.TrainerJobSpec` (a pure function), how to read a phase from its status, and
which labels and container name its controller gives the pods (for failure reports).

TrainJob (``trainer.kubeflow.org/v1alpha1``, the API of Kubeflow Trainer v2.2/v2.3): the
``torch-distributed`` ClusterTrainingRuntime runs ``trainer.command`` on ``numNodes`` pods and sets
``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``, ``PET_MASTER_PORT``,
which ``torchrun`` reads; pod-level settings (volumes, mounts, service account, pull secrets,
scheduling) travel as a ``runtimePatches`` entry owned by ``ovr.dev/launcher``.
PyTorchJob (``kubeflow.org/v1``): one Master and ``nodes - 1`` Workers; the operator sets
``MASTER_ADDR``/``MASTER_PORT``/``WORLD_SIZE``/``RANK`` and the ``PET_*`` variables from ``nprocPerNode``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ovr.k8s.spec import CLIENT_LABEL, NO_SIDECAR, QUEUE_LABEL, TRAINER_LABEL, TrainerJobSpec
from ovr.k8s.status import JobEvent, utc_now

SPEC_HASH_ANNOTATION = "ovr.dev/spec-hash"
PATCH_MANAGER = "ovr.dev/launcher"
TERMINAL = ("Succeeded", "Failed")


def spec_hash(job_spec: dict[str, Any]) -> str:
    """Short content hash of a job's ``spec`` (decides adopt vs replace on a name conflict)."""
    return hashlib.sha256(json.dumps(job_spec, sort_keys=True).encode()).hexdigest()[:16]


def _env(spec: TrainerJobSpec) -> list[dict]:
    env = [{"name": k, "value": v} for k, v in spec.env.items()]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": _secret_ref(spec, secret, key)}}
        for secret, keys in spec.secret_env.items()
        for key, var in keys.items()
    ]
    env += [{"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}} for var, path in spec.field_env.items()]
    return env


def _secret_ref(spec: TrainerJobSpec, secret: str, key: str) -> dict:
    return {"name": secret, "key": key} | ({"optional": True} if secret in spec.optional_secrets else {})


def _resources(spec: TrainerJobSpec) -> dict:
    requests = {k: v for k, v in (("cpu", spec.cpu), ("memory", spec.memory)) if v}
    limits = {"memory": spec.memory} if spec.memory else {}
    if spec.gpus_per_node:
        limits[spec.gpu_resource] = str(spec.gpus_per_node)
        requests[spec.gpu_resource] = str(spec.gpus_per_node)
    for name, quantity in spec.extra_resources.items():  # e.g. RDMA devices: extended resources go in both
        limits[name] = requests[name] = quantity
    if spec.scratch_size and not spec.scratch_storage_class:  # the emptyDir scratch counts as ephemeral storage
        requests["ephemeral-storage"] = spec.scratch_size
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _scratch_volume(spec: TrainerJobSpec) -> dict:
    if not spec.scratch_storage_class:
        return {"name": "scratch", "emptyDir": {"sizeLimit": spec.scratch_size}}
    claim = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": spec.scratch_storage_class,
        "resources": {"requests": {"storage": spec.scratch_size}},
    }
    return {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": claim}}}


def _volumes(spec: TrainerJobSpec) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts): /dev/shm, the scratch volume and the claims."""
    volumes, mounts = [], []
    if spec.shm_size:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if spec.scratch_size:
        volumes.append(_scratch_volume(spec))
        mounts.append({"name": "scratch", "mountPath": spec.scratch_path})
    for c in spec.claims:
        volumes.append({"name": c.volume, "persistentVolumeClaim": {"claimName": c.claim}})
        mounts.append({"name": c.volume, "mountPath": c.mount_path})
    return volumes, mounts


def _pod_settings(spec: TrainerJobSpec) -> dict:
    """Pod-level fields other than containers and volumes."""
    pod: dict[str, Any] = {}
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations]
    return pod


def _metadata(spec: TrainerJobSpec, job_spec: dict) -> dict:
    meta: dict[str, Any] = {
        "name": spec.name,
        "namespace": spec.namespace,
        "labels": {**spec.labels, "app.kubernetes.io/managed-by": "ovr"}
        | ({QUEUE_LABEL: spec.queue} if spec.queue else {}),
        "annotations": {SPEC_HASH_ANNOTATION: spec_hash(job_spec)},
    }
    if spec.owner is not None:
        meta["ownerReferences"] = [spec.owner.reference()]
    return meta


def trainjob_manifest(spec: TrainerJobSpec) -> dict[str, Any]:
    """The ``trainer.kubeflow.org/v1alpha1`` TrainJob for ``spec``.

    A ``runtimePatches`` pod patch has no ``runtimeClassName`` (Trainer v2.3's PodSpecPatch): the runtime
    class of TrainJob pods is the ClusterTrainingRuntime's, so a spec asking for one is refused here.
    """
    if spec.runtime_class:
        raise ValueError(
            f"a TrainJob cannot set runtimeClassName {spec.runtime_class!r} (Trainer's runtimePatches has no such "
            f"field): set it in the pod template of a ClusterTrainingRuntime and name that runtime instead of "
            f"{spec.runtime!r} (the install's OVR_TRAINER_RUNTIME)"
        )
    volumes, mounts = _volumes(spec)
    trainer = {
        "image": spec.image,
        "command": list(spec.command),
        "env": _env(spec),
        "numNodes": spec.nodes,
        "numProcPerNode": spec.procs_per_node,
        "resourcesPerNode": _resources(spec),
    }
    pod = _pod_settings(spec) | ({"volumes": volumes} if volumes else {})
    if mounts:
        pod["containers"] = [{"name": "node", "volumeMounts": mounts}]
    job_spec: dict[str, Any] = {
        "runtimeRef": {"name": spec.runtime, "apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime"},
        "trainer": trainer,
    }
    template = {"spec": pod, "metadata": pod_metadata(spec)}
    job_spec["runtimePatches"] = [
        {
            "manager": PATCH_MANAGER,
            "trainingRuntimeSpec": {
                "template": {
                    "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": template}}}]}
                }
            },
        }
    ]
    if spec.active_deadline_s:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_s
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": _metadata(spec, job_spec),
        "spec": job_spec,
    }


def pod_labels(spec: TrainerJobSpec) -> dict[str, str]:
    """The job's labels plus the two the chart's NetworkPolicies admit (ovr client, trainer) and Istio's opt-out."""
    return {
        **spec.labels,
        CLIENT_LABEL[0]: CLIENT_LABEL[1],
        TRAINER_LABEL[0]: TRAINER_LABEL[1],
        NO_SIDECAR[0]: NO_SIDECAR[1],
    }


def pod_metadata(spec: TrainerJobSpec) -> dict:
    """Metadata of the job's pod template: :func:`pod_labels` and Istio's opt-out annotation."""
    return {"labels": pod_labels(spec), "annotations": {NO_SIDECAR[0]: NO_SIDECAR[1]}}


def pytorchjob_manifest(spec: TrainerJobSpec) -> dict[str, Any]:
    """The ``kubeflow.org/v1`` PyTorchJob for ``spec``.

    >>> m = pytorchjob_manifest(TrainerJobSpec(name="sft", namespace="ml", image="ovr:1", command=["true"], nodes=2))
    >>> m["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
    1
    """
    volumes, mounts = _volumes(spec)
    container: dict[str, Any] = {
        "name": "pytorch",
        "image": spec.image,
        "command": list(spec.command),
        "env": _env(spec),
        "resources": _resources(spec),
        # Without a termination-log the container's last log lines become the termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod = {"containers": [container]} | ({"volumes": volumes} if volumes else {}) | _pod_settings(spec)
    if spec.runtime_class:
        pod["runtimeClassName"] = spec.runtime_class
    template = {"metadata": pod_metadata(spec), "spec": pod}
    counts = {"Master": 1, "Worker": spec.nodes - 1}
    replicas = {
        kind: {"replicas": n, "restartPolicy": spec.restart_policy, "template": template}
        for kind, n in counts.items()
        if n > 0
    }
    # cleanPodPolicy None keeps finished pods so a failure's logs can still be read; the launcher
    # deletes the job afterwards and the pods go with it.
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": spec.backoff_limit}
    if spec.active_deadline_s:
        run_policy["activeDeadlineSeconds"] = spec.active_deadline_s
    job_spec = {"nprocPerNode": str(spec.procs_per_node), "runPolicy": run_policy, "pytorchReplicaSpecs": replicas}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _metadata(spec, job_spec),
        "spec": job_spec,
    }


def _true_conditions(obj: dict) -> list[dict]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


def _event(obj: dict, phase: str, cond: dict | None) -> JobEvent:
    meta = obj.get("metadata", {})
    cond = cond or {}
    return JobEvent(
        job=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        phase=phase,
        time=cond.get("lastTransitionTime") or utc_now(),
        reason=cond.get("reason") or "",
        message=cond.get("message") or "",
        kind=obj.get("kind", ""),
    )


def pytorchjob_status(obj: dict[str, Any]) -> JobEvent | None:
    """Phase of a PyTorchJob: Failed and Succeeded win; otherwise the last True condition (None before any)."""
    conds = _true_conditions(obj)
    if not conds:
        return None
    pick = next((c for t in TERMINAL[::-1] for c in conds if c.get("type") == t), conds[-1])
    return _event(obj, pick.get("type", "Unknown"), pick)


def trainjob_status(obj: dict[str, Any]) -> JobEvent | None:
    """Phase of a TrainJob: Failed/Complete (-> Succeeded) conditions, else Running while a child Job
    has active pods, Suspended when suspended; None before the controller reports anything."""
    conds = {c.get("type"): c for c in _true_conditions(obj)}
    if "Failed" in conds:
        return _event(obj, "Failed", conds["Failed"])
    if "Complete" in conds:
        return _event(obj, "Succeeded", conds["Complete"])
    if "Suspended" in conds:
        return _event(obj, "Suspended", conds["Suspended"])
    jobs = (obj.get("status") or {}).get("jobsStatus") or []
    if any((j.get("active") or 0) > 0 for j in jobs):
        return _event(obj, "Running", None)
    return _event(obj, "Created", None) if jobs else None


@dataclass(frozen=True)
class JobKind:
    """One job API: its resource, object builder, status reader and the pods' labels."""

    group: str
    version: str
    plural: str
    kind: str
    manifest: Callable[[TrainerJobSpec], dict]
    status: Callable[[dict], JobEvent | None]
    job_label: str  # label the controller puts on the job's pods (value: the job name)
    replica_label: str  # label naming the pod's replica group
    container: str  # name of the trainer container in those pods
    installs: str  # what to install when the cluster lacks it
    requires: str = ""  # the release whose schema has every field of the manifest

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


TRAINJOB = JobKind(
    "trainer.kubeflow.org",
    "v1alpha1",
    "trainjobs",
    "TrainJob",
    trainjob_manifest,
    trainjob_status,
    "jobset.sigs.k8s.io/jobset-name",
    "jobset.sigs.k8s.io/replicatedjob-name",
    "node",
    "Kubeflow Trainer v2",
    "Kubeflow Trainer >= v2.2 (runtimePatches, activeDeadlineSeconds)",
)
PYTORCHJOB = JobKind(
    "kubeflow.org",
    "v1",
    "pytorchjobs",
    "PyTorchJob",
    pytorchjob_manifest,
    pytorchjob_status,
    "training.kubeflow.org/job-name",
    "training.kubeflow.org/replica-type",
    "pytorch",
    "the Kubeflow Training Operator v1",
    "the Kubeflow Training Operator >= v1.7",
)
KINDS: dict[str, JobKind] = {"trainjob": TRAINJOB, "pytorchjob": PYTORCHJOB}  # in order of preference


class NoJobApi(RuntimeError):
    """The cluster serves none of the job APIs ovr can launch."""


def served(api_client: k8s.ApiClient, kind: JobKind) -> bool:
    """Whether the API server lists ``kind``'s resource (API discovery)."""
    try:
        resources = k8s.CustomObjectsApi(api_client).get_api_resources(kind.group, kind.version)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return any(r.name == kind.plural for r in resources.resources or [])


def discover(api_client: k8s.ApiClient, prefer: str | None = None) -> JobKind:
    """The job API to use: ``prefer`` when given (and served), else TrainJob, else PyTorchJob."""
    order = [KINDS[prefer]] if prefer else list(KINDS.values())
    for kind in order:
        if served(api_client, kind):
            return kind
    wanted = " or ".join(f"{k.api_version} {k.plural} ({k.installs})" for k in order)
    raise NoJobApi(f"the cluster serves no {wanted}: install Kubeflow Trainer v2 (or the Training Operator)")
