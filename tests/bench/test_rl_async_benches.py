"""The async RL benches' arithmetic: the throughput bench's figures from run histories, the cost
model's phases, and the learning comparison's verdicts (the runs themselves are too long for tests)."""

from __future__ import annotations

import pytest

from bench import rl_cost_model as M
from bench.async_seeds import comparison
from bench.demo_seeds import SeedRun
from bench.rl_throughput import ideal, report, summarise


def _history(rollout, reward, train, sync, wait=0.0, busy_per_step=None, steps=4):
    step = max(rollout + reward, train + sync + wait) if wait else rollout + reward + train + sync
    busy = busy_per_step if busy_per_step is not None else rollout
    return [
        {
            "rollout_seconds": rollout,
            "reward_seconds": reward,
            "train_seconds": train,
            "sync_seconds": sync,
            "step_seconds": step,
            "tokens_per_s": 100 / step,
            "async/wait_seconds": wait,
            "rollout_busy_seconds": busy * k,
            "sync_pause_seconds": 0.0,
            "staleness_mean": 0.0,
        }
        for k in range(steps)
    ]


def test_throughput_figures_ideal_ratio_and_idle_fractions():
    sync = summarise("sync", _history(rollout=4.0, reward=1.0, train=4.0, sync=1.0))
    asyn = summarise("async", _history(rollout=4.0, reward=1.0, train=4.0, sync=1.0, wait=0.5, busy_per_step=4.0))
    p, c, best = ideal(sync)
    assert (p, c, best) == (5.0, 5.0, 2.0)
    assert sync.steps == 3 and sync.steps_per_s == pytest.approx(0.1) and asyn.steps_per_s == pytest.approx(1 / 5.5)
    assert sync.trainer_idle == pytest.approx(0.5) and sync.server_idle == pytest.approx(0.6)
    assert asyn.trainer_idle == pytest.approx(0.5 / 5.5) and asyn.server_idle == pytest.approx(1 - 4 / 5.5)
    text = report(sync, asyn, "grpo", (1.0, 1.0, 1.0))
    assert "sync ideal (P + C) / max(P, C) = (5.00 + 5.00) / 5.00 = 2.00" in text
    assert "ratio async/sync = 1.82 (goal >= 1.5), 91 % of the ideal" in text


def test_cost_model_reproduces_its_reference_and_async_never_loses():
    inputs = dict(M.INPUTS)
    eta = M.efficiency(inputs)
    assert 0 < eta <= 1
    # the calibrated roofline gives the published reference rate for Llama-3.1-8B
    rate, _ = M.decode_rate(inputs, 16.06, 131072, M.value(inputs, "ref_ctx"))
    assert rate == pytest.approx(M.value(inputs, "ref_tok_s"), rel=1e-6)
    for length in (24 * 1024, 48 * 1024):
        ph = M.phases(inputs, length, 8)
        assert ph.async_step <= ph.sync_step and ph.async_step >= max(ph.rollout, ph.train)
        assert M.phases(inputs, length, 8, skip_old_logprobs=False).train > ph.train  # the skipped forward
    assert M.phases(inputs, 48 * 1024, 8).rollout > M.phases(inputs, 24 * 1024, 8).rollout
    assert M.phases(inputs, 24 * 1024, 16).rollout < M.phases(inputs, 24 * 1024, 8).rollout
    text = M.table(inputs, [24 * 1024], [8])
    assert text.startswith("MODEL (not measured)") and "- mfu = 0.4: Llama 3 paper" in text


def test_learning_comparison_verdicts():
    sync = [
        SeedRun(s, 1.0, (0.2, 0.6), {"sft": {"synthetic_visual": 0.2}, "rl": {"synthetic_visual": 0.6}}) for s in (0, 1)
    ]
    asyn = [
        SeedRun(s, 1.0, (0.2, 0.5), {"sft": {"synthetic_visual": 0.2}, "rl": {"synthetic_visual": 0.45}})
        for s in (0, 1)
    ]
    text = comparison(sync, asyn)
    assert "| 0 | +0.400 | +0.300 | 60.0 | 45.0 |" in text
    assert "async +0.300 = 0.75x sync (misses the goal >= 0.8x)" in text
    assert "-15.0 points (misses the goal: within 10)" in text
