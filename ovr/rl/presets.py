"""Algorithm presets: ``rl.algorithm`` fills the fields a recipe leaves unset.

A preset never overrides a field the recipe (or ``--set``) gave explicitly, so
``--set rl.algorithm=dapo --set rl.clip_high=0.3`` is DAPO with a wider upper clip. A critic is
trained exactly when the estimator needs values (``gae``). Presets are registered by name like
estimators, so a new one (``PRESETS.add("my_algo", {...})``) is selectable from a recipe.

>>> from ovr.config import RLConfig
>>> resolve(RLConfig(algorithm="grpo")).advantage
'grpo'
"""

from __future__ import annotations

from typing import Any

from ovr.config import RLConfig
from ovr.registry import Registry

#: preset name -> RLConfig fields it fills
PRESETS: Registry[dict[str, Any]] = Registry("algorithm preset")
# Open-Reasoner-Zero / OVR: vanilla PPO with a critic, GAE(1, 1), batch-normalised advantages.
PRESETS.add("ppo", {"advantage": "gae", "loss_agg": "token_mean", "adv_norm": "batch"})
# DeepSeekMath GRPO: group-normalised advantages, per-sequence mean loss, no critic.
PRESETS.add("grpo", {"advantage": "grpo", "loss_agg": "seq_mean", "adv_norm": "none", "critic_updates": 0})
# DAPO: clip-higher, dynamic sampling with refill, token-level loss (overlong shaping: reward.overlong_buffer).
PRESETS.add(
    "dapo",
    {
        "advantage": "grpo",
        "loss_agg": "token_mean",
        "adv_norm": "none",
        "clip_high": 0.28,
        "dynamic_sampling": True,
        "critic_updates": 0,
    },
)
# Dr. GRPO: no std division, no length normalisation per sequence.
PRESETS.add("dr_grpo", {"advantage": "dr_grpo", "loss_agg": "seq_sum_norm", "adv_norm": "none", "critic_updates": 0})
PRESETS.add("rloo", {"advantage": "rloo", "loss_agg": "token_mean", "adv_norm": "none", "critic_updates": 0})
PRESETS.add(
    "reinforce_pp", {"advantage": "reinforce_pp", "loss_agg": "token_mean", "adv_norm": "none", "critic_updates": 0}
)

#: estimators that read per-token rewards (where a reward-side KL can be folded in)
TOKEN_REWARD_ESTIMATORS = ("gae", "reinforce_pp")


def resolve(rl: RLConfig) -> RLConfig:
    """A copy of ``rl`` with its preset applied to every field not explicitly set, checked whole."""
    preset = PRESETS.get(rl.algorithm)
    updates = {k: v for k, v in preset.items() if k not in rl.model_fields_set}
    out = RLConfig.model_validate({**rl.model_dump(), **updates})
    if out.kl_reward_coef > 0 and out.advantage not in TOKEN_REWARD_ESTIMATORS:
        raise ValueError(
            f"rl.kl_reward_coef needs an estimator that reads token rewards ({', '.join(TOKEN_REWARD_ESTIMATORS)}); "
            f"{out.advantage!r} uses one score per response: use rl.kl_loss_coef instead"
        )
    return out


def uses_critic(rl: RLConfig) -> bool:
    """The estimator reads critic values (only GAE does)."""
    return rl.advantage == "gae"


def uses_reference(rl: RLConfig) -> bool:
    """A frozen reference policy is needed (either KL term is on)."""
    return rl.kl_reward_coef > 0 or rl.kl_loss_coef > 0
