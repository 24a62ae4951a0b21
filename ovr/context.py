"""What one run knows beyond its recipe: who it is, and what it talks to.

The config (:class:`ovr.config.RunConfig`) is the experiment and the install's standing settings,
resolved once when loaded and never changed after. A run's own facts live here, beside it:

- ``run_id``: this run's identity. Its checkpoints and exports live under ``runs/<name>/<run_id>/``
  in the store (:attr:`RunContext.key`), so a rerun of a recipe is a new run and never continues or
  overwrites another; resuming a run is asking for its id (``--run-id`` / the ``resume_from``
  pipeline parameter). It also names the holder of the lease on shared rollout replicas.
- ``mlflow_run_id``: the MLflow run every stage of this run logs into.
- ``model_path``: this process's local copy of the starting model (None: ``cfg.model.path`` as is).
- ``rollout_endpoints`` / ``weights_dir`` / ``reward_url``: the servers a stage talks to, resolved:
  the install's (from the config) or ones this process started itself (``services/local.py``).

A pod learns its run from the environment (:data:`RUN_ID_ENV`, :data:`MLFLOW_RUN_ID_ENV`), which
``torchrun`` ranks and job pods inherit from the task that started them.

>>> ctx = RunContext.new("tiny-cpu", run_id="20261206-013000-ab12")
>>> ctx.key
'tiny-cpu/20261206-013000-ab12'
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ovr.config import RunConfig

RUN_ID_ENV = "OVR_RUN_ID"
MLFLOW_RUN_ID_ENV = "OVR_MLFLOW_RUN_ID"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def new_run_id(now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx`` (UTC, 4 random hex): sorts by start time, unique per start."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """``run_id`` if it can name a store folder and a Kubernetes label value, else a ValueError."""
    if not _RUN_ID.match(run_id):
        raise ValueError(
            f"run id {run_id!r} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


@dataclass(frozen=True)
class RunContext:
    """One run's identity and resolved endpoints (see the module docstring)."""

    name: str  # the recipe's run name (cfg.name)
    run_id: str
    mlflow_run_id: str | None = None
    model_path: str | None = None
    rollout_endpoints: tuple[str, ...] = field(default_factory=tuple)
    weights_dir: str | None = None
    reward_url: str | None = None

    def __post_init__(self) -> None:
        check_run_id(self.run_id)

    @property
    def key(self) -> str:
        """The run's folder under ``runs/`` in the store: ``<name>/<run_id>``."""
        return f"{self.name}/{self.run_id}"

    @classmethod
    def new(cls, name: str, run_id: str | None = None, mlflow_run_id: str | None = None) -> RunContext:
        """A run named ``name``: a new one, or the run ``run_id`` when given (resuming it)."""
        return cls(name=name, run_id=run_id or new_run_id(), mlflow_run_id=mlflow_run_id)

    @classmethod
    def for_config(cls, cfg: RunConfig, run_id: str | None = None, mlflow_run_id: str | None = None) -> RunContext:
        """The run of ``cfg`` with the install's endpoints from the config (empty: started locally)."""
        return cls(
            name=cfg.name,
            run_id=run_id or new_run_id(),
            mlflow_run_id=mlflow_run_id,
            rollout_endpoints=tuple(cfg.rollout.endpoints),
            weights_dir=cfg.rollout.weights_dir,
            reward_url=cfg.reward.url,
        )

    @classmethod
    def from_env(cls, cfg: RunConfig, environ: dict[str, str] | None = None) -> RunContext:
        """The run this process belongs to, as the task that started it said (``OVR_RUN_ID``)."""
        environ = os.environ if environ is None else environ
        run_id = environ.get(RUN_ID_ENV)
        if not run_id:
            raise ValueError(f"${RUN_ID_ENV} is unset: this process does not know which run it belongs to")
        return cls.for_config(cfg, run_id, environ.get(MLFLOW_RUN_ID_ENV) or None)

    def env(self) -> dict[str, str]:
        """What a child process needs to join this run (see :meth:`from_env`)."""
        out = {RUN_ID_ENV: self.run_id}
        if self.mlflow_run_id:
            out[MLFLOW_RUN_ID_ENV] = self.mlflow_run_id
        return out

    def with_(self, **changes) -> RunContext:
        """A copy with ``changes`` (e.g. the endpoints of servers started for a stage)."""
        if "rollout_endpoints" in changes:
            changes["rollout_endpoints"] = tuple(changes["rollout_endpoints"])
        return replace(self, **changes)
