"""Kubernetes placement of pipeline tasks, all through ``kfp-kubernetes``, in one helper.

Every task gets: a display name, CPU/memory requests and limits, optional GPUs (with the
accelerator type), node selector and tolerations, a memory-backed ``/dev/shm`` for tasks that run
torch data loaders or NCCL, a scratch ``emptyDir`` with a size limit for checkpoints, model copies
and downloads (not the container's writable layer), the S3/MLflow/reward/rollout credentials from
Kubernetes secrets as env vars (never as parameters; the parameters name the secrets), and the pod
labels the Helm chart's NetworkPolicies admit (every task is an ovr client; the RL task is also a
trainer, the only kind of pod let through to the rollout servers' NCCL ports). Tasks that need them
also get the install's env ConfigMap, the weights claim the rollout replicas share (at
:data:`WEIGHTS_MOUNT`, the path the chart mounts it at on the replicas) and their own pod's identity
from the downward API (owner of the jobs they create, pod IP for NCCL rendezvous).

:class:`Install` carries what the install decides at run time: the image every task after Validate
config runs (its output, read from the install's ConfigMap), the node selector and tolerations of
the GPU tasks (idem), NCCL's transport settings (the ConfigMap's ``NCCL_*`` keys) and the image pull
secret (a pipeline parameter: it must reach Validate config's own pod too). Local runs
(``kfp.local``) ignore all of these settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.placement import NCCL_KEYS
from components.settings import (  # noqa: F401  (re-exported: the cluster settings of the tasks)
    GPU_TOLERATION,
    INSTALL_ENV_KEYS,
    PLACEMENTS,
    POD_FIELDS,
    POD_IDENTITY_ENV,
    SCRATCH_MOUNT,
    SECRET_ENV,
    WEIGHTS_MOUNT,
    Placement,
)
from ovr.k8s.spec import CLIENT_LABEL, TRAINER_LABEL


@dataclass(frozen=True)
class Install:
    """Run-time settings of the install for a task: channels of Validate config's outputs and parameters."""

    env: object  # name of the install's env ConfigMap (pipeline parameter)
    pull_secret: object = None  # image pull secret (optional pipeline parameter; None: the account's)
    image: object = None  # Validate config's `image` output (None: the compiled image, for Validate config)
    node_selector: object = None  # Validate config's `node_selector` output (JSON object)
    tolerations: object = None  # Validate config's `tolerations` output (JSON list)


def _apply_install(task: PipelineTask, p: Placement, install: Install) -> None:
    if install.pull_secret is not None:
        kubernetes.set_image_pull_secrets(task, [install.pull_secret])
    if install.image is not None:
        task.set_container_image(install.image)
    if p.gpus:  # training pods: the install's scheduling and NCCL transport
        if install.node_selector is not None:
            kubernetes.add_node_selector_json(task, install.node_selector)
        if install.tolerations is not None:
            kubernetes.add_toleration_json(task, install.tolerations)
        kubernetes.use_config_map_as_env(
            task, config_map_name=install.env, config_map_key_to_env={k: k for k in NCCL_KEYS}, optional=True
        )


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
    install: Install | None = None,
) -> PipelineTask:
    """Apply the stage's placement, display name, pod labels and secret env vars to ``task``.

    ``secrets`` maps a SECRET_ENV kind ("s3", "reward", "rollout", "mlflow") to the secret's name (a string or a
    pipeline parameter); ``gpus`` may be a pipeline parameter overriding the stage default;
    ``install_env`` names the chart's env ConfigMap (its keys become env vars); ``weights_claim`` the
    RWX claim mounted at WEIGHTS_MOUNT (with ``OVR__ROLLOUT__WEIGHTS_DIR`` pointing there);
    ``pod_identity`` adds the pod's name, uid, namespace, IP and service account as env vars;
    ``install`` the install's run-time image, scheduling, NCCL settings and pull secret.
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
    if p.scratch:
        # the task points its temp files and work folders there itself (components.runtime.use_scratch)
        kubernetes.empty_dir_mount(task, volume_name="scratch", mount_path=SCRATCH_MOUNT, size_limit=p.scratch)
    for key, value in p.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    for tol in p.tolerations:
        kubernetes.add_toleration(task, **tol)
    kubernetes.add_pod_label(task, *CLIENT_LABEL)
    if p.trainer:
        kubernetes.add_pod_label(task, *TRAINER_LABEL)
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
            kubernetes.use_field_path_as_env(task, env, POD_FIELDS[key])
    if install is not None:
        _apply_install(task, p, install)
    task.set_caching_options(False)
    return task
