"""The progress protocol: a stage's events reach the file the local runner tails, or a log line."""

from __future__ import annotations

import math

from ovr.progress import PROGRESS_ENV, ProgressEvent, StageProgress, format_duration, read_events


def test_events_written_with_the_env_var_are_read_back_in_order(tmp_path):
    path = tmp_path / "progress.jsonl"
    printed = []
    env = {PROGRESS_ENV: str(path)}
    progress = StageProgress("rl", 4, start=1, environ=env, printer=printed.append)
    for step in (2, 3):
        progress.update(step, {"reward_mean": 0.1 * step, "bad": float("nan"), "label": "x"})
    events, offset = read_events(path)
    assert [(e.stage, e.step, e.total, e.start) for e in events] == [("rl", 2, 4, 1), ("rl", 3, 4, 1)]
    assert events[1].metrics == {"reward_mean": 0.30000000000000004}  # non-finite and non-numbers left out
    assert events[0].elapsed <= events[1].elapsed
    assert printed == []  # with a progress file, no log line
    assert read_events(path, offset) == ([], offset)


def test_a_half_written_line_waits_for_the_next_read(tmp_path):
    path = tmp_path / "p.jsonl"
    whole = ProgressEvent("sft", 1, 10, {"loss": 2.0}, 1.0).to_json()
    path.write_text(whole + "\n" + '{"stage": "sft", "st')
    events, offset = read_events(path)
    assert [e.step for e in events] == [1] and offset == len(whole) + 1
    with open(path, "a") as f:
        f.write('ep": 2, "total": 10}\nnot json\n')
    events, _ = read_events(path, offset)
    assert [(e.step, e.metrics) for e in events] == [(2, {})]  # the broken line is skipped


def test_other_ranks_report_nothing(tmp_path):
    path = tmp_path / "p.jsonl"
    progress = StageProgress("sft", 5, environ={PROGRESS_ENV: str(path), "RANK": "1"})
    assert progress.update(1, {"loss": 1.0}) is None
    assert not path.exists()


def test_without_the_env_var_a_periodic_line_with_rate_and_eta_is_printed():
    printed = []
    progress = StageProgress("sft", 100, environ={}, every_s=3600, printer=printed.append)
    first = progress.update(1, {"loss": 1.5})
    for step in range(2, 100):
        progress.update(step, {"loss": 1.0})
    progress.update(100, {"loss": 0.5})
    assert len(printed) == 2  # the first step, then nothing for an hour, then the last step
    assert printed[0].startswith("sft step 1/100  loss 1.5  | ") and "ETA" in printed[0]
    assert printed[1].startswith("sft step 100/100  loss 0.5") and printed[1].endswith("ETA 0s")
    assert first.rate > 0 and math.isfinite(first.eta)


def test_a_stage_line_that_fails_falls_back_to_the_default_line():
    printed = []
    progress = StageProgress(
        "rl", 2, environ={}, every_s=0, printer=printed.append, line=lambda ev: f"rl {ev.metrics['missing']}"
    )
    progress.update(1, {"reward_mean": 0.5})
    assert printed and printed[0].startswith("rl step 1/2  reward_mean 0.5")


def test_rate_eta_and_durations():
    ev = ProgressEvent("rl", step=6, total=10, elapsed=8.0, start=2)  # 4 steps in 8 s
    assert ev.rate == 0.5 and ev.eta == 8.0
    assert ProgressEvent("rl", 2, 10, elapsed=0.0, start=2).eta == math.inf
    assert [format_duration(s) for s in (5, 75, 3725, math.inf)] == ["5s", "1m15s", "1h02m", "?"]
