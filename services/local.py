"""The rollout server and the reward service for a local run (CPU, tiny model).

On a cluster both are long-running Deployments (Helm chart) whose URLs reach a stage's config
(``rollout.endpoints``, ``reward.url``, from the chart's env ConfigMap); a stage then uses them as
they are. Locally, when those are unset, :func:`local_services` starts a real vLLM server (rollout
venv, settings from ``rollout.local_server``) on ``model_dir`` and a real reward service (uvicorn,
settings from ``OVR_REWARD_*``) for the stage's duration, and yields the config pointed at them:
the stage reads its endpoints from the config alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ovr.config import RunConfig


@contextmanager
def local_services(
    cfg: RunConfig, model_dir: str | Path | None, *, rollout: bool = True, reward: bool = True
) -> Iterator[RunConfig]:
    """Yield ``cfg`` with ``rollout.endpoints`` / ``rollout.weights_dir`` / ``reward.url`` set, starting
    what the config does not point at (``rollout=False`` / ``reward=False``: leave that one alone)."""
    with ExitStack() as stack:
        ro, rw = cfg.rollout, cfg.reward
        if rollout and not ro.endpoints:
            from services.rollout.launch import local_server as rollout_server

            if model_dir is None:
                raise ValueError("a local rollout server needs the model folder to serve")
            weights = ro.weights_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="ovr-weights-"))
            srv = stack.enter_context(
                rollout_server(model_dir, ro, weights_dir=weights, max_pixels=cfg.model.max_pixels)
            )
            ro = ro.model_copy(update={"endpoints": [srv.url], "weights_dir": str(weights)})
        if reward and rw.url is None:
            from services.reward.server import local_server as reward_server

            rw = rw.model_copy(update={"url": stack.enter_context(reward_server()).url})
        yield cfg.model_copy(update={"rollout": ro, "reward": rw})
