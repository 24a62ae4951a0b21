"""Fixtures of the multi-rank tests: ``torchrun`` on this CPU (gloo), DeepSpeed ZeRO, real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def torchrun(repo_root, rollout_python):
    """``run(args, nproc, timeout) -> CompletedProcess``: ``torchrun`` with a free port and a clean
    rank environment (the launcher sets RANK/WORLD_SIZE/... itself)."""
    from ovr.serving import free_port

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env |= {"OVR_ROLLOUT_PYTHON": str(rollout_python), "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}

    def command(args: list[str], nproc: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={nproc}",
            f"--master-port={free_port()}",
            *args,
        ]

    def run(args: list[str], nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            command(args, nproc), cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, (
            f"torchrun exited {proc.returncode}\n--- stderr (tail) ---\n{proc.stderr[-6000:]}"
            f"\n--- stdout (tail) ---\n{proc.stdout[-4000:]}"
        )
        return proc

    def start(args: list[str], nproc: int = 2, log: Path | None = None) -> subprocess.Popen:
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - the child process holds it
        return subprocess.Popen(
            command(args, nproc), cwd=repo_root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    run.start = start
    run.env = env
    return run
