"""The RL algorithm names a recipe may use, and what each one means for the rest of the config.

Config validates ``rl.algorithm``, ``rl.advantage`` and ``rl.loss_agg`` against these registries
without importing the RL stage: the stage (``ovr/rl/algorithms.py``) registers its implementations
under these names, and a new estimator registered there is declared here by that same call.

- :data:`ESTIMATORS`: advantage estimator name -> :class:`Estimator` (does it read critic values;
  does it read per-token rewards, where a reward-side KL can be folded in).
- :data:`LOSS_AGGS`: token-loss aggregation name -> one-line description.
- :data:`PRESETS`: algorithm name -> the RLConfig fields it fills. ``custom`` fills nothing: every
  part is the recipe's own choice.

>>> PRESETS.get("grpo")["advantage"], ESTIMATORS.get("grpo").critic
('grpo', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovr.registry import Registry


@dataclass(frozen=True)
class Estimator:
    """What an advantage estimator needs from the rest of the run."""

    critic: bool = False  # reads critic values: a critic is built and trained (critic_updates >= 1)
    token_rewards: bool = False  # reads per-token rewards: a reward-side KL (rl.kl_reward_coef) applies


ESTIMATORS: Registry[Estimator] = Registry("advantage estimator")
ESTIMATORS.add("gae", Estimator(critic=True, token_rewards=True))
ESTIMATORS.add("grpo", Estimator())
ESTIMATORS.add("dr_grpo", Estimator())
ESTIMATORS.add("rloo", Estimator())
ESTIMATORS.add("reinforce_pp", Estimator(token_rewards=True))

LOSS_AGGS: Registry[str] = Registry("loss aggregation")
LOSS_AGGS.add("token_mean", "every token weighs the same (DAPO, ORZ)")
LOSS_AGGS.add("seq_mean", "every response weighs the same (GRPO)")
LOSS_AGGS.add("seq_sum_norm", "token sum over responses x a constant length (Dr. GRPO)")

#: preset name -> RLConfig fields it fills where the recipe and overrides leave them unset
PRESETS: Registry[dict[str, Any]] = Registry("algorithm preset")
# Open-Reasoner-Zero / OVR: vanilla PPO with a critic, GAE(1, 1), batch-normalised advantages,
# clip 0.2 on ratios and values, 4 critic updates per generation, no KL, no entropy bonus.
PRESETS.add(
    "ppo",
    {
        "advantage": "gae",
        "loss_agg": "token_mean",
        "adv_norm": "batch",
        "gamma": 1.0,
        "lam": 1.0,
        "clip_low": 0.2,
        "clip_high": 0.2,
        "value_clip": 0.2,
        "critic_updates": 4,
    },
)
# DeepSeekMath GRPO: group-normalised advantages, per-sequence mean loss, no critic.
PRESETS.add("grpo", {"advantage": "grpo", "loss_agg": "seq_mean", "adv_norm": "none"})
# DAPO: clip-higher, dynamic sampling with refill, token-level loss (overlong shaping: reward.overlong_buffer).
PRESETS.add(
    "dapo",
    {"advantage": "grpo", "loss_agg": "token_mean", "adv_norm": "none", "clip_high": 0.28, "dynamic_sampling": True},
)
# Dr. GRPO: no std division, no length normalisation per sequence.
PRESETS.add("dr_grpo", {"advantage": "dr_grpo", "loss_agg": "seq_sum_norm", "adv_norm": "none"})
PRESETS.add("rloo", {"advantage": "rloo", "loss_agg": "token_mean", "adv_norm": "none"})
PRESETS.add("reinforce_pp", {"advantage": "reinforce_pp", "loss_agg": "token_mean", "adv_norm": "none"})
# Every part chosen by the recipe (rl.advantage, rl.loss_agg, ...): nothing is filled in.
PRESETS.add("custom", {})


def estimator_of(preset: str) -> str | None:
    """The estimator a preset trains with (None for ``custom``)."""
    return PRESETS.get(preset).get("advantage")
