"""The local run's console: kfp task lines become stage headers, the stages' progress events become a
few progress lines, everything else lands in the log file, and the summary closes it."""

from __future__ import annotations

import io
import json
import logging
import os
import re

import pytest
from kfp.local import logging_utils
from rich.console import Console

from ovr.progress import PROGRESS_ENV, StageProgress
from pipelines.console import RunConsole
from pipelines.summary import behaviour_values, gather_summary, render_summary

TASKS = ["validate-config", "build-data", "train-sft", "evaluate-model", "train-rl", "evaluate-model-2", "make-report"]
STEPS = {"train-sft": ("sft", 30, "loss"), "train-rl": ("rl", 8, "reward_mean")}


def _kfp_task(name: str, ok: bool = True) -> None:
    """What kfp.local's task dispatcher prints around a task (its own logging helpers)."""
    with logging_utils.local_logger_context():
        logging.info(f"Executing task {logging_utils.format_task_name(name)}")
        logging.info("Streamed logs:\n")
        with logging_utils.indented_print():
            print('{"inputs": {"parameterValues": {"recipe": "tiny-cpu"}}, "outputs": {"artifacts": {}}}')
            for i in range(50):
                print(f'INFO:     127.0.0.1:5{i:04d} - "POST /v1/chat/completions HTTP/1.1" 200 OK')
            if name in STEPS:
                stage, total, key = STEPS[name]
                progress = StageProgress(stage, total)  # the task's env: the runner's progress file
                for step in range(1, total + 1):
                    progress.update(step, {key: 1.0 / step})
        status = logging_utils.format_status(
            logging_utils.status.Status.SUCCESS if ok else logging_utils.status.Status.FAILURE
        )
        if ok:
            logging.info(f"Task {logging_utils.format_task_name(name)} finished with status {status}")
        logging_utils.print_horizontal_line()


def _result(label: str, acc: float, wait: float) -> dict:
    return {
        "label": label,
        "step": 1,
        "k": 2,
        "benchmarks": [{"benchmark": "arith", "avg_at_k": acc}, {"benchmark": "synthetic_visual", "avg_at_k": acc / 2}],
        "behaviour": [{"group": "synthetic_visual", "rates": {"kw_wait": wait}}],  # as EvalResult orders them
        "behaviour_by_modality": [
            {"group": "vision", "responses": 8, "rates": {"kw_wait": wait, "kw_retry": 0.0}},
            {"group": "language", "responses": 8, "rates": {"kw_wait": wait / 2}},
        ],
        "transfer": {"kw_wait": 2.0},
    }


def test_a_run_prints_headers_few_progress_lines_and_a_summary(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    log = tmp_path / "run.log"
    assert PROGRESS_ENV not in os.environ
    with RunConsole(log, tmp_path / "progress.jsonl", console=console, redirect_fds=False, poll_s=0.05) as con:
        for name in TASKS:
            _kfp_task(name)
        assert os.environ[PROGRESS_ENV] == str(tmp_path / "progress.jsonl")
    assert PROGRESS_ENV not in os.environ
    files = []
    for label, acc, wait in (("rl", 0.75, 0.5), ("sft", 0.5, 0.25)):
        (tmp_path / label).mkdir()
        (tmp_path / label / "result.json").write_text(json.dumps(_result(label, acc, wait)))
        files.append(tmp_path / label / "result.json")
    summary = gather_summary(files, None, None, [("report", "/x/report.md")])
    render_summary(console, summary)

    text = out.getvalue()
    lines = text.splitlines()
    for label in ("validate", "data", "SFT", "eval SFT", "RL", "eval RL", "report"):
        assert f"▶ {label}  " in text and f"✓ {label} " in text
    assert "POST /v1/chat" not in text and "parameterValues" not in text
    assert len(lines) < 60, text
    sft_lines = [line for line in lines if line.startswith("  sft ")]
    assert 5 <= len(sft_lines) <= 10 and "ETA" in sft_lines[-1]  # a tenth of the stage per line
    assert "30 steps, loss 0.033" in text and "8 steps, reward 0.125" in text
    assert len(con.events) == 38
    # the summary: SFT before RL, gain column, behaviour rows read from the result files
    assert lines.index(next(line for line in lines if "Eval accuracy (avg@2, %)" in line)) > lines.index(
        next(line for line in lines if line.startswith("✓ report"))
    )
    assert any(line.split() == ["arith", "│", "50.0", "│", "75.0", "│", "+25.0"] for line in lines), text
    assert any("behaviour/synthetic_visual/kw_wait" in line and "+0.250" in line for line in lines), text
    assert any("behaviour_by_modality/language/kw_wait" in line and "+0.125" in line for line in lines), text
    assert not any("kw_retry" in line or "vision/kw_wait" in line for line in lines), text  # zero; a duplicate
    assert "(behaviour figures: 1 at 0 in every eval not shown)" in text
    assert lines[-1].startswith("report : /x/report.md")

    logged = log.read_text()
    assert logged.count("POST /v1/chat/completions") == 50 * len(TASKS) and "parameterValues" in logged
    assert "Executing task" in logged


def test_a_failed_task_shows_its_last_log_lines(tmp_path):
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        RunConsole(
            tmp_path / "run.log", tmp_path / "p.jsonl", console=Console(file=out, width=120), redirect_fds=False
        ),
    ):
        _kfp_task("validate-config")
        with logging_utils.local_logger_context():
            logging.info(f"Executing task {logging_utils.format_task_name('build-data')}")
            with logging_utils.indented_print():
                print("Traceback (most recent call last):\nValueError: no source named 'gsm8k'")
        raise RuntimeError("Task 'build-data' finished with status FAILURE")
    text = out.getvalue()
    assert "✗ data failed" in text and "ValueError: no source named 'gsm8k'" in text
    assert f"full log: {tmp_path / 'run.log'}" in text


