"""Recipes load, overrides apply in order, bad values are rejected with the field named."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from ovr.config import load_config


def test_ovr_7b_recipe_encodes_the_published_hyperparameters(repo_root):
    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)
    sft, rl, ro = cfg.sft, cfg.rl, cfg.rollout
    # cold start: 5 epochs, batch 640, 64k packed, lr 2e-4, LLM only
    assert (sft.epochs, sft.global_batch_size, sft.max_seq_len, sft.lr) == (5, 640, 65536, 2e-4)
    assert sft.packing and sft.freeze_vision and sft.freeze_projector
    # RL: ORZ vanilla PPO with a critic
    assert (rl.algorithm, rl.advantage, rl.gamma, rl.lam) == ("ppo", "gae", 1.0, 1.0)
    assert (rl.kl_coef, rl.entropy_coef) == (0.0, 0.0)
    assert (rl.clip_low, rl.clip_high, rl.value_clip) == (0.2, 0.2, 0.2)
    assert rl.adam_betas == (0.9, 0.95) and rl.weight_decay == 0.0
    assert (rl.actor_lr, rl.critic_lr, rl.warmup_steps) == (1e-6, 5e-6, 50)
    assert (rl.prompts_per_step, rl.samples_per_prompt) == (512, 16)
    assert (rl.policy_updates, rl.critic_updates) == (1, 4)
    assert rl.adv_norm == "batch" and rl.truncated_reward == 0.0
    assert math.isclose(rl.value_head_init, math.sqrt(5), rel_tol=1e-9)
    assert rl.max_steps == 900
    assert [(s.from_step, s.max_tokens) for s in rl.max_response_len_schedule] == [
        (0, 24576), (300, 32768), (700, 49152)
    ]
    assert rl.max_tokens_at(0) == 24576 and rl.max_tokens_at(299) == 24576
    assert rl.max_tokens_at(300) == 32768 and rl.max_tokens_at(899) == 49152
    assert (ro.temperature, ro.top_p) == (1.0, 1.0)
    assert rl.average_last > 1  # final model = uniform average of late checkpoints
    assert cfg.reward.name == "ovr_boxed"
    assert {"math500", "aime24", "mathvision", "mathverse_vision_only"} <= set(cfg.eval.benchmarks)


def test_tiny_recipe_is_valid_and_local(repo_root):
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", use_env=False)
    assert cfg.device == "cpu" and cfg.model.build_tiny_if_missing
    assert not cfg.store.uri.startswith("s3://")


def test_overrides_env_then_cli(repo_root):
    import os

    os.environ["OVR__RL__ACTOR_LR"] = "3e-6"
    os.environ["OVR__SFT__PACKING"] = "false"
    try:
        cfg = load_config(repo_root / "recipes/ovr-7b.yaml")
        assert cfg.rl.actor_lr == 3e-6 and cfg.sft.packing is False
        cfg = load_config(
            repo_root / "recipes/ovr-7b.yaml",
            ["rl.actor_lr=2e-6", "rl.max_response_len_schedule=[{from_step: 0, max_tokens: 64}]"],
        )
        assert cfg.rl.actor_lr == 2e-6 and cfg.rl.max_tokens_at(500) == 64
    finally:
        del os.environ["OVR__RL__ACTOR_LR"], os.environ["OVR__SFT__PACKING"]


@pytest.mark.parametrize(
    "override, field",
    [
        ("rl.clip_low=-0.1", "clip_low"),
        ("rl.no_such_field=1", "no_such_field"),
        ("sft.zero_stage=1", "zero_stage"),
        ("rl.max_response_len_schedule=[{from_step: 5, max_tokens: 10}]", "max_response_len_schedule"),
        ("rollout.max_model_len=100", "max_model_len"),
        ("data.prompt_template=no placeholder", "prompt_template"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(repo_root, override, field):
    with pytest.raises(ValidationError, match=field):
        load_config(repo_root / "recipes/ovr-7b.yaml", [override], use_env=False)


def test_cli_config_show_and_validate(repo_root):
    from typer.testing import CliRunner

    from ovr.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["config", "show", str(repo_root / "recipes/tiny-cpu.yaml"), "--set", "rl.actor_lr=7e-6"])
    assert res.exit_code == 0 and "actor_lr: 7.0e-06" in res.output
    res = runner.invoke(app, ["config", "validate", str(repo_root / "recipes/tiny-cpu.yaml"), "--set", "rl.gamma=2"])
    assert res.exit_code == 2 and "gamma" in res.output
