"""Start and stop local server processes (vLLM, the reward service, MLflow, S3 test servers).

Used by the local pipeline run, the tests and the benchmarks: a server is a subprocess started in
its own process group on a free 127.0.0.1 port, considered up when its health URL answers 200, and
stopped (TERM, then KILL) on exit. Its output goes to a log file whose tail is shown if it dies.

>>> with ManagedServer(["python", "-m", "http.server", "{port}"], health_path="/") as srv:  # doctest: +SKIP
...     httpx.get(srv.url)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerDied(RuntimeError):
    """The server process exited, or never became healthy, before its deadline."""


class ManagedServer:
    """A server subprocess: ``{port}`` in ``cmd`` is replaced by the chosen port."""

    def __init__(
        self,
        cmd: list[str],
        *,
        health_path: str = "/health",
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        startup_timeout_s: float = 180.0,
        log_path: str | Path | None = None,
        name: str | None = None,
    ):
        self.port = port or free_port()
        self.cmd = [c.replace("{port}", str(self.port)) for c in cmd]
        self.health_path = health_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.name = name or Path(self.cmd[0]).name
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkstemp(prefix=f"ovr-{self.name}-", suffix=".log")[1])
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> ManagedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process holds it
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerDied(
                    f"{self.name} exited with {self.proc.returncode} before becoming healthy; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + self.health_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerDied(
            f"{self.name} not healthy at {self.url}{self.health_path} after "
            f"{self.startup_timeout_s:.0f} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=grace_s)

    def kill(self) -> None:
        """Hard kill (used by tests that simulate a crashed replica)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
