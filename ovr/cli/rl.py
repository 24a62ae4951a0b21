"""``ovr rl --recipe R``: the RL stage (starts local rollout/reward servers when none are configured).

Under ``torchrun`` every rank runs this command; rank 0 starts or reaches the services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, RunIdOpt, SetOpt, load, run_context


def register(app: typer.Typer) -> None:
    @app.command("rl")
    def rl(
        recipe: RecipeOpt,
        set_: SetOpt = None,
        run_id: RunIdOpt = None,
        resume: Annotated[
            str, typer.Option(help="auto (the run's newest checkpoint), never, or a step number.")
        ] = "auto",
        weights_dir: Annotated[
            Path | None,
            typer.Option(
                help="Folder shared with the rollout servers for weight pushes (default: rollout.weights_dir)."
            ),
        ] = None,
        progress: Annotated[bool, typer.Option(help="Show progress lines.")] = True,
    ) -> None:
        """Multimodal RL (PPO with a critic, or the GRPO family) from the recipe's starting model."""
        import os
        from contextlib import nullcontext

        from ovr.models.loading import resolve_model_path
        from ovr.rl.trainer import run_rl

        cfg = load(recipe, set_)
        ctx = run_context(cfg, run_id)
        if weights_dir is not None:
            ctx = ctx.with_(weights_dir=str(weights_dir))
        main = os.environ.get("RANK", "0") == "0"
        if main:
            from services.local import local_services

            services = local_services(cfg, ctx, resolve_model_path(cfg.model, cfg.store), trainer=True)
        else:  # other ranks train only; rank 0 talks to the services
            services = nullcontext(ctx)
        with services as served:
            res = run_rl(cfg, served, resume=resume, progress=progress)
        if main:
            typer.echo(f"rl finished at step {res.global_step}; final model {res.export_prefix} (in the store)")
