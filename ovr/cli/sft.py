"""``ovr sft``: the cold-start SFT stage (one process, or one rank under torchrun/deepspeed)."""

from __future__ import annotations

from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, RunIdOpt, SetOpt, load, run_context


def register(app: typer.Typer) -> None:
    @app.command("sft")
    def sft_cmd(
        recipe: RecipeOpt,
        set_: SetOpt = None,
        run_id: RunIdOpt = None,
        resume: Annotated[
            str, typer.Option(help="auto: continue the run from its newest checkpoint; never: start it fresh.")
        ] = "auto",
        progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    ) -> None:
        """Fine-tune the language model on the SFT split; checkpoints and the export go to the store."""
        if resume not in ("auto", "never"):
            typer.secho(f"--resume must be auto or never, not {resume!r}", fg="red", err=True)
            raise typer.Exit(2)
        cfg = load(recipe, set_)
        from ovr.sft.train import run_sft

        result = run_sft(cfg, run_context(cfg, run_id), resume=resume, progress=progress)
        if result.resumed_from is not None:
            typer.echo(f"resumed from step {result.resumed_from}")
        last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
        typer.echo(
            f"sft done: step {result.global_step}, final loss {last}, "
            f"{result.tokens_per_s:.0f} tokens/s, padding efficiency {result.padding_efficiency:.3f}"
        )
        typer.echo(
            f"export: {result.export_prefix}" + (f" (local copy {result.export_dir})" if result.export_dir else "")
        )
