"""A local async RL stage splits the cores between the servers and the trainer
(``rollout.local_server.cores``): checked on a real vLLM server and reward service started by
``local_services``, by the CPU affinity of their processes and of every vLLM thread."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from ovr.config import load_config
from services.local import core_split, local_services

CORES = sorted(os.sched_getaffinity(0))


def cfg(*sets: str):
    return load_config(None, list(sets), use_env=False)


@pytest.mark.skipif(len(CORES) < 2, reason="needs >= 2 cores")
def test_auto_splits_only_an_async_single_process_trainer(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    half = len(CORES) // 2
    assert core_split(cfg("rl.max_staleness=1"), trainer=True) == (CORES[half:], CORES[:half])
    assert core_split(cfg("rl.max_staleness=0"), trainer=True) is None  # sync: the trainer takes every core
    assert core_split(cfg("rl.max_staleness=1"), trainer=False) is None  # eval: nothing trains beside
    assert core_split(cfg("rl.max_staleness=0", "rollout.local_server.cores=split"), trainer=True) is not None
    assert core_split(cfg("rl.max_staleness=1", "rollout.local_server.cores=shared"), trainer=True) is None
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun ranks share the machine their own way
    assert core_split(cfg("rl.max_staleness=1"), trainer=True) is None


def test_split_on_one_core_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    with pytest.raises(ValueError, match="needs >= 2 cores"):
        core_split(cfg("rollout.local_server.cores=split"), trainer=True)


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (vLLM's API server starts its engine core as a child)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree, grew = tree | more, bool(more)
    return sorted(tree)


def _threads_cores(pid: int) -> set[int]:
    """Every core any thread of ``pid`` or of its descendants may run on."""
    cores: set[int] = set()
    for proc in _tree(pid):
        for task in Path(f"/proc/{proc}/task").iterdir():
            with contextlib.suppress(OSError):
                cores |= os.sched_getaffinity(int(task.name))
    return cores


@pytest.mark.vllm
@pytest.mark.skipif(len(CORES) < 2, reason="needs >= 2 cores")
def test_async_rl_servers_and_trainer_run_on_their_own_cores(tiny_model_dir, rollout_python, tmp_path, monkeypatch):
    import httpx
    import torch

    from ovr.context import RunContext

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = cfg(
        "rl.max_staleness=1",
        f"store.uri={tmp_path}/store",
        "rollout.local_server.max_model_len=512",
        f"rollout.local_server.python={rollout_python}",
    )
    servers, trainer = core_split(run, trainer=True)
    threads = torch.get_num_threads()
    with local_services(run, RunContext.for_config(run, "cores"), tiny_model_dir, trainer=True) as ctx:
        assert sorted(os.sched_getaffinity(0)) == trainer and torch.get_num_threads() == len(trainer)
        (url,) = ctx.rollout_endpoints
        port = int(url.rsplit(":", 1)[1])
        (vllm,) = _listening_pids(port)
        assert len(_tree(vllm)) >= 2  # the API server and its engine core
        assert _threads_cores(vllm) <= set(servers)  # the engine's OpenMP threads were bound there, not to every core
        (reward,) = _listening_pids(int(ctx.reward_url.rsplit(":", 1)[1]))
        assert _threads_cores(reward) <= set(servers)
        assert httpx.get(url + "/health").status_code == 200
    assert sorted(os.sched_getaffinity(0)) == CORES and torch.get_num_threads() == threads


def _listening_pids(port: int) -> list[int]:
    """Processes with a listening socket on ``port`` (from /proc: socket inodes of /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{i}]" in links for i in inodes):
            pids.append(int(proc.name))
    return pids
