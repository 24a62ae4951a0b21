"""Validate config's checks beyond the config itself, all before any GPU is spent.

- the data: the dataset plan is not empty and covers every split the run trains on
  (:func:`ovr.data.plan.dataset_plan`); source paths in the store exist;
- the services a run on the install uses: the reward service scores (ready, and the token of
  ``reward_secret`` is the one it wants), every rollout replica serves the model with a
  ``max_model_len`` the recipe's longest responses fit in (and accepts ``rollout_secret``'s token);
- on a cluster: :mod:`components.cluster_checks` (RBAC, claim, Trainer release, runtime, each
  multi-node job admitted by a dry-run create).

Every failure is collected and reported together, each naming its fix; warnings are printed.
"""

from __future__ import annotations

import asyncio
import os

from components.cluster_checks import Findings, RunShape, check_cluster
from components.install import InstallError
from ovr.config import RunConfig


def check_data(cfg: RunConfig, found: Findings) -> None:
    """The dataset plan can work; its s3:// source paths hold objects."""
    from ovr.data.plan import DatasetPlanError, dataset_plan
    from ovr.store import Store

    try:
        plan = dataset_plan(cfg)
    except DatasetPlanError as err:
        found.failures.append(str(err))
        return
    print(plan.render(), flush=True)
    for src in plan.sources:
        if not src.path.startswith("s3://"):
            continue
        bucket, _, prefix = src.path.removeprefix("s3://").partition("/")
        try:
            keys = Store.from_config(cfg.store.model_copy(update={"uri": f"s3://{bucket}"})).list(prefix)
        except Exception as err:  # a wrong bucket or credentials: named with the source
            found.failures.append(f"source {src.name}: cannot list {src.path}: {type(err).__name__}: {err}")
            continue
        if not keys:
            found.failures.append(f"source {src.name}: nothing under {src.path}: upload it there (mc cp --recursive)")


def check_reward(cfg: RunConfig, found: Findings) -> None:
    """One real scoring call: the service is up, ready, and takes this run's token."""
    from ovr.rewards.client import RewardClient, RewardServiceError
    from ovr.schema import ScoreItem

    client = RewardClient.from_config(cfg.reward, retries=3, backoff_s=1.0, timeout_s=60.0)
    try:
        (result,) = client.score_sync([ScoreItem(response="\\boxed{1}", reference="1", reward=cfg.reward.name)])
    except (RewardServiceError, TimeoutError) as err:
        hint = (
            "the token of the Secret named by reward_secret (key token) is not the service's"
            if "401" in str(err)
            else "check the reward Deployment is Ready (kubectl get deploy, its /readyz)"
        )
        found.failures.append(f"reward service {cfg.reward.url}: {err}: {hint}")
        return
    if result.accuracy != 1.0:
        found.failures.append(f"reward service {cfg.reward.url} scored a correct answer {result.accuracy}: {result}")


def longest_response(cfg: RunConfig) -> int:
    return max([s.max_tokens for s in cfg.rl.max_response_len_schedule] + [cfg.eval.max_tokens])


def check_replicas(cfg: RunConfig, found: Findings) -> None:
    """Every replica answers /v1/models for the served model with a long enough max_model_len."""
    from ovr.rollout.client import RolloutClient, RolloutError

    ro = cfg.rollout
    client = RolloutClient(ro.endpoints, ro)

    async def check() -> None:
        try:
            await client.check_context(longest_response(cfg))
        finally:
            await client.close()

    try:
        asyncio.run(check())
    except RolloutError as err:
        hint = ""
        if " 401" in str(err) or " 403" in str(err):
            hint = ": the token of the Secret named by rollout_secret (key token) is not the replicas'"
        elif "unreachable" in str(err) or " 503" in str(err):
            hint = ": the rollout replicas are not ready (kubectl get statefulset; their /health)"
        found.failures.append(f"rollout replica: {err}{hint}")


def preflight(
    cfg: RunConfig,
    shape: RunShape | None,
    jobs: dict[str, object],
    environ: dict[str, str] | None = None,
    api_client=None,
) -> list[str]:
    """Run every check that applies; raise :class:`InstallError` listing every failure; the warnings.
    ``api_client``: the cluster's API (default: the pod's service account)."""
    environ = dict(os.environ if environ is None else environ)
    found = Findings()
    check_data(cfg, found)
    if cfg.reward.url:
        check_reward(cfg, found)
    if cfg.rollout.endpoints:
        check_replicas(cfg, found)
    if shape is not None:
        from components.placement import InstallPlacement
        from ovr.k8s.jobs import load_api_client

        runtime = InstallPlacement.from_env(environ).runtime
        api = api_client or load_api_client()
        try:
            cluster = check_cluster(api, shape, jobs, runtime)
        finally:
            if api_client is None:
                api.close()
        found.failures += cluster.failures
        found.warnings += cluster.warnings
    for warning in found.warnings:
        print(f"warning: {warning}", flush=True)
    if found.failures:
        lines = "\n".join(f"  {i}. {f}" for i, f in enumerate(found.failures, 1))
        raise InstallError(f"the run cannot work as configured ({len(found.failures)} problem(s)):\n{lines}")
    return found.warnings
