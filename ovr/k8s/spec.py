"""What a multi-node stage asks of the cluster, independent of the job API that carries it.

:class:`TrainerJobSpec` is validated before anything is sent: a DNS-1035 name of at most 48
characters (Trainer v2 names the pods ``<name>-node-0-<i>``, the training operator
``<name>-worker-<i>``), quantities, env names, no variable set twice. ``ovr.k8s.kinds`` turns it
into a Kubeflow Trainer v2 ``TrainJob`` or a Training Operator v1 ``PyTorchJob``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
#: the labels the Helm chart's NetworkPolicies admit: every ovr client pod, and trainer pods (the only
#: ones let through to the rollout servers' NCCL weight-transfer ports). Every job pod carries both.
CLIENT_LABEL = ("ovr.dev/client", "true")
TRAINER_LABEL = ("ovr.dev/trainer", "true")
#: job pods stay out of an Istio mesh (label and annotation, as KFP does for pipeline pods): a sidecar
#: would never let a job pod finish, and NCCL between ranks must not go through a proxy
NO_SIDECAR = ("sidecar.istio.io/inject", "false")
#: the label Kueue reads on a job to queue it (its webhook then suspends the job until admission)
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_RESOURCE_NAME = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
MAX_NAME = 48


def current_namespace() -> str:
    """The namespace of the pod we run in (downward API env, else the service-account mount), else ``default``."""
    import os

    if os.environ.get("OVR_POD_NAMESPACE"):
        return os.environ["OVR_POD_NAMESPACE"]
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Toleration(_Strict):
    """A Kubernetes pod toleration (e.g. for tainted GPU nodes)."""

    key: str | None = Field(None, description="Taint key; empty with operator Exists tolerates every taint.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal (match value) or Exists.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, alias="tolerationSeconds", description="How long a NoExecute taint is tolerated."
    )


class ClaimMount(_Strict):
    """A PersistentVolumeClaim mounted into every replica (e.g. the weights claim the rollout replicas share)."""

    claim: str = Field(..., min_length=1, pattern=_DNS1123, description="Name of the claim in the job's namespace.")
    mount_path: str = Field(..., pattern=r"^/", description="Where the replicas see it.")
    volume: str = Field("weights", pattern=_DNS1123, description="Volume name inside the pod.")


class Owner(_Strict):
    """The object whose deletion takes the job with it (the launcher pod), via an ownerReference."""

    name: str = Field(..., min_length=1, description="Name of the owning pod.")
    uid: str = Field(..., min_length=1, description="UID of the owning pod.")
    kind: str = Field("Pod", description="Kind of the owner.")
    api_version: str = Field("v1", description="apiVersion of the owner.")

    def reference(self) -> dict:
        # blockOwnerDeletion needs delete rights on the owner's finalizers; the pod is not the job's controller
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }


class TrainerJobSpec(_Strict):
    """What a multi-node stage needs from the cluster; ``ovr.k8s.kinds`` turns it into a job object."""

    name: str = Field(
        ...,
        max_length=MAX_NAME,
        pattern=_DNS1035,
        description="Job name (DNS-1035 label, <= 48 chars: the pods' names are derived from it).",
    )
    namespace: str = Field(default_factory=current_namespace, pattern=_DNS1123, description="Namespace.")
    image: str = Field(..., min_length=1, description="Container image of every replica (the ovr image).")
    command: list[str] = Field(..., min_length=1, description="Container command, e.g. torchrun -m ovr ...")
    nodes: int = Field(1, ge=1, description="Pods in total (node rank 0 is the rendezvous master).")
    gpus_per_node: int = Field(0, ge=0, description="GPUs requested by each pod.")
    nproc_per_node: int | None = Field(
        None, ge=1, description="Processes per pod (torchrun --nproc-per-node); default gpus_per_node or 1."
    )
    gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource name of a GPU.")
    cpu: str | None = Field(None, pattern=_QUANTITY, description="CPU request per pod (quantity, e.g. '32').")
    memory: str | None = Field(
        None, pattern=_QUANTITY, description="Memory request and limit per pod (quantity, e.g. '512Gi')."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Plain environment variables.")
    secret_env: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Secret name -> {secret key: ENV var} injected as secretKeyRef."
    )
    optional_secrets: list[str] = Field(
        default_factory=list,
        description="Secrets of secret_env that may be absent (their variables then stay unset), e.g. a token "
        "of a service whose auth is off; any other missing Secret keeps the pods from starting.",
    )
    field_env: dict[str, str] = Field(
        default_factory=dict, description="ENV var -> downward-API fieldPath, e.g. OVR_POD_IP: status.podIP."
    )
    claims: list[ClaimMount] = Field(default_factory=list, description="Claims mounted into every replica.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.")
    shm_size: str | None = Field(
        "16Gi", pattern=_QUANTITY, description="Size of the in-memory /dev/shm (NCCL, dataloaders); None: none."
    )
    service_account: str | None = Field(None, description="serviceAccountName of the pods.")
    image_pull_secrets: list[str] = Field(default_factory=list, description="Pull secrets of the pods.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels on the job and its pods (pods also get CLIENT_LABEL, TRAINER_LABEL)."
    )
    owner: Owner | None = Field(None, description="Owner of the job (the launcher pod): deleted with it.")
    restart_policy: Literal["OnFailure", "Never"] = Field(
        "OnFailure",
        description="Replica restart policy of a PyTorchJob (OnFailure restarts up to backoff_limit times).",
    )
    backoff_limit: int = Field(3, ge=0, description="PyTorchJob restarts before the job is marked Failed.")
    active_deadline_s: int | None = Field(None, ge=1, description="Cluster-side deadline of the job, in seconds.")
    runtime: str = Field(
        "torch-distributed", min_length=1, description="Trainer v2 ClusterTrainingRuntime the TrainJob refers to."
    )
    queue: str | None = Field(
        None,
        max_length=63,
        pattern=_DNS1123,
        description="Kueue LocalQueue: the job's queue-name label (not the pods').",
    )
    runtime_class: str | None = Field(
        None,
        pattern=_DNS1123,
        description="runtimeClassName of the pods (e.g. nvidia): PyTorchJob only; a TrainJob's comes from its runtime.",
    )
    extra_resources: dict[str, str] = Field(
        default_factory=dict,
        description="More extended resources per pod, requested and limited, e.g. RDMA devices {rdma/ib: '1'}.",
    )
    scratch_size: str | None = Field(
        None,
        pattern=_QUANTITY,
        description="Size of the scratch volume (checkpoints, model copies) instead of the container's writable "
        "layer; None: none. An emptyDir with this sizeLimit and an ephemeral-storage request of the same.",
    )
    scratch_path: str = Field("/scratch", pattern=r"^/", description="Where the scratch volume is mounted.")
    scratch_storage_class: str | None = Field(
        None,
        pattern=_DNS1123,
        description="Storage class of a generic ephemeral volume for the scratch (a fresh claim per pod, e.g. "
        "local NVMe); None: an emptyDir on the node's disk.",
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        _check_env_names(v)
        return v

    @field_validator("extra_resources")
    @classmethod
    def _resource_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [f"{k}={q}" for k, q in v.items() if not re.match(_RESOURCE_NAME, k) or not re.match(_QUANTITY, q)]
        if bad:
            raise ValueError(f"extra_resources must map resource names to quantities: {bad}")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env_names(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for keys in v.values():
            _check_env_names({env: "" for env in keys.values()})
        return v

    @model_validator(mode="after")
    def _no_duplicate_env(self) -> TrainerJobSpec:
        _check_env_names(self.field_env)
        names = list(self.env) + [e for keys in self.secret_env.values() for e in keys.values()] + list(self.field_env)
        dup = sorted({e for e in names if names.count(e) > 1})
        if dup:
            raise ValueError(f"environment variables set twice (env/secret_env/field_env): {dup}")
        reserved = sorted(e for e in names if e.startswith("PET_"))
        if reserved:
            raise ValueError(f"PET_* variables are the launcher's (torchrun rendezvous), not the job's: {reserved}")
        return self

    @property
    def procs_per_node(self) -> int:
        return self.nproc_per_node or self.gpus_per_node or 1


def _check_env_names(env: dict[str, str]) -> None:
    bad = [k for k in env if not re.match(_ENV_NAME, k)]
    if bad:
        raise ValueError(f"invalid environment variable names: {bad}")
