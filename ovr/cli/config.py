"""``ovr config show RECIPE``: print the resolved config (defaults + recipe + env + --set)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import SetOpt, load


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True)

    @group.command("show")
    def show(
        recipe: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Recipe YAML.")],
        set_: SetOpt = None,
    ) -> None:
        """Print the fully resolved config as YAML."""
        from ovr.config import dump_config

        typer.echo(dump_config(load(recipe, set_)))

    @group.command("validate")
    def validate(
        recipe: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Recipe YAML.")],
        set_: SetOpt = None,
    ) -> None:
        """Exit 0 if the recipe is valid and its dataset plan can work (printed), 2 with the reason otherwise."""
        from ovr.data.plan import DatasetPlanError, dataset_plan

        cfg = load(recipe, set_)
        try:
            plan = dataset_plan(cfg, needs=("eval",))
        except DatasetPlanError as err:
            typer.secho(f"invalid data config: {err}", fg="red", err=True)
            raise typer.Exit(2) from err
        typer.echo(plan.render())
        typer.echo(f"{recipe}: valid ({cfg.name})")

    app.add_typer(group, name="config")
