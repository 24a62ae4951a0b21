"""Run the whole pipeline on this machine with ``kfp.local`` (what ``make demo`` does).

The same DAG as on a cluster, each task a subprocess of this venv; Kubernetes settings (GPUs,
tolerations, secrets) are ignored locally. Relative paths of the recipe (store, MLflow database,
model folder) are made absolute under the working directory, so every task sees the same files.
The vLLM server and the reward service are started by the RL and eval tasks for their duration.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ovr.config import load_config, resolve_recipe


@dataclass
class LocalRun:
    recipe: Path
    pipeline_root: Path
    wall_s: float
    mlflow_run_id: str | None
    tracking_uri: str
    store_uri: str
    report: Path


def absolute_overrides(recipe: Path, overrides: list[str], workdir: Path) -> list[str]:
    """Overrides that pin the recipe's relative local paths to ``workdir``."""
    cfg = load_config(recipe, overrides)
    out = list(overrides)
    if not cfg.store.uri.startswith("s3://") and not Path(cfg.store.uri).is_absolute():
        out.append(f"store.uri={(workdir / cfg.store.uri).resolve()}")
    uri = cfg.tracking.uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        out.append(f"tracking.uri=sqlite:///{(workdir / uri.removeprefix('sqlite:///')).resolve()}")
    if not cfg.model.path.startswith("s3://") and not Path(cfg.model.path).is_absolute():
        out.append(f"model.path={(workdir / cfg.model.path).resolve()}")
    return out


def run_local(recipe: str, overrides: list[str] | None = None, workdir: str | Path = ".") -> LocalRun:
    """Run ``ovr_pipeline`` with ``kfp.local.SubprocessRunner``; raise if a task fails."""
    from kfp import local

    from pipelines.ovr_pipeline import ovr_pipeline

    workdir = Path(workdir).resolve()
    path = resolve_recipe(recipe).resolve()
    overrides = absolute_overrides(path, list(overrides or []), workdir)
    cfg = load_config(path, overrides)
    root = workdir / ".ovr" / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    t0 = time.monotonic()
    task = ovr_pipeline(recipe=str(path), overrides=overrides, gpus_per_node=0)
    wall = time.monotonic() - t0
    report = Path(task.output.path)  # the pipeline's one output: the report Markdown
    run_id = _run_id_from(root)
    return LocalRun(path, root, wall, run_id, cfg.tracking.uri, cfg.store.uri, report)


def _run_id_from(root: Path) -> str | None:
    """The MLflow run id the newest run's validate task returned."""
    runs = sorted(root.glob("ovr-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return None
    out = runs[-1] / "validate-config" / "executor_output.json"
    if not out.is_file():
        return None
    params = json.loads(out.read_text()).get("parameterValues", {})
    return params.get("Output")
