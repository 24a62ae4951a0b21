"""``ovr serve reward|rollout``: run a service in the foreground (what the containers run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Run ovr's services in the foreground.", no_args_is_help=True)

    @group.command("reward")
    def reward(
        host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port.")] = 8000,
    ) -> None:
        """The reward service under uvicorn (settings from OVR_REWARD_* env vars)."""
        from services.reward.server import serve

        serve(host=host, port=port)

    @group.command("rollout", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def rollout(
        ctx: typer.Context,
        model: Annotated[Path, typer.Option(help="Model folder (save_pretrained layout).")],
        port: Annotated[int, typer.Option(help="Port.")] = 8001,
        host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    ) -> None:
        """vLLM's OpenAI server with ovr's weight-update extension; extra args go to vLLM."""
        from services.rollout.launch import serve

        serve(model=model, host=host, port=port, extra_args=list(ctx.args))

    app.add_typer(group, name="serve")
