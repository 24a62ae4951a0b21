"""``ovr pipeline compile``, ``ovr run --local`` and ``ovr demo``: the whole DAG."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import SetOpt

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp colours its error messages


ResumeOpt = Annotated[
    str,
    typer.Option(
        "--resume-from", help="Continue an earlier run of the recipe: its id (printed by every run) or latest."
    ),
]


def _run(recipe: str, overrides: list[str], resume_from: str = "none") -> None:
    """The run behind its console (headers, live progress, summary; task output in a log file)."""
    from pipelines.local import run_with_console

    try:
        run_with_console(recipe, overrides, resume_from=resume_from)
    except RuntimeError as err:  # a failed task: the console has shown its last lines and the log
        typer.secho(f"pipeline failed: {ANSI.sub('', str(err))}", fg="red", err=True)
        raise typer.Exit(1) from err


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
        resume_from: ResumeOpt = "none",
    ) -> None:
        """Run the whole pipeline locally (`--local`) as a new run, or continue one (`--resume-from`);
        use `ovr submit` for a KFP cluster."""
        if not local:
            typer.secho("ovr run needs --local; submit to a cluster with `ovr submit --host URL`", fg="red", err=True)
            raise typer.Exit(2)
        _run(recipe, list(set_ or []), resume_from)

    @app.command("demo")
    def demo(
        recipe: Annotated[str, typer.Option("--recipe", "-r", help="Recipe name or path.")] = "tiny-cpu",
        set_: SetOpt = None,
    ) -> None:
        """The whole pipeline on CPU with the tiny offline model: data -> SFT -> RL -> eval -> report."""
        typer.echo("ovr demo: data -> cold-start SFT -> RL (vLLM + reward service) -> eval -> report, on CPU")
        _run(recipe, list(set_ or []))
