"""``ovr grading``: how a built eval split will be graded, before any model runs."""

from __future__ import annotations

import typer

from ovr.cli._common import RecipeOpt, SetOpt, load


def register(app: typer.Typer) -> None:
    @app.command("grading")
    def grading_cmd(recipe: RecipeOpt, set_: SetOpt = None) -> None:
        """How the built eval split will be graded, before any model runs: per benchmark, items
        against the published size and items per grading path (rule, string match or judge, ungraded)."""
        from ovr.eval.leaderboard import planned_grading
        from ovr.eval.runner import load_eval_samples, select_samples
        from ovr.eval.tables import grading_table

        cfg = load(recipe, set_)
        samples = select_samples(load_eval_samples(cfg), cfg.eval)
        plan = planned_grading(samples, cfg.eval.benchmark_ids, judge=cfg.eval.judge.grade_answers)
        typer.echo(grading_table(plan))
