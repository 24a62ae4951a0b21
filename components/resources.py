"""Kubernetes placement of pipeline tasks, all through ``kfp-kubernetes``, in one helper.

Every task gets: a display name, CPU/memory requests and limits, optional GPUs (with the
accelerator type), node selector and tolerations, a memory-backed ``/dev/shm`` for tasks that run
torch data loaders or NCCL, and the S3/MLflow/reward credentials from Kubernetes secrets as env
vars (never as parameters). Tasks that need them also get the install's env ConfigMap, the weights
claim the rollout replicas share (at :data:`WEIGHTS_MOUNT`, the path the chart mounts it at on the
replicas) and their own pod's identity from the downward API (owner of the jobs they create, pod
IP for NCCL rendezvous). Local runs (``kfp.local``) ignore these settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp import kubernetes
from kfp.dsl import PipelineTask


@dataclass(frozen=True)
class Placement:
    """Resources and scheduling of one task."""

    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = 0
    accelerator: str = "nvidia.com/gpu"
    shm: str | None = None  # size of the /dev/shm emptyDir, e.g. "16Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict, ...] = ()


#: GPU nodes are usually tainted; ovr's defaults tolerate the common NVIDIA taint.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

#: Per-stage defaults (the paper's 7B runs use 8-GPU nodes for SFT and RL).
PLACEMENTS: dict[str, Placement] = {
    "validate": Placement(cpu="1", memory="2Gi"),
    "data": Placement(cpu="8", memory="32Gi"),
    "sft": Placement(cpu="32", memory="256Gi", gpus=8, shm="64Gi", tolerations=(GPU_TOLERATION,)),
    "rl": Placement(cpu="32", memory="256Gi", gpus=8, shm="64Gi", tolerations=(GPU_TOLERATION,)),
    "sft-launcher": Placement(cpu="1", memory="2Gi"),  # creates and follows the job: no GPU
    "rl-launcher": Placement(cpu="1", memory="2Gi"),
    "eval": Placement(cpu="4", memory="16Gi"),
    "report": Placement(cpu="1", memory="2Gi"),
}

#: keys of the Helm chart's ``<release>-env`` ConfigMap: OVR__SECTION__FIELD overrides that point
#: a run at the install's store, MLflow, reward service and rollout replicas and carry what a trainer
#: must know of the replicas (weight sync, tensor parallel size, weights folder); OVR_INSTALL names
#: the install, OVR_TRAINER_IMAGE / OVR_IMAGE_PULL_SECRETS what job pods run (no credentials)
INSTALL_ENV_KEYS = (
    "OVR_INSTALL", "OVR__STORE__URI", "OVR__STORE__ENDPOINT", "OVR__STORE__SECURE", "OVR__STORE__REGION",
    "OVR__TRACKING__URI", "OVR__REWARD__URL", "OVR__ROLLOUT__ENDPOINTS", "OVR__ROLLOUT__SERVED_MODEL_NAME",
    "OVR__ROLLOUT__WEIGHT_SYNC", "OVR__ROLLOUT__TENSOR_PARALLEL_SIZE", "OVR__ROLLOUT__WEIGHTS_DIR",
    "OVR_TRAINER_IMAGE", "OVR_IMAGE_PULL_SECRETS",
)

#: where the weights claim is mounted in trainer, eval and job pods (and by the chart in the replicas)
WEIGHTS_MOUNT = "/weights"

#: env var -> downward-API field of the task's own pod
POD_IDENTITY_ENV = {"name": "OVR_POD_NAME", "uid": "OVR_POD_UID", "namespace": "OVR_POD_NAMESPACE",
                    "ip": "OVR_POD_IP", "service_account": "OVR_POD_SERVICE_ACCOUNT"}
_POD_FIELDS = {"name": "metadata.name", "uid": "metadata.uid", "namespace": "metadata.namespace",
               "ip": "status.podIP", "service_account": "spec.serviceAccountName"}

#: secret name -> {secret key: env var}; names are pipeline parameters (the Helm chart's secrets)
SECRET_ENV = {
    "s3": {"access_key": "OVR_S3_ACCESS_KEY", "secret_key": "OVR_S3_SECRET_KEY"},
    "reward": {"token": "OVR_REWARD_TOKEN"},
}


def place(
    task: PipelineTask,
    stage: str,
    display_name: str,
    *,
    secrets: dict[str, object] | None = None,
    gpus=None,
    install_env=None,
    weights_claim=None,
    pod_identity: bool = False,
) -> PipelineTask:
    """Apply the stage's placement, display name and secret env vars to ``task``.

    ``secrets`` maps a SECRET_ENV kind ("s3", "reward") to the secret's name (a string or a
    pipeline parameter); ``gpus`` may be a pipeline parameter overriding the stage default;
    ``install_env`` names the chart's env ConfigMap; ``weights_claim`` the RWX claim mounted at
    WEIGHTS_MOUNT (with ``OVR__ROLLOUT__WEIGHTS_DIR`` pointing there); ``pod_identity`` adds the
    pod's name, uid, namespace, IP and service account as env vars.
    """
    p = PLACEMENTS[stage]
    task.set_display_name(display_name)
    task.set_cpu_request(p.cpu).set_cpu_limit(p.cpu)
    task.set_memory_request(p.memory).set_memory_limit(p.memory)
    n_gpus = gpus if gpus is not None else p.gpus
    if gpus is not None or p.gpus:
        task.set_accelerator_type(p.accelerator).set_accelerator_limit(n_gpus)
    if p.shm:
        kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=p.shm)
    for key, value in p.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    for tol in p.tolerations:
        kubernetes.add_toleration(task, **tol)
    for kind, secret_name in (secrets or {}).items():
        kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env=SECRET_ENV[kind], optional=True)
    if install_env is not None:
        kubernetes.use_config_map_as_env(
            task, config_map_name=install_env, config_map_key_to_env={k: k for k in INSTALL_ENV_KEYS}, optional=True
        )
    if weights_claim is not None:
        kubernetes.mount_pvc(task, pvc_name=weights_claim, mount_path=WEIGHTS_MOUNT)
        task.set_env_variable("OVR__ROLLOUT__WEIGHTS_DIR", WEIGHTS_MOUNT)
    if pod_identity:
        for key, env in POD_IDENTITY_ENV.items():
            kubernetes.use_field_path_as_env(task, env, _POD_FIELDS[key])
    task.set_caching_options(False)
    return task
