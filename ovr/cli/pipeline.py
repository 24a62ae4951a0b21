"""``ovr pipeline compile``, ``ovr run --local`` and ``ovr demo``: the whole DAG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import SetOpt


def _summary(run) -> None:
    from ovr.config import load_config
    from ovr.store import Kind, Store, step_prefix

    cfg = load_config(run.recipe, use_env=False, overrides=[f"store.uri={run.store_uri}"])
    store = Store.from_config(cfg.store)
    typer.echo(f"\npipeline finished in {run.wall_s:.0f} s (task outputs under {run.pipeline_root})")
    typer.echo(f"MLflow run     : {run.mlflow_run_id} in {run.tracking_uri}")
    if run.tracking_uri.startswith("sqlite:///"):
        typer.echo(f"                 browse it with: .venv/bin/mlflow ui --backend-store-uri {run.tracking_uri}")
    for kind in (Kind.SFT_EXPORT, Kind.RL_EXPORT):
        m = store.latest(cfg.name, kind)
        if m is not None:
            typer.echo(f"{kind:<15}: {store} {step_prefix(cfg.name, m.step, kind)} ({len(m.files)} files)")
    typer.echo(f"report         : {run.report}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The KFP pipeline: compile it.", no_args_is_help=True)

    @group.command("compile")
    def compile_(
        out: Annotated[Path, typer.Option(help="Output YAML.")] = Path("pipelines/ovr_pipeline.yaml"),
    ) -> None:
        """Compile ovr_pipeline to KFP IR YAML (upload it in the KFP UI or with `ovr submit`)."""
        from pipelines.compile import compile_pipeline

        typer.echo(f"compiled to {compile_pipeline(out)}")

    app.add_typer(group, name="pipeline")

    @app.command("run")
    def run(
        recipe: Annotated[str, typer.Option("--recipe", "-r", help="Recipe name or path.")] = "tiny-cpu",
        set_: SetOpt = None,
        local: Annotated[bool, typer.Option("--local", help="Run the DAG here with kfp.local.")] = False,
    ) -> None:
        """Run the whole pipeline locally (`--local`); use `ovr submit` for a KFP cluster."""
        if not local:
            typer.secho("ovr run needs --local; submit to a cluster with `ovr submit --host URL`", fg="red", err=True)
            raise typer.Exit(2)
        from pipelines.local import run_local

        _summary(run_local(recipe, list(set_ or [])))

    @app.command("demo")
    def demo(
        recipe: Annotated[str, typer.Option("--recipe", "-r", help="Recipe name or path.")] = "tiny-cpu",
        set_: SetOpt = None,
    ) -> None:
        """The whole pipeline on CPU with the tiny offline model: data -> SFT -> RL -> eval -> report."""
        from pipelines.local import run_local

        typer.echo("ovr demo: data -> cold-start SFT -> RL (vLLM + reward service) -> eval -> report, on CPU")
        _summary(run_local(recipe, list(set_ or [])))
