"""``ovr data ...``: build a dataset into the store, list the source adapters, peek at a built set."""

from __future__ import annotations

from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, SetOpt, load


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Datasets: build from sources + procedural tasks, list adapters.", no_args_is_help=True)

    @group.command("build")
    def build(
        recipe: RecipeOpt, set_: SetOpt = None, quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False
    ) -> None:
        """Build the recipe's dataset (sft / rl / eval shards + card) into the store."""
        import logging

        from ovr.data.dataset import dataset_for
        from ovr.store import Store, dataset_prefix

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        cfg = load(recipe, set_)
        store = Store.from_config(cfg.store)
        manifest, _ = dataset_for(cfg, store, progress=not quiet)
        meta = manifest["metadata"]
        for split, info in meta["splits"].items():
            mix = ", ".join(f"{k}={v}" for k, v in info["sources"].items()) or "-"
            typer.echo(f"{split:5s} {info['count']:8d} samples in {len(info['shards'])} shard(s)  [{mix}]")
        dropped = sum(n for reasons in meta["dropped"].values() for n in reasons.values())
        where = f"{store}/{dataset_prefix(cfg.data.dataset_id)}"
        typer.echo(f"dropped {dropped} item(s); card and manifest at {where}/")
        if meta.get("dropped_rows"):
            typer.echo(f"every dropped row with its reason: {where}/{meta['dropped_rows']}")

    @group.command("adapters")
    def adapters() -> None:
        """List the registered source adapters and the column layouts they read."""
        from ovr.data.registry import all_adapters

        for a in all_adapters():
            typer.echo(f"{a.name:12s} [{a.split}] {a.description}")

    @group.command("show")
    def show(
        recipe: RecipeOpt,
        split: Annotated[str, typer.Option(help="sft | rl | eval.")] = "rl",
        n: Annotated[int, typer.Option(help="How many samples to print.")] = 3,
        set_: SetOpt = None,
    ) -> None:
        """Print the first samples of a built split (prompt, answer, images)."""
        from ovr.data.reader import load_samples
        from ovr.store import Store

        cfg = load(recipe, set_)
        for s in load_samples(Store.from_config(cfg.store), cfg.data.dataset_id, split, limit=n):
            typer.echo(f"--- {s.id} [{s.source}, {s.answer_type}, {len(s.images)} image(s)]\n{s.prompt}\n=> {s.answer}")

    app.add_typer(group, name="data")
