"""The ``ovr`` command line: one sub-command (group) per stage.

Each module in this package exposes ``register(app: typer.Typer) -> None`` and is picked up here,
so a stage adds its commands by adding its own module (``ovr/cli/<stage>.py``), nothing else.
Heavy imports (torch, transformers, vLLM clients) happen inside the commands, so ``ovr --help`` is fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys

import typer

app = typer.Typer(
    name="ovr",
    help="Open-Vision-Reasoner-style training: data -> cold-start SFT -> multimodal RL -> eval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"ovr.cli.{info.name} has no register(app) function")
        register(app)


_register_all()


def main() -> None:
    # SIGTERM (kubectl delete, kill, a KFP task cancelled) unwinds like Ctrl-C, so the servers a
    # command started (vLLM, the reward service) are stopped instead of orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    app()
