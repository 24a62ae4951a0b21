"""``ovr checkpoints runs|list|average``: a recipe's runs, a run's RL checkpoints, the average of late ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, SetOpt, load

RunOpt = Annotated[str | None, typer.Option("--run-id", help="The run (default: the recipe's newest).")]


def _run_key(store, name: str, run_id: str | None) -> str:
    """``<name>/<run id>`` of the run asked for, or of the newest run of ``name``."""
    known = store.runs(name)
    chosen = run_id or (known[-1] if known else None)
    if chosen is None or chosen not in known:
        typer.secho(
            f"no run {chosen or ''} of {name!r} in {store} (runs: {', '.join(known) or 'none'})", fg="red", err=True
        )
        raise typer.Exit(1)
    return f"{name}/{chosen}"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="RL checkpoints: list them, average the late ones.", no_args_is_help=True)

    @group.command("runs")
    def runs(recipe: RecipeOpt, set_: SetOpt = None) -> None:
        """The recipe's runs in the store, oldest first."""
        from ovr.store import Store

        cfg = load(recipe, set_)
        for run_id in Store.from_config(cfg.store).runs(cfg.name):
            typer.echo(run_id)

    @group.command("list")
    def list_(
        recipe: RecipeOpt,
        set_: SetOpt = None,
        run_id: RunOpt = None,
        kind: Annotated[str, typer.Option(help="Checkpoint kind.")] = "rl",
    ) -> None:
        """Complete checkpoints of a run of the recipe (default: its newest), oldest first."""
        from ovr.store import Store

        cfg = load(recipe, set_)
        store = Store.from_config(cfg.store)
        for m in store.checkpoints(_run_key(store, cfg.name, run_id), kind):
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
        run_id: RunOpt = None,
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
        key = _run_key(store, cfg.name, run_id)
        done = {m.step: m for m in store.checkpoints(key, CHECKPOINT_KIND)}
        if not done:
            typer.secho(f"run {key!r} has no RL checkpoints in {store}", fg="red", err=True)
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
            folders = [store.download_checkpoint(key, s, Path(tmp) / str(s), CHECKPOINT_KIND) / "actor" for s in chosen]
            average_models(folders, out)
        if commit:
            store.commit_checkpoint(key, max(chosen), out, kind=EXPORT_KIND, metadata={"averaged_steps": chosen})
        typer.echo(f"averaged steps {chosen} into {out}")

    app.add_typer(group, name="checkpoints")
