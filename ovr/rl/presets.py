"""Algorithm presets: ``rl.algorithm`` fills the fields a recipe leaves unset.

A preset never overrides a field the recipe (or ``--set``) gave explicitly, so
``--set rl.algorithm=dapo --set rl.clip_high=0.3`` is DAPO with a wider upper clip. A critic is
trained exactly when the estimator needs values (``gae``).

>>> from ovr.config import RLConfig
>>> resolve(RLConfig(algorithm="grpo")).advantage
'grpo'
"""

from __future__ import annotations

from typing import Any

from ovr.config import RLConfig

PRESETS: dict[str, dict[str, Any]] = {
    # Open-Reasoner-Zero / OVR: vanilla PPO with a critic, GAE(1, 1), batch-normalised advantages.
    "ppo": {"advantage": "gae", "loss_agg": "token_mean", "adv_norm": "batch"},
    # DeepSeekMath GRPO: group-normalised advantages, per-sequence mean loss, no critic.
    "grpo": {"advantage": "grpo", "loss_agg": "seq_mean", "adv_norm": "none", "critic_updates": 0},
    # DAPO: clip-higher, dynamic sampling, token-level loss (overlong shaping: reward.overlong_buffer).
    "dapo": {
        "advantage": "grpo",
        "loss_agg": "token_mean",
        "adv_norm": "none",
        "clip_high": 0.28,
        "dynamic_sampling": True,
        "critic_updates": 0,
    },
    # Dr. GRPO: no std division, no length normalisation per sequence.
    "dr_grpo": {"advantage": "dr_grpo", "loss_agg": "seq_sum_norm", "adv_norm": "none", "critic_updates": 0},
    "rloo": {"advantage": "rloo", "loss_agg": "token_mean", "adv_norm": "none", "critic_updates": 0},
    "reinforce_pp": {"advantage": "reinforce_pp", "loss_agg": "token_mean", "adv_norm": "none", "critic_updates": 0},
}


def resolve(rl: RLConfig) -> RLConfig:
    """A copy of ``rl`` with its preset applied to every field not explicitly set."""
    preset = PRESETS[rl.algorithm]
    explicit = rl.model_fields_set
    updates = {k: v for k, v in preset.items() if k not in explicit}
    return rl.model_copy(update=updates)


def uses_critic(rl: RLConfig) -> bool:
    """The estimator reads critic values (only GAE does)."""
    return rl.advantage == "gae"
