"""``ovr models ...``: build the tiny offline model, inspect a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Models: the tiny offline Qwen2.5-VL, loading checks.", no_args_is_help=True)

    @group.command("make-tiny")
    def make_tiny(
        out_dir: Annotated[Path, typer.Argument(help="Folder to write the model into.")],
        seed: Annotated[int, typer.Option(help="Weights and tokenizer seed.")] = 0,
    ) -> None:
        """Build the tiny Qwen2.5-VL (real class, tiny config) with its tokenizer and processor."""
        from ovr.models.tiny import make_tiny as build

        path = build(out_dir, seed=seed)
        typer.echo(f"tiny Qwen2.5-VL written to {path}")

    app.add_typer(group, name="models")
