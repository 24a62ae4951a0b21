"""Options shared by stage commands: ``--recipe`` and repeated ``--set key=value``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RecipeOpt = Annotated[
    Path, typer.Option("--recipe", "-r", help="Recipe YAML (recipes/*.yaml).", exists=True, dir_okay=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config field: section.field=value (repeatable)."),
]


def load(recipe: Path, overrides: list[str] | None):
    """Load and validate a recipe, turning validation errors into a clean CLI error."""
    from pydantic import ValidationError

    from ovr.config import load_config

    try:
        return load_config(recipe, overrides or [])
    except (ValidationError, ValueError, FileNotFoundError) as err:
        typer.secho(f"invalid config: {err}", fg="red", err=True)
        raise typer.Exit(2) from err


RunIdOpt = Annotated[
    str | None,
    typer.Option(
        "--run-id",
        help="Continue this run (its checkpoints live under runs/<name>/<run id>); default: $OVR_RUN_ID, "
        "else a new run. Every rank of a torchrun launch must name the same one.",
    ),
]


def run_context(cfg, run_id: str | None):
    """The run a stage command works in: ``--run-id``, ``$OVR_RUN_ID``, or a new one (printed)."""
    import os

    from ovr.context import MLFLOW_RUN_ID_ENV, RUN_ID_ENV, RunContext

    run_id = run_id or os.environ.get(RUN_ID_ENV)
    if run_id is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        typer.secho("several ranks must join one run: pass the same --run-id to every rank", fg="red", err=True)
        raise typer.Exit(2)
    try:
        ctx = RunContext.for_config(cfg, run_id, os.environ.get(MLFLOW_RUN_ID_ENV) or None)
    except ValueError as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from err
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"run {ctx.run_id} of {cfg.name} (continue it with --run-id {ctx.run_id})")
    return ctx
