"""The rollout server and the reward service for a local run (CPU, tiny model).

On a cluster both are long-running Deployments (Helm chart) whose URLs reach a stage's config
(``rollout.endpoints``, ``reward.url``, from the chart's env ConfigMap) and so its run context; a
stage then uses them as they are. Locally, when the context has none, :func:`local_services` starts
a real vLLM server (rollout venv, settings from ``rollout.local_server``) on ``model_dir`` and a real
reward service (uvicorn, settings from ``OVR_REWARD_*``) for the stage's duration, and yields the
run context pointed at them: the stage reads its endpoints from the context alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ovr.config import RunConfig
from ovr.context import RunContext


@contextmanager
def local_services(
    cfg: RunConfig, ctx: RunContext, model_dir: str | Path | None, *, rollout: bool = True, reward: bool = True
) -> Iterator[RunContext]:
    """Yield ``ctx`` with ``rollout_endpoints`` / ``weights_dir`` / ``reward_url`` set, starting what it
    does not point at (``rollout=False`` / ``reward=False``: leave that one alone)."""
    with ExitStack() as stack:
        if rollout and not ctx.rollout_endpoints:
            from services.rollout.launch import local_server as rollout_server

            if model_dir is None:
                raise ValueError("a local rollout server needs the model folder to serve")
            weights = ctx.weights_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="ovr-weights-"))
            srv = stack.enter_context(
                rollout_server(model_dir, cfg.rollout, weights_dir=weights, max_pixels=cfg.model.max_pixels)
            )
            ctx = ctx.with_(rollout_endpoints=[srv.url], weights_dir=str(weights))
        if reward and ctx.reward_url is None:
            from services.reward.server import local_server as reward_server

            ctx = ctx.with_(reward_url=stack.enter_context(reward_server()).url)
        yield ctx
