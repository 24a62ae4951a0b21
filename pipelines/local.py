"""Run the whole pipeline on this machine with ``kfp.local`` (what ``make demo`` does).

The same DAG as on a cluster, each task a subprocess of this venv; Kubernetes settings (GPUs,
tolerations, secrets) are ignored locally. Relative paths of the recipe (store, MLflow database,
model folder) are made absolute under the working directory, so every task sees the same files.
The vLLM server and the reward service are started by the RL and eval tasks for their duration.

:func:`run_with_console` is what ``ovr demo`` and ``ovr run --local`` call: the same run behind
a console a person can follow (stage headers, live SFT/RL progress, a closing summary), with
kfp's task output in a log file (:mod:`pipelines.console`, :mod:`pipelines.summary`).
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
    run_dir: Path | None = None  # this run's task outputs under pipeline_root
    run_id: str | None = None  # the ovr run id (its store folder runs/<name>/<run id>)

    def eval_results(self) -> list[Path]:
        """The ``result.json`` of each eval task of this run."""
        return sorted(self.run_dir.glob("evaluate-model*/**/result.json")) if self.run_dir else []


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


def run_local(
    recipe: str, overrides: list[str] | None = None, workdir: str | Path = ".", resume_from: str = "none"
) -> LocalRun:
    """Run ``ovr_pipeline`` with ``kfp.local.SubprocessRunner`` as a new run, or as the earlier run
    ``resume_from`` (an id, or ``latest``); raise if a task fails."""
    from kfp import local

    from pipelines.ovr_pipeline import ovr_pipeline

    workdir = Path(workdir).resolve()
    path = resolve_recipe(recipe).resolve()
    overrides = absolute_overrides(path, list(overrides or []), workdir)
    cfg = load_config(path, overrides)
    root = workdir / ".ovr" / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    t0 = time.monotonic()
    # kfp.local reads no default of an optional parameter: the pull secret is passed (and ignored: no pods)
    task = ovr_pipeline(
        recipe=str(path), overrides=overrides, gpus_per_node=0, image_pull_secret="", resume_from=resume_from
    )
    wall = time.monotonic() - t0
    report = Path(task.output.path)  # the pipeline's one output: the report Markdown
    run_dir = _newest_run(root)
    run_id, mlflow_run_id = run_ids(run_dir)
    return LocalRun(path, root, wall, mlflow_run_id, cfg.tracking.uri, cfg.store.uri, report, run_dir, run_id)


def _newest_run(root: Path) -> Path | None:
    runs = sorted(root.glob("ovr-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def run_ids(run_dir: Path | None) -> tuple[str | None, str | None]:
    """The ovr run id the run's validate task returned and the MLflow run id on its config artifact."""
    out = run_dir / "validate-config" / "executor_output.json" if run_dir else None
    if out is None or not out.is_file():
        return None, None
    done = json.loads(out.read_text())
    run_id = done.get("parameterValues", {}).get("Output")
    artifacts = done.get("artifacts", {}).get("config", {}).get("artifacts", [])
    mlflow_run_id = artifacts[0].get("metadata", {}).get("mlflow_run_id") if artifacts else None
    return run_id, mlflow_run_id or None


def log_paths(workdir: Path) -> tuple[Path, Path]:
    """This run's log file and progress file: ``.ovr/logs/run-<time>.log`` / ``.progress.jsonl``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = workdir / ".ovr" / "logs"
    return folder / f"run-{stamp}.log", folder / f"run-{stamp}.progress.jsonl"


def places(run: LocalRun) -> list[tuple[str, str]]:
    """Where a finished run's MLflow run, exports, report and task outputs are."""
    from ovr.config import load_config
    from ovr.store import Kind, Store, step_prefix

    cfg = load_config(run.recipe, use_env=False, overrides=[f"store.uri={run.store_uri}"])
    store = Store.from_config(cfg.store)
    out = [("MLflow run", f"{run.mlflow_run_id} in {run.tracking_uri}")]
    if run.tracking_uri.startswith("sqlite:///"):
        out.append(("browse it", f".venv/bin/mlflow ui --backend-store-uri {run.tracking_uri}"))
    for kind in (Kind.SFT_EXPORT, Kind.RL_EXPORT):
        key = f"{cfg.name}/{run.run_id}"
        m = store.latest(key, kind)
        if m is not None:
            out.append((str(kind), f"{store} {step_prefix(key, m.step, kind)} ({len(m.files)} files)"))
    out.append(("report", str(run.report)))
    html = run.report.parent / "html"  # the report task's HTML output
    if html.is_file():
        out.append(("report (HTML)", str(html)))
    out.append(("task outputs", str(run.run_dir or run.pipeline_root)))
    return out


def run_with_console(
    recipe: str, overrides: list[str] | None = None, workdir: str | Path = ".", console=None, resume_from: str = "none"
) -> LocalRun:
    """:func:`run_local` behind the run console; prints the summary at the end (raises if a task fails,
    after the console showed the failed task's last log lines)."""
    from pipelines.console import RunConsole
    from pipelines.summary import gather_summary, render_summary

    workdir = Path(workdir).resolve()
    log, progress = log_paths(workdir)
    with RunConsole(log, progress, console=console) as con:
        con.print(f"full log: {log}", markup=False, highlight=False, soft_wrap=True)
        run = run_local(recipe, overrides, workdir, resume_from)
    summary = gather_summary(run.eval_results(), run.tracking_uri, run.mlflow_run_id, places(run))
    summary.run_id, summary.notes = run.run_id, list(con.notes)
    con.console.print(f"\npipeline finished in {run.wall_s:.0f} s", highlight=False)
    render_summary(con.console, summary)
    return run
