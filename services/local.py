"""The rollout server and the reward service for a local run (CPU, tiny model).

On a cluster both are long-running Deployments (Helm chart) whose URLs reach a stage's config
(``rollout.endpoints``, ``reward.url``, from the chart's env ConfigMap) and so its run context; a
stage then uses them as they are. Locally, when the context has none, :func:`local_services` starts
a real vLLM server (rollout venv, settings from ``rollout.local_server``) on ``model_dir`` and a real
reward service (uvicorn, settings from ``OVR_REWARD_*``) for the stage's duration, and yields the
run context pointed at them: the stage reads its endpoints from the context alone.

An RL stage that overlaps generation with training (``rl.max_staleness > 0``) splits the machine's
cores between the servers and itself (``rollout.local_server.cores``), as a cluster gives them
separate hardware: unpinned, the CPU engine's OpenMP threads and torch's both take every core (the
demo's async RL trained 3x and generated 6x slower than its sync RL on 2 cores). The vLLM engine
binds its threads within the affinity it inherits (``VLLM_CPU_OMP_THREADS_BIND=auto``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ovr.config import RunConfig
from ovr.context import RunContext

log = logging.getLogger("ovr.services")


def core_split(cfg: RunConfig, trainer: bool) -> tuple[list[int], list[int]] | None:
    """(the servers' cores, the trainer's) when this stage splits them (``rollout.local_server.cores``),
    else None. ``trainer``: this process trains beside the servers (the RL stage)."""
    mode = cfg.rollout.local_server.cores
    cores = sorted(os.sched_getaffinity(0))
    if mode == "auto":
        single = int(os.environ.get("WORLD_SIZE", "1")) == 1
        mode = "split" if trainer and cfg.rl.max_staleness > 0 and single and len(cores) >= 2 else "shared"
    if mode == "shared" or not trainer:
        return None
    if len(cores) < 2:
        raise ValueError(f"rollout.local_server.cores=split needs >= 2 cores; this process may use {cores}")
    half = len(cores) // 2
    return cores[half:], cores[:half]


@contextmanager
def pinned(cores: list[int]) -> Iterator[None]:
    """Run the block (and the processes it starts, which inherit it) on ``cores`` only; torch's
    intra-op threads sized to match. Restores both on exit."""
    import torch

    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


@contextmanager
def local_services(
    cfg: RunConfig,
    ctx: RunContext,
    model_dir: str | Path | None,
    *,
    rollout: bool = True,
    reward: bool = True,
    trainer: bool = False,
) -> Iterator[RunContext]:
    """Yield ``ctx`` with ``rollout_endpoints`` / ``weights_dir`` / ``reward_url`` set, starting what it
    does not point at (``rollout=False`` / ``reward=False``: leave that one alone). ``trainer``: the
    caller trains beside them (RL), so the cores may be split (:func:`core_split`); the block then runs
    on the trainer's cores."""
    split = core_split(cfg, trainer) if (rollout and not ctx.rollout_endpoints) else None
    with ExitStack() as stack:
        with pinned(split[0]) if split else ExitStack():  # the servers inherit this affinity at start
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
        if split:
            log.info("cores split for async RL (rollout.local_server.cores): servers on %s, trainer on %s", *split)
            stack.enter_context(pinned(split[1]))
        yield ctx
