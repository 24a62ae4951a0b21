"""Multi-node stage launch: a Kubeflow ``PyTorchJob`` built, created, followed and cleaned up.

A stage that needs several nodes (SFT or RL on N x 8 GPUs) runs as a ``kubeflow.org/v1``
``PyTorchJob``: one ``Master`` pod and ``nodes - 1`` ``Worker`` pods of the ovr image, each running
``command`` (normally ``torchrun ... -m ovr ...``). The training operator sets ``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK`` and the ``PET_*`` variables (``PET_NNODES``,
``PET_NODE_RANK``, ``PET_NPROC_PER_NODE`` from ``nprocPerNode``) that ``torchrun`` reads, so the
command needs no rendezvous flags.

``manifest(spec)`` is a pure function (spec -> dict); ``run_pytorchjob(spec)`` creates the job,
reports each status transition, raises ``PyTorchJobFailed`` with the failing pods' termination
messages and log tails when the operator marks it Failed, and deletes it (foreground propagation:
pods and services go with it) whatever happens, unless ``keep=True``.

Existing job of the same name (HTTP 409, e.g. a retried KFP task): it is **adopted** (followed
instead of created) when its ``ovr.dev/spec-hash`` annotation equals this spec's hash and it has not
Failed, so a retry keeps a training run that is still going (or already finished); otherwise it is
**replaced** (deleted, waited for, created again).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ovr.k8s.job_status import (  # noqa: F401  (re-exported: the public surface of launching a job)
    CONTAINER,
    TERMINAL,
    JobEvent,
    PodFailure,
    PyTorchJobError,
    PyTorchJobFailed,
    PyTorchJobTimeout,
    job_status,
    pod_failures,
    utc_now,
)

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
SPEC_HASH_ANNOTATION = "ovr.dev/spec-hash"
MAX_TRANSIENT = 10  # consecutive 5xx/429/connection errors tolerated while following a job
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"


def current_namespace() -> str:
    """The namespace of the pod we run in (service-account mount), else ``default``."""
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class Toleration(BaseModel):
    """A Kubernetes pod toleration (e.g. for tainted GPU nodes)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    key: str | None = Field(None, description="Taint key; empty with operator Exists tolerates every taint.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal (match value) or Exists.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, alias="tolerationSeconds", description="How long a NoExecute taint is tolerated."
    )


