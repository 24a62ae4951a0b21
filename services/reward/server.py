"""Run the reward service: in the foreground (``ovr serve reward``, the container's command) or as
a managed local subprocess for tests, benchmarks and the local pipeline.

>>> with local_server(workers=1, time_limit_s=2) as srv:  # doctest: +SKIP
...     RewardClient(srv.url).score_sync([...])
"""

from __future__ import annotations

import sys
from pathlib import Path

from ovr.serving import ManagedServer
from services.reward.settings import RewardSettings

APP = "services.reward.app:create_app"
REPO_ROOT = Path(__file__).resolve().parents[2]


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the app with uvicorn in this process (settings from ``OVR_REWARD_*``)."""
    import uvicorn

    settings = RewardSettings()  # fail fast on bad env before binding the port
    uvicorn.run(APP, factory=True, host=host, port=port, log_level=settings.log_level, timeout_graceful_shutdown=10)


def settings_env(**overrides) -> dict[str, str]:
    """``OVR_REWARD_*`` variables for the given settings overrides (validated here first)."""
    RewardSettings(**overrides)
    env = {}
    for key, value in overrides.items():
        if value is not None:
            env[f"OVR_REWARD_{key.upper()}"] = str(
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
    return env


def local_server(*, python: str | None = None, startup_timeout_s: float = 120.0, **settings_overrides) -> ManagedServer:
    """A not-yet-started :class:`ManagedServer` running uvicorn with the app factory on a free
    127.0.0.1 port; healthy when ``/readyz`` answers 200 (the worker pool is warm)."""
    cmd = [
        python or sys.executable,
        "-m",
        "uvicorn",
        APP,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--log-level",
        "warning",
    ]
    return ManagedServer(
        cmd,
        health_path="/readyz",
        env=settings_env(**settings_overrides),
        cwd=REPO_ROOT,
        startup_timeout_s=startup_timeout_s,
        name="reward",
    )
