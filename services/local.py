"""The rollout server and the reward service for a local run (CPU, tiny model).

On a cluster both are long-running Deployments (Helm chart) whose URLs the recipe names
(``rollout.endpoints``, ``reward.url``); a stage then uses them as they are. Locally, when those
are unset, this starts a real vLLM server (rollout venv) on ``model_dir`` and a real reward
service (uvicorn) for the stage's duration and stops them afterwards.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from ovr.config import RunConfig


@contextmanager
def local_services(
    cfg: RunConfig,
    model_dir: str | Path,
    *,
    weights_dir: str | Path | None = None,
    rollout: bool = True,
    reward: bool = True,
) -> Iterator[tuple[list[str], str | None]]:
    """Yield ``(rollout endpoints, reward url)``, starting what the config does not point at."""
    with ExitStack() as stack:
        endpoints = list(cfg.rollout.endpoints)
        reward_url = cfg.reward.url
        if rollout and not endpoints:
            from services.rollout.launch import local_server as rollout_server

            srv = rollout_server(model_dir, cfg.rollout, weights_dir=weights_dir)
            stack.enter_context(srv)
            endpoints = [srv.url]
        if reward and reward_url is None:
            from services.reward.server import local_server as reward_server

            srv = reward_server(workers=cfg.reward.workers, time_limit_s=cfg.reward.time_limit_s)
            stack.enter_context(srv)
            reward_url = srv.url
        yield endpoints, reward_url
