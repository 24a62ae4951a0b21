"""The Kubeflow job a multi-node stage becomes: its name, image, command, env, secrets and mounts.

Everything a job pod needs arrives through its spec, nothing through the launcher's filesystem:
the resolved config (env ``OVR_CONFIG_YAML``), the starting model as a store prefix (downloaded by
each pod), the S3 and reward-token Secrets named by the pipeline's parameters, the weights claim
the rollout replicas share (mounted at the same path), the pod IP for NCCL rendezvous. The job is
named per run (``ovr-<run>-<stage>-<hash of the KFP run id>``, <= 48 characters), owned by the
launcher pod (deleted with it), and bounded by ``activeDeadlineSeconds``. The install's settings
(:class:`components.placement.InstallPlacement`: image, pull secrets, node selector, tolerations,
runtime, RDMA resources, scratch volume, NCCL transport) reach every job pod; a Kueue queue, when the
run names one, labels the job.
"""

from __future__ import annotations

import hashlib
import os
import re

from pydantic import BaseModel, ConfigDict, Field

from components.placement import InstallPlacement
from components.settings import (
    GPU_TOLERATION,
    PLACEMENTS,
    POD_IDENTITY_ENV,
    SCRATCH_MOUNT,
    SECRET_ENV,
    WEIGHTS_MOUNT,
)
from ovr.config import RunConfig, dump_config
from ovr.context import RunContext
from ovr.k8s.pods import FollowLimits
from ovr.k8s.spec import ClaimMount, Owner, Toleration, TrainerJobSpec, current_namespace

#: the job pods' command: write the shipped config, then every rank runs components.train
JOB_SCRIPT = (
    'printf "%s" "$OVR_CONFIG_YAML" > "${{TMPDIR:-/tmp}}/ovr-config.yaml" && '
    'exec torchrun -m components.train {stage} --config "${{TMPDIR:-/tmp}}/ovr-config.yaml"{init}'
)


class JobSettings(BaseModel):
    """Pipeline parameters and install settings a launcher passes on to its job."""

    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(..., min_length=1, description="KFP run id: makes the job's name unique per run.")
    s3_secret: str = Field(..., min_length=1, description="Secret with the store's access_key/secret_key.")
    reward_secret: str | None = Field(None, description="Secret with the reward service's token (RL only).")
    rollout_secret: str | None = Field(None, description="Secret with the rollout servers' token (RL only).")
    mlflow_secret: str | None = Field(None, description="Secret with MLflow's login (username/password).")
    weights_claim: str | None = Field(None, description="RWX claim the rollout replicas mount (RL only).")
    deadline_s: int = Field(..., ge=60, description="activeDeadlineSeconds of the job.")
    queue: str | None = Field(None, description="Kueue LocalQueue of the job (its queue-name label); None: none.")
    pending_timeout_s: float = Field(
        1800.0, gt=0, description="Fail when a pod stays Unschedulable this long (no node has what it asks)."
    )
    admission_timeout_s: float | None = Field(
        None, gt=0, description="Fail when the job stays suspended (not admitted by Kueue) this long; None: wait."
    )

    def limits(self) -> FollowLimits:
        return FollowLimits(unschedulable_s=self.pending_timeout_s, admission_s=self.admission_timeout_s)


def job_name(run_name: str, stage: str, run_id: str) -> str:
    """``ovr-<run>-<stage>-<8 hex>``: unique per KFP run and stage, a DNS-1035 label of <= 48 chars."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-")[:24].rstrip("-") or "run"
    digest = hashlib.sha256(f"{run_id}/{stage}".encode()).hexdigest()[:8]
    return f"ovr-{slug}-{stage}-{digest}"


def launcher_owner(environ: dict[str, str] | None = None) -> Owner | None:
    """The launcher pod (downward API env), which owns the job; None outside a pod."""
    environ = os.environ if environ is None else environ
    name, uid = environ.get(POD_IDENTITY_ENV["name"]), environ.get(POD_IDENTITY_ENV["uid"])
    return Owner(name=name, uid=uid) if name and uid else None


def stage_job_spec(
    stage: str,
    cfg: RunConfig,
    ctx: RunContext,
    nodes: int,
    gpus_per_node: int,
    init_prefix: str | None,
    settings: JobSettings,
    environ: dict[str, str] | None = None,
) -> TrainerJobSpec:
    """The TrainerJobSpec of ``stage`` on ``nodes`` pods of ``gpus_per_node`` GPUs each, in the run ``ctx``."""
    from components.images import OVR_IMAGE

    environ = os.environ if environ is None else environ
    placement = PLACEMENTS[stage]
    install = InstallPlacement.from_env(environ)
    secret_env = {settings.s3_secret: SECRET_ENV["s3"]}
    if settings.mlflow_secret:
        secret_env[settings.mlflow_secret] = SECRET_ENV["mlflow"]
    env = {"OVR_CONFIG_YAML": dump_config(cfg), **ctx.env()} | install.nccl_env
    claims = []
    if stage == "rl":
        if settings.reward_secret:
            secret_env[settings.reward_secret] = SECRET_ENV["reward"]
        if settings.rollout_secret:
            secret_env[settings.rollout_secret] = SECRET_ENV["rollout"]
        if settings.weights_claim:
            claims.append(ClaimMount(claim=settings.weights_claim, mount_path=WEIGHTS_MOUNT))
            env["OVR__ROLLOUT__WEIGHTS_DIR"] = WEIGHTS_MOUNT
    init = f' --init-prefix "{init_prefix}"' if init_prefix else ""
    gpu = [Toleration.model_validate(GPU_TOLERATION)] if gpus_per_node else []
    return TrainerJobSpec(
        **install.job_fields(),
        name=job_name(cfg.name, stage, settings.run_id),
        namespace=environ.get(POD_IDENTITY_ENV["namespace"]) or current_namespace(),
        image=install.image or OVR_IMAGE,
        command=["bash", "-c", JOB_SCRIPT.format(stage=stage, init=init)],
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        cpu=placement.cpu,
        memory=placement.memory,
        env=env,
        secret_env=secret_env,
        # tokens of services whose auth may be off (Validate config checked the ones in use work)
        optional_secrets=[s for s in secret_env if s != settings.s3_secret],
        field_env={"OVR_POD_IP": "status.podIP"},
        claims=claims,
        tolerations=gpu + [t for t in install.tolerations if t not in gpu],
        shm_size=placement.shm,
        scratch_path=SCRATCH_MOUNT,
        service_account=environ.get(POD_IDENTITY_ENV["service_account"]) or None,
        labels={"ovr.dev/run": cfg.name[:63], "ovr.dev/run-id": ctx.run_id, "ovr.dev/stage": stage},
        owner=launcher_owner(environ),
        active_deadline_s=settings.deadline_s,
        queue=settings.queue or None,
    )
