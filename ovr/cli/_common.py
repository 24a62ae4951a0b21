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