def test_behaviour_values_are_found_generically():
    result = {
        "label": "rl",
        "behaviour": [
            {
                "group": "arith",
                "responses": 4,
                "rates": {"judge_reflection": 0.5},
                "mean_counts": {"judge_reflection": 1.5},
            }
        ],
        "behaviour_summary": {"reflection_rate": 0.25},
        "benchmarks": [],
    }
    assert behaviour_values(result) == {"behaviour/arith/judge_reflection": 0.5}  # rates preferred
    assert behaviour_values({"behaviour_summary": {"reflection_rate": 0.25}, "k": 2}) == {
        "behaviour_summary/reflection_rate": 0.25
    }
    assert behaviour_values({"label": "sft", "benchmarks": []}) == {}
    two = {
        "behaviour": [{"group": g, "rates": {"kw_wait": 0.1}} for g in ("a", "b", "c")],
        "behaviour_by_modality": [{"group": g, "rates": {"kw_wait": 0.2}} for g in ("vision", "language")],
    }
    assert list(behaviour_values(two)) == [f"behaviour/{g}/kw_wait" for g in "abc"] + [
        "behaviour_by_modality/vision/kw_wait",
        "behaviour_by_modality/language/kw_wait",
    ]


def test_live_mode_on_a_terminal_draws_bars_and_keeps_the_headers(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    with RunConsole(tmp_path / "run.log", tmp_path / "p.jsonl", console=console, redirect_fds=False, poll_s=0.05):
        _kfp_task("train-sft")
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert "━━" in text  # the bar was drawn
    assert "▶ SFT" in text and "✓ SFT" in text and "30 steps, loss 0.033" in text


def _console_dag(repo_root, work, *args: str):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(repo_root), "PYTHONWARNINGS": "ignore::FutureWarning"}
    return subprocess.run(
        [sys.executable, str(repo_root / "tests/pipelines/console_dag.py"), str(work), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
        env=env,
    )


def test_a_failed_kfp_local_task_shows_its_error_and_stops_the_run(repo_root, tmp_path):
    done = _console_dag(repo_root, tmp_path, "3")
    assert done.returncode != 0
    out = done.stdout
    assert "✓ data" in out and "✗ RL failed" in out and "after the run" not in out
    assert "ValueError: reward service unreachable at step 3" in out  # the task's own traceback line
    assert "  rl 2/5" in out and f"full log: {tmp_path / 'run.log'}" in out
    assert "Inner task failed" in done.stderr and "train-rl" in done.stderr  # kfp's exception, after the console
    assert len(out.splitlines()) <= 30, out


def test_a_real_kfp_local_dag_behind_the_console(repo_root, tmp_path):
    """kfp.local's own output, the tasks' stdout and native stderr all land in the log; the console
    shows the two stages and the RL progress read from the file the tasks inherited."""
    done = _console_dag(repo_root, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "▶ data" in out and "✓ data" in out and "▶ RL" in out and "✓ RL" in out
    assert "5 steps, reward 0.500  accuracy 0.500" in out
    assert out.rstrip().endswith("after the run")
    assert "POST /v1/completions" not in out + done.stderr and "executor" not in out
    assert len(out.splitlines()) <= 12, out
    log = (tmp_path / "run.log").read_text()
    assert "native stderr of a task" in log and "from the parent, to the log" in log
    assert log.count("POST /v1/completions") == 5 and "Executing task" in log


def test_ovr_run_local_reports_a_failed_pipeline_with_exit_code_1(monkeypatch):
    from typer.testing import CliRunner

    import pipelines.local
    from ovr.cli import app

    def failing(recipe, overrides, **kw):
        assert recipe == "tiny-cpu" and overrides == ["rl.max_steps=2"]
        raise RuntimeError("Pipeline \x1b[95m'ovr'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m.")

    monkeypatch.setattr(pipelines.local, "run_with_console", failing)
    res = CliRunner().invoke(app, ["run", "--local", "--set", "rl.max_steps=2"])
    assert res.exit_code == 1
    assert "pipeline failed: Pipeline 'ovr' finished with status FAILURE." in res.output
