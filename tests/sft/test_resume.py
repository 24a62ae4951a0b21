"""Kill-and-resume: a run interrupted after a checkpoint continues from the newest complete store
checkpoint with the same step counter, the next unseen rows and the same optimizer state."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from ovr.context import RunContext
from ovr.sft.train import run_sft


def test_interrupted_run_resumes_exactly(make_cfg, sft_samples, stop_before, tmp_path):
    samples = sft_samples[:120]
    settings = ("sft.max_steps=6", "sft.save_every=2")
    straight = run_sft(
        make_cfg("straight", *settings),
        RunContext.new("straight", "t1"),
        samples=samples,
        resume="never",
        progress=False,
    )

    cfg = make_cfg("killed", *settings, "sft.keep_local_checkpoints=1")
    with pytest.raises(KeyboardInterrupt):
        run_sft(
            cfg,
            RunContext.new(cfg.name, "t1"),
            samples=samples,
            resume="never",
            progress=False,
            callbacks=[stop_before(4)],
        )
    resumed = run_sft(cfg, RunContext.new(cfg.name, "t1"), samples=samples, resume="auto", progress=False)

    assert resumed.resumed_from == 2
    assert resumed.global_step == 6
    assert sorted(resumed.rows_per_step) == [3, 4, 5, 6]
    for step in (3, 4, 5, 6):  # the same rows in the same order as the uninterrupted run
        assert resumed.rows_per_step[step] == straight.rows_per_step[step]
    # same weights, optimizer and schedule at step 2 => the same losses afterwards
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-4)
    assert resumed.checkpoints == [4, 6]
    # local disk held one checkpoint at a time, the downloaded one it resumed from included
    folders = sorted(p.name for p in (tmp_path / "work" / "killed").rglob("checkpoint-*") if p.is_dir())
    assert folders == ["checkpoint-6"], folders


def test_resume_refuses_other_data(make_cfg, sft_samples, stop_before):
    cfg = make_cfg("other-data", "sft.max_steps=3", "sft.save_every=1")
    with pytest.raises(KeyboardInterrupt):
        run_sft(
            cfg,
            RunContext.new(cfg.name, "t1"),
            samples=sft_samples[:40],
            resume="never",
            progress=False,
            callbacks=[stop_before(2)],
        )
    with pytest.raises(ValueError, match="trained on other data"):
        run_sft(cfg, RunContext.new(cfg.name, "t1"), samples=sft_samples[40:80], resume="auto", progress=False)


class _StopAtTrainEnd(TrainerCallback):
    """Killed after the last checkpoint was committed, before the export."""

    def on_train_end(self, args, state, control, **kw):
        raise KeyboardInterrupt("interrupted before the export")


def test_a_run_stopped_after_its_last_checkpoint_exports_without_another_step(make_cfg, sft_samples, capsys):
    cfg = make_cfg("last-ckpt", "sft.max_steps=4", "sft.save_every=2")
    run = RunContext.new(cfg.name, "t1")
    with pytest.raises(KeyboardInterrupt):
        run_sft(cfg, run, samples=sft_samples[:80], progress=False, callbacks=[_StopAtTrainEnd()])
    resumed = run_sft(cfg, run, samples=sft_samples[:80], progress=False)
    assert resumed.resumed_from == 4 and resumed.global_step == 4 and resumed.rows_per_step == {}  # no step 5
    assert resumed.export_prefix == "runs/last-ckpt/t1/sft-export/step-00000004"

    capsys.readouterr()
    again = run_sft(cfg, run, samples=sft_samples[:80], progress=False)  # the same run once more: nothing to do
    assert (again.global_step, again.export_prefix, again.export_dir) == (4, resumed.export_prefix, None)
    assert "sft: run t1 finished earlier (step 4): nothing to do" in capsys.readouterr().out
    other = run_sft(cfg, RunContext.new(cfg.name, "t2"), samples=sft_samples[:80], progress=False)
    assert other.resumed_from is None and other.global_step == 4  # a new run trains, never continues another