class PyTorchJobSpec(BaseModel):
    """What a multi-node stage needs from the cluster; ``manifest()`` turns it into a PyTorchJob."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        ..., max_length=48, pattern=_DNS1035,
        description="Job name (DNS-1035 label, <= 48 chars: pods are <name>-worker-<i>).",
    )
    namespace: str = Field(default_factory=current_namespace, pattern=_DNS1035, description="Namespace.")
    image: str = Field(..., min_length=1, description="Container image of every replica (the ovr image).")
    command: list[str] = Field(..., min_length=1, description="Container command, e.g. torchrun -m ovr ...")
    nodes: int = Field(1, ge=1, description="Pods in total: one Master plus nodes-1 Workers.")
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
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.")
    shm_size: str | None = Field(
        "16Gi", pattern=_QUANTITY, description="Size of the in-memory /dev/shm (NCCL, dataloaders); None: none."
    )
    service_account: str | None = Field(None, description="serviceAccountName of the pods.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels on the job and its pods.")
    restart_policy: Literal["OnFailure", "Never"] = Field(
        "OnFailure", description="Replica restart policy (OnFailure restarts up to backoff_limit times)."
    )
    backoff_limit: int = Field(3, ge=0, description="Restarts before the job is marked Failed.")
    active_deadline_s: int | None = Field(None, ge=1, description="Operator-side deadline of the job.")

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        _check_env_names(v)
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env_names(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for keys in v.values():
            _check_env_names({env: "" for env in keys.values()})
        return v

    @model_validator(mode="after")
    def _no_duplicate_env(self) -> PyTorchJobSpec:
        from_secrets = [env for keys in self.secret_env.values() for env in keys.values()]
        dup = sorted({e for e in from_secrets if from_secrets.count(e) > 1} | (set(from_secrets) & set(self.env)))
        if dup:
            raise ValueError(f"environment variables set twice (env/secret_env): {dup}")
        return self

    @property
    def procs_per_node(self) -> int:
        return self.nproc_per_node or self.gpus_per_node or 1


def _check_env_names(env: dict[str, str]) -> None:
    bad = [k for k in env if not re.match(_ENV_NAME, k)]
    if bad:
        raise ValueError(f"invalid environment variable names: {bad}")


def _pod_template(spec: PyTorchJobSpec) -> dict[str, Any]:
    env = [{"name": k, "value": v} for k, v in spec.env.items()]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for secret, keys in spec.secret_env.items() for key, var in keys.items()
    ]
    requests = {k: v for k, v in (("cpu", spec.cpu), ("memory", spec.memory)) if v}
    limits = {"memory": spec.memory} if spec.memory else {}
    if spec.gpus_per_node:
        limits[spec.gpu_resource] = str(spec.gpus_per_node)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": list(spec.command),
        "env": env,
        "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
        # Without a termination-log the container's last log lines become the termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod: dict[str, Any] = {"containers": [container]}
    if spec.shm_size:
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        pod["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}}]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    return {"metadata": {"labels": dict(spec.labels)}, "spec": pod}


def manifest(spec: PyTorchJobSpec) -> dict[str, Any]:
    """The ``kubeflow.org/v1`` PyTorchJob for ``spec`` (its spec hash in an annotation).

    >>> m = manifest(PyTorchJobSpec(name="sft", namespace="ml", image="ovr:1", command=["true"], nodes=2))
    >>> m["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
    1
    """
    counts = {"Master": 1, "Worker": spec.nodes - 1}
    replicas = {
        kind: {"replicas": n, "restartPolicy": spec.restart_policy, "template": _pod_template(spec)}
        for kind, n in counts.items() if n > 0
    }
    # cleanPodPolicy None keeps finished pods so a failure's logs can still be read; run_pytorchjob
    # deletes the job afterwards and the pods go with it (owner references).
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": spec.backoff_limit}
    if spec.active_deadline_s:
        run_policy["activeDeadlineSeconds"] = spec.active_deadline_s
    job_spec = {
        "nprocPerNode": str(spec.procs_per_node),
        "runPolicy": run_policy,
        "pytorchReplicaSpecs": replicas,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {**spec.labels, "app.kubernetes.io/managed-by": "ovr"},
            "annotations": {SPEC_HASH_ANNOTATION: spec_hash(job_spec)},
        },
        "spec": job_spec,
    }


def spec_hash(job_spec: dict[str, Any]) -> str:
    """Short content hash of a job's ``spec`` (decides adopt vs replace on a name conflict)."""
    return hashlib.sha256(json.dumps(job_spec, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- run


def load_api_client() -> k8s.ApiClient:
    """An API client from the in-cluster service account, else from ~/.kube/config."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=cfg)
    return k8s.ApiClient(cfg)


def run_pytorchjob(
    spec: PyTorchJobSpec,
    *,
    api_client: k8s.ApiClient | None = None,
    poll_s: float = 5.0,
    timeout_s: float | None = None,
    on_status: Callable[[JobEvent], Any] = print,
    keep: bool = False,
    log_lines: int = 50,
) -> None:
    """Create the job, follow it to Succeeded, and delete it (unless ``keep``) whatever happens.

    Raises ``PyTorchJobFailed`` (with the failing pods' messages and last ``log_lines`` log lines)
    when it fails, ``PyTorchJobTimeout`` after ``timeout_s`` seconds, ``PyTorchJobError`` when the
    cluster does not serve PyTorchJobs or the job disappears. A same-named job is adopted or
    replaced (module docstring).
    """
    api_client = api_client or load_api_client()
    custom, core = k8s.CustomObjectsApi(api_client), k8s.CoreV1Api(api_client)
    body = manifest(spec)
    ns, name, job = spec.namespace, spec.name, f"{spec.namespace}/{spec.name}"
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        _create_or_adopt(custom, body, on_status, poll_s, deadline)
        final = _follow(custom, ns, name, on_status, poll_s, deadline)
        if final.phase == "Failed":
            raise PyTorchJobFailed(job, final.message or final.reason, pod_failures(core, ns, name, log_lines))
    except BaseException:
        if not keep:
            _delete(custom, ns, name, on_status, strict=False)
        raise
    if not keep:
        _delete(custom, ns, name, on_status, strict=True)


def _get(custom: k8s.CustomObjectsApi, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _create_or_adopt(custom, body, on_status, poll_s: float, deadline: float | None) -> None:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return
    except ApiException as err:
        if err.status == 404:
            raise PyTorchJobError(
                f"the cluster does not serve {GROUP}/{VERSION} {PLURAL} in namespace {ns} "
                "(is the Kubeflow training operator installed?)"
            ) from err
        if err.status != 409:
            raise
    existing = _get(custom, ns, name) or {}
    status = job_status(existing)
    ours = body["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    theirs = ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    if existing and theirs == ours and (status is None or status.phase != "Failed"):
        on_status(JobEvent(f"{ns}/{name}", "Adopted", utc_now(), "SameSpec",
                           f"existing job in phase {status.phase if status else 'Pending'}"))
        return
    why = "previous attempt failed" if status and status.phase == "Failed" else "different spec"
    on_status(JobEvent(f"{ns}/{name}", "Replaced", utc_now(), "AlreadyExists", why))
    _delete(custom, ns, name, on_status, strict=True)
    while _get(custom, ns, name) is not None:  # foreground deletion: wait for the pods to go
        if deadline is not None and time.monotonic() > deadline:
            raise PyTorchJobTimeout(f"PyTorchJob {ns}/{name}: old job still deleting at the deadline")
        time.sleep(poll_s)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def _follow(custom, ns: str, name: str, on_status, poll_s: float, deadline: float | None) -> JobEvent:
    last: JobEvent | None = None
    transient = 0  # consecutive API errors worth retrying (API server restarts during a long job)
    while True:
        try:
            obj = _get(custom, ns, name)
            transient = 0
        except (ApiException, urllib3.exceptions.HTTPError) as err:
            status_code = getattr(err, "status", None)
            if (status_code is not None and status_code < 500 and status_code != 429) or transient >= MAX_TRANSIENT:
                raise
            transient += 1
            on_status(JobEvent(f"{ns}/{name}", "ApiError", utc_now(), type(err).__name__,
                               f"{status_code or ''} retry {transient}/{MAX_TRANSIENT}".strip()))
            time.sleep(poll_s)
            continue
        if obj is None:
            raise PyTorchJobError(f"PyTorchJob {ns}/{name} disappeared while running (deleted by someone else?)")
        status = job_status(obj)
        if status is not None and (last is None or status.phase != last.phase):
            on_status(status)
            last = status
        if status is not None and status.phase in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            seen = last.phase if last else "no status"
            raise PyTorchJobTimeout(f"PyTorchJob {ns}/{name} not finished at the deadline (last: {seen})")
        time.sleep(poll_s)


def _delete(custom, ns: str, name: str, on_status, *, strict: bool) -> None:
    """Delete with foreground propagation; 404 is fine. Non-strict (an error is already on its way):
    report a failed delete instead of raising over that error."""
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, propagation_policy="Foreground")
    except Exception as err:
        if isinstance(err, ApiException) and err.status == 404:
            return
        if strict:
            raise
        on_status(JobEvent(f"{ns}/{name}", "DeleteFailed", utc_now(), type(err).__name__, str(err)[:300]))
        return
    on_status(JobEvent(f"{ns}/{name}", "Deleted", utc_now(), "Cleanup", "propagation Foreground"))
