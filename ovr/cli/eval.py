"""``ovr eval`` (one checkpoint on the eval benchmarks) and ``ovr report`` (the run report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovr.cli._common import RecipeOpt, SetOpt, load


def _model_dir(cfg, model: Path | None, checkpoint: int | None, kind: str, work: Path) -> Path:
    """The folder to serve: --model, a store checkpoint (--checkpoint), or the recipe's model."""
    if model is not None:
        return model
    if checkpoint is not None:
        from ovr.store import Store

        return Store.from_config(cfg.store).download_checkpoint(cfg.name, checkpoint, work / "model", kind=kind)
    from ovr.models.loading import resolve_model_path

    return resolve_model_path(cfg.model, cfg.store)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        recipe: RecipeOpt,
        set_: SetOpt = None,
        out: Annotated[Path, typer.Option(help="Folder for responses.jsonl, results.md, result.json.")] = Path(
            ".ovr/eval"
        ),
        endpoint: Annotated[
            list[str] | None,
            typer.Option(help="Rollout server URL (repeatable); default: rollout.endpoints or a local vLLM."),
        ] = None,
        model: Annotated[Path | None, typer.Option(help="Model folder to serve locally.")] = None,
        checkpoint: Annotated[
            int | None, typer.Option(help="Serve this step of the run's checkpoints from the store.")
        ] = None,
        kind: Annotated[str, typer.Option(help="Checkpoint kind in the store (with --checkpoint).")] = "checkpoint",
        label: Annotated[str | None, typer.Option(help="Name of the checkpoint in tables and plots.")] = None,
        step: Annotated[int, typer.Option(help="Training step of the checkpoint (x axis of reports).")] = 0,
        reward_url: Annotated[
            str | None,
            typer.Option(help="Score through this reward service (default: reward.url, else in this process)."),
        ] = None,
    ) -> None:
        """Evaluate a checkpoint: avg@k per benchmark/subject, truncation, length, behaviours."""
        import contextlib
        import tempfile

        from ovr.eval.runner import evaluate

        cfg = load(recipe, set_)
        if endpoint:
            cfg.rollout.endpoints = list(endpoint)
        if reward_url:
            cfg.reward.url = reward_url
        step = checkpoint if checkpoint is not None and step == 0 else step
        with contextlib.ExitStack() as stack:
            if not cfg.rollout.endpoints:
                from services.local import local_services

                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ovr-eval-")))
                model_dir = _model_dir(cfg, model, checkpoint, kind, work)
                typer.echo(f"starting a local vLLM server for {model_dir} ...")
                cfg = stack.enter_context(local_services(cfg, model_dir, reward=False))
            result = evaluate(cfg, out_dir=out, label=label, step=step)
        typer.echo((out / "results.md").read_text())
        typer.echo(
            f"{result.questions} questions in {result.wall_s:.1f} s ({result.questions_per_s:.2f} questions/s); "
            f"results in {out}"
        )

    @app.command("report")
    def report_cmd(
        recipe: RecipeOpt,
        eval_dir: Annotated[
            list[Path], typer.Option("--eval", help="Folder of an `ovr eval` result (repeatable, one per checkpoint).")
        ],
        set_: SetOpt = None,
        out: Annotated[Path, typer.Option(help="Report folder (report.md, report_inline.md, figures/).")] = Path(
            ".ovr/report"
        ),
    ) -> None:
        """Markdown + PNG run report: accuracy across checkpoints, training curves, behaviours."""
        from ovr.eval.records import EvalResult
        from ovr.eval.report import build_report

        cfg = load(recipe, set_)
        try:
            results = [EvalResult.load(d) for d in eval_dir]
        except FileNotFoundError as err:
            typer.secho(str(err), fg="red", err=True)
            raise typer.Exit(2) from err
        path = build_report(cfg, results, out)
        typer.echo(f"report written to {path}")
