"""``ovr checkpoints list|average``: inspect RL checkpoints; build the uniform average of late ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, SetOpt, load


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="RL checkpoints: list them, average the late ones.", no_args_is_help=True)

    @group.command("list")
    def list_(
        recipe: RecipeOpt, set_: SetOpt = None, kind: Annotated[str, typer.Option(help="Checkpoint kind.")] = "rl"
    ) -> None:
        """Complete checkpoints of the recipe's run, oldest first."""
        from ovr.store import Store

        cfg = load(recipe, set_)
        for m in Store.from_config(cfg.store).checkpoints(cfg.name, kind):
            reward = m.metadata.get("metrics", {}).get("reward_mean")
            typer.echo(
                f"step {m.step:>8}  files {len(m.files):>3}" + (f"  reward {reward:.3f}" if reward is not None else "")
            )

    @group.command("average")
    def average(
        recipe: RecipeOpt,
        set_: SetOpt = None,
        last: Annotated[
            int | None, typer.Option(help="Average the newest N checkpoints (default rl.average_last).")
        ] = None,
        steps: Annotated[str | None, typer.Option(help="Comma-separated steps to average instead of --last.")] = None,
        out: Annotated[Path, typer.Option(help="Folder of the averaged model.")] = Path(".ovr/averaged"),
        commit: Annotated[bool, typer.Option(help="Also commit it to the store as kind rl-export.")] = False,
    ) -> None:
        """Uniform average of RL checkpoints' actors (the recipe's final model)."""
        import tempfile

        from ovr.rl.averaging import average_models
        from ovr.rl.state import CHECKPOINT_KIND, EXPORT_KIND
        from ovr.store import Store

        cfg = load(recipe, set_)
        store = Store.from_config(cfg.store)
        done = {m.step: m for m in store.checkpoints(cfg.name, CHECKPOINT_KIND)}
        if not done:
            typer.secho(f"run {cfg.name!r} has no RL checkpoints in {store}", fg="red", err=True)
            raise typer.Exit(1)
        if steps:
            chosen = [int(s) for s in steps.split(",")]
            missing = [s for s in chosen if s not in done]
            if missing:
                typer.secho(f"no checkpoint at steps {missing}; have {sorted(done)}", fg="red", err=True)
                raise typer.Exit(1)
        else:
            chosen = sorted(done)[-(last or cfg.rl.average_last) :]
        with tempfile.TemporaryDirectory() as tmp:
            folders = [
                store.download_checkpoint(cfg.name, s, Path(tmp) / str(s), CHECKPOINT_KIND) / "actor" for s in chosen
            ]
            average_models(folders, out)
        if commit:
            store.commit_checkpoint(cfg.name, max(chosen), out, kind=EXPORT_KIND, metadata={"averaged_steps": chosen})
        typer.echo(f"averaged steps {chosen} into {out}")

    app.add_typer(group, name="checkpoints")
