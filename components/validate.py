"""The Validate config task's work: the run's config, the install's placement, and every check that can
fail before SFT (:mod:`components.install`, :mod:`components.preflight`).

What it returns is what the later tasks run with: the resolved config, and the install's image, pull
secret, node selector and tolerations, which the pipeline applies to their pods at run time (so task
pods and job pods run the image of the install the run went to, not the one the pipeline was
compiled with).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from components.cluster_checks import RunShape
from components.install import InstallError, in_cluster, resolve_run
from components.jobs import JobSettings, stage_job_spec
from components.placement import InstallPlacement, PlacementError
from components.settings import POD_IDENTITY_ENV
from ovr.config import RunConfig
from ovr.context import RunContext
from ovr.k8s.spec import current_namespace


class RunParams(BaseModel):
    """The pipeline parameters Validate config checks against the cluster."""

    model_config = ConfigDict(extra="forbid")
    sft_nodes: int = Field(1, ge=1, description="Nodes of SFT (> 1: a job).")
    rl_nodes: int = Field(1, ge=1, description="Nodes of RL (> 1: a job).")
    gpus_per_node: int = Field(8, ge=0, description="GPUs of each SFT/RL node.")
    weights_claim: str = Field("", description="Claim the eval and RL pods mount.")
    job: JobSettings = Field(..., description="What a multi-node stage's job gets.")


def job_specs(cfg: RunConfig, params: RunParams, environ: dict[str, str]) -> dict[str, object]:
    """Each multi-node stage's job spec as its launcher will build it (or why it cannot be built)."""
    out: dict[str, object] = {}
    for stage, nodes in (("sft", params.sft_nodes), ("rl", params.rl_nodes)):
        if nodes <= 1:
            continue
        run = RunContext.for_config(cfg, "validate")  # the run is opened once everything passed
        init = f"runs/{run.key}/sft-export/step-00000000" if stage == "rl" else None
        try:
            out[stage] = stage_job_spec(stage, cfg, run, nodes, params.gpus_per_node, init, params.job, environ)
        except ValueError as err:
            out[stage] = str(err)
    return out


def validate_run(
    recipe,
    overrides: list[str],
    install_env: str,
    params: RunParams,
    environ: dict[str, str] | None = None,
    api_client=None,
) -> tuple[RunConfig, InstallPlacement]:
    """Resolve and check everything; :class:`InstallError` naming each problem and its fix.
    ``api_client``: the cluster's API (default: the pod's service account)."""
    from components.preflight import preflight
    from ovr.store import Store

    environ = dict(os.environ if environ is None else environ)
    cfg = resolve_run(recipe, overrides, install_env, environ)
    try:
        placement = InstallPlacement.from_env(environ)
    except PlacementError as err:
        raise InstallError(f"{err} (ConfigMap {install_env!r})") from None
    Store.from_config(cfg.store)  # fails fast on a wrong endpoint, bucket or credentials
    shape = None
    if in_cluster(environ):
        shape = RunShape(
            namespace=environ.get(POD_IDENTITY_ENV["namespace"]) or current_namespace(),
            service_account=environ.get(POD_IDENTITY_ENV["service_account"]) or "default",
            sft_nodes=params.sft_nodes,
            rl_nodes=params.rl_nodes,
            weights_claim=params.weights_claim or None,
            install=environ.get("OVR_INSTALL") or None,
        )
    preflight(cfg, shape, job_specs(cfg, params, environ) if shape else {}, environ, api_client)
    return cfg, placement
