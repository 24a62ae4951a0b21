"""Cluster settings of the pipeline's tasks, importable without ``kfp.kubernetes`` (task pods import
this at run time: KFP's executor runs with a reduced ``kfp.dsl``): per-stage placements, the install's
env ConfigMap keys, secret keys, the weights mount, the downward-API env of a pod's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Placement:
    """Resources and scheduling of one task."""

    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = 0
    accelerator: str = "nvidia.com/gpu"
    shm: str | None = None  # size of the /dev/shm emptyDir, e.g. "16Gi"
    scratch: str | None = None  # sizeLimit of the scratch emptyDir at SCRATCH_MOUNT, e.g. "800Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict, ...] = ()
    trainer: bool = False  # pushes weights to the rollout servers (NCCL): gets TRAINER_LABEL


#: GPU nodes are usually tainted; ovr's defaults tolerate the common NVIDIA taint.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

#: Per-stage defaults (the paper's 7B runs use 8-GPU nodes for SFT and RL).
PLACEMENTS: dict[str, Placement] = {
    "validate": Placement(cpu="1", memory="2Gi"),
    "data": Placement(cpu="8", memory="32Gi", scratch="200Gi"),
    # a 7B ZeRO-3 checkpoint (weights + Adam states) is ~110 GB; two are kept locally, plus the model copy
    "sft": Placement(cpu="32", memory="256Gi", gpus=8, shm="64Gi", scratch="400Gi", tolerations=(GPU_TOLERATION,)),
    "rl": Placement(
        cpu="32", memory="256Gi", gpus=8, shm="64Gi", scratch="800Gi", tolerations=(GPU_TOLERATION,), trainer=True
    ),
    "sft-launcher": Placement(cpu="1", memory="2Gi"),  # creates and follows the job: no GPU
    "rl-launcher": Placement(cpu="1", memory="2Gi"),
    "eval": Placement(cpu="4", memory="16Gi", scratch="100Gi"),
    "report": Placement(cpu="1", memory="2Gi"),
}

#: keys of the Helm chart's ``<release>-env`` ConfigMap: OVR__SECTION__FIELD overrides that point
#: a run at the install's store, MLflow, reward service and rollout replicas and carry what a trainer
#: must know of the replicas (weight sync, tensor parallel size, weights folder); OVR_INSTALL names
#: the install, OVR_TRAINER_IMAGE / OVR_IMAGE_PULL_SECRETS what job pods run (no credentials)
INSTALL_ENV_KEYS = (
    "OVR_INSTALL",
    "OVR__STORE__URI",
    "OVR__STORE__ENDPOINT",
    "OVR__STORE__SECURE",
    "OVR__STORE__REGION",
    "OVR__TRACKING__URI",
    "OVR__REWARD__URL",
    "OVR__ROLLOUT__ENDPOINTS",
    "OVR__ROLLOUT__SERVED_MODEL_NAME",
    "OVR__ROLLOUT__WEIGHT_SYNC",
    "OVR__ROLLOUT__TENSOR_PARALLEL_SIZE",
    "OVR__ROLLOUT__WEIGHTS_DIR",
    "OVR__MODEL__MAX_PIXELS",
    "OVR_TRAINER_IMAGE",
    "OVR_IMAGE_PULL_SECRETS",
    # where and how training pods run (components.placement): JSON for the selector, tolerations, resources
    "OVR_TRAINER_NODE_SELECTOR",
    "OVR_TRAINER_TOLERATIONS",
    "OVR_TRAINER_RUNTIME",
    "OVR_TRAINER_RUNTIME_CLASS",
    "OVR_TRAINER_RESOURCES",
    "OVR_SCRATCH_SIZE",
    "OVR_SCRATCH_STORAGE_CLASS",
    # NCCL's transport (interfaces, InfiniBand/RoCE), passed to every training pod as set
    "NCCL_SOCKET_IFNAME",
    "NCCL_IB_DISABLE",
    "NCCL_IB_HCA",
    "NCCL_IB_GID_INDEX",
    "NCCL_NET_GDR_LEVEL",
    "NCCL_CROSS_NIC",
    "NCCL_DEBUG",
)

#: where a pod's scratch volume is mounted (checkpoints, model copies, downloads: never the container's
#: writable layer, which a full disk evicts), and the env that points ovr's local folders there; set at
#: run time by components.runtime.use_scratch when the volume is mounted (never in a local run)
SCRATCH_MOUNT = "/scratch"
SCRATCH_ENV = {
    "TMPDIR": SCRATCH_MOUNT,
    "HF_HOME": f"{SCRATCH_MOUNT}/hf",
    "OVR__SFT__WORK_DIR": f"{SCRATCH_MOUNT}/work",
    "OVR__DATA__CACHE_DIR": f"{SCRATCH_MOUNT}/cache",
}

#: where the weights claim is mounted in trainer, eval and job pods (and by the chart in the replicas)
WEIGHTS_MOUNT = "/weights"

#: env var -> downward-API field of the task's own pod
POD_IDENTITY_ENV = {
    "name": "OVR_POD_NAME",
    "uid": "OVR_POD_UID",
    "namespace": "OVR_POD_NAMESPACE",
    "ip": "OVR_POD_IP",
    "service_account": "OVR_POD_SERVICE_ACCOUNT",
}
POD_FIELDS = {
    "name": "metadata.name",
    "uid": "metadata.uid",
    "namespace": "metadata.namespace",
    "ip": "status.podIP",
    "service_account": "spec.serviceAccountName",
}

#: secret kind -> {secret key: env var}; the secrets' names are pipeline parameters (the Helm chart's
#: secrets). MLflow's client reads MLFLOW_TRACKING_USERNAME/PASSWORD itself; the rollout client reads
#: the env var of ``rollout.token_env`` (default OVR_ROLLOUT_TOKEN).
SECRET_ENV = {
    "s3": {"access_key": "OVR_S3_ACCESS_KEY", "secret_key": "OVR_S3_SECRET_KEY"},
    "reward": {"token": "OVR_REWARD_TOKEN"},
    "rollout": {"token": "OVR_ROLLOUT_TOKEN"},
    "mlflow": {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
}
