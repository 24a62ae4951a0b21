"""MLflow tracking: one MLflow run per ovr run, shared by every stage.

Each stage opens the run with :meth:`Tracker.open` (the first creates it, tagged with the ovr run
id; later stages resume it by the id the run context carries, ``RunContext.mlflow_run_id``) and logs
metrics under its own prefix (``sft/loss``, ``rl/reward_mean`` ...). Params are the resolved config,
flattened.
With ``tracking.enabled: false`` every call is a no-op, so stages never branch on it.

A server with authentication (the Helm chart runs MLflow's basic-auth app) gets its login from
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``), which
MLflow's client reads from the environment itself: the tracker never sees, logs or stores them. A
password written into a URL of the config (``http://user:pass@host``) is masked in the params and in
:attr:`Tracker.url`.

>>> with Tracker.open(cfg, stage="sft") as tr:          # doctest: +SKIP
...     tr.log_metrics({"loss": 1.2}, step=3)            # -> sft/loss at step 3
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ovr.config import RunConfig, flat_params
from ovr.context import RunContext


def redact_credentials(value: str) -> str:
    """``value`` with a URL's password replaced by ``***``; anything else unchanged.

    >>> redact_credentials("http://ovr:s3cret@mlflow:5000/x")
    'http://ovr:***@mlflow:5000/x'
    >>> redact_credentials("s3://bucket/prefix")
    's3://bucket/prefix'
    """
    if "@" not in value or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
        host = parts.netloc.rsplit("@", 1)[1]
    except ValueError:  # not a URL after all
        return value
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _client(cfg: RunConfig):
    from mlflow.tracking import MlflowClient

    if cfg.tracking.uri.startswith("sqlite:///"):
        Path(cfg.tracking.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=cfg.tracking.uri)


def _artifacts(cfg: RunConfig) -> dict:
    """A local database keeps its artifacts beside itself (not in ./mlruns); a server decides its own."""
    uri = cfg.tracking.uri
    if not uri.startswith("sqlite:///"):
        return {}
    return {"artifact_location": (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()}


def find_mlflow_run(cfg: RunConfig, ovr_run_id: str) -> str | None:
    """The MLflow run of the ovr run ``ovr_run_id`` in the recipe's experiment (None if it has none)."""
    if not cfg.tracking.enabled:
        return None
    client = _client(cfg)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`ovr.run_id` = '{ovr_run_id}' and tags.`ovr.run` = '{cfg.name}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


class Tracker:
    def __init__(self, cfg: RunConfig, stage: str, client: Any | None, run_id: str | None):
        self.cfg = cfg
        self.stage = stage
        self.client = client
        self.run_id = run_id

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, cfg: RunConfig, stage: str, ctx: RunContext | None = None) -> Tracker:
        """Resume the MLflow run ``ctx.mlflow_run_id``, or create one for the ovr run ``ctx`` (tagged
        ``ovr.run`` with the run name and ``ovr.run_id`` with its id)."""
        if not cfg.tracking.enabled:
            return cls(cfg, stage, None, None)
        client = _client(cfg)
        run_id = ctx.mlflow_run_id if ctx is not None else None
        if run_id is None:
            exp = client.get_experiment_by_name(cfg.tracking.experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(cfg.tracking.experiment, **_artifacts(cfg))
            tags = {"ovr.run": cfg.name} | ({"ovr.run_id": ctx.run_id} if ctx is not None else {})
            run = client.create_run(exp_id, run_name=cfg.tracking.run_name or cfg.name, tags=tags)
            run_id = run.info.run_id
            tracker = cls(cfg, stage, client, run_id)
            tracker.log_params(flat_params(cfg))
        else:
            client.update_run(run_id, status="RUNNING")
            tracker = cls(cfg, stage, client, run_id)
        client.set_tag(run_id, f"ovr.stage.{stage}", "started")
        return tracker

    def close(self, status: str = "FINISHED") -> None:
        if self.client is not None:
            self.client.set_tag(self.run_id, f"ovr.stage.{self.stage}", status.lower())
            self.client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FAILED" if exc_type else "FINISHED")

    @property
    def url(self) -> str | None:
        """Where a person finds the run."""
        if self.client is None:
            return None
        tr = self.cfg.tracking
        return f"{redact_credentials(tr.uri)} (experiment {tr.experiment!r}, run {self.run_id})"

    # ------------------------------------------------------------------ logging
    def log_params(self, params: dict[str, Any]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Param

        items = [Param(k, redact_credentials(str(v))[:500]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log finite numeric metrics as ``<stage>/<name>`` at ``step``."""
        if self.client is None:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(f"{self.stage}/{k}", float(v), now, int(step))
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))
        ]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.client is None:
            return
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        if self.client is not None:
            self.client.log_text(self.run_id, text, name)

    def metric_history(self, key: str) -> list[tuple[int, float]]:
        """(step, value) pairs of a metric of this run (``key`` with its stage prefix)."""
        if self.client is None:
            return []
        return [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, key)]
