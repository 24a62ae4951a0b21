"""Verifiable rewards: answer extraction, checkers by answer type, and rewards registered by name.

Every reward grades through :func:`ovr.rewards.grading.grade`: the rule checker where it reads the
reference (with the exact rewritings of :mod:`ovr.rewards.normalize`), normalised string match where
it cannot; ``ScoreResult.grading`` says which.

``score_item`` runs a reward in this process with no time limit (tests, offline analysis); the
reward service runs the same function in worker processes under a per-item time limit, and
:class:`ovr.rewards.client.RewardClient` is how trainers and evaluators call it.

>>> from ovr.schema import ScoreItem
>>> score_item(ScoreItem(response=r"\\boxed{x=2}", reference="2")).accuracy
1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ovr.rewards import registry
from ovr.rewards.options import RewardOptions
from ovr.schema import ScoreItem, ScoreResult

if TYPE_CHECKING:  # pragma: no cover
    from ovr.config import RewardConfig


def validate_item(item: ScoreItem) -> None:
    """Raise ValueError/KeyError if the item names an unknown reward or carries invalid options."""
    registry.get(item.reward)
    RewardOptions.model_validate(item.options)


def score_item(item: ScoreItem) -> ScoreResult:
    """Score one item with its registered reward (in-process, pure, no time limit)."""
    return registry.get(item.reward)(item)


def score_items(items: Iterable[ScoreItem]) -> list[ScoreResult]:
    """Score items in order (in-process, no time limit)."""
    return [score_item(it) for it in items]


def options_from_config(cfg: RewardConfig, reflection_words: Sequence[str] | None = None) -> dict:
    """``ScoreItem.options`` implied by a :class:`ovr.config.RewardConfig` (format weight, overlong
    shaping, truncated reward) and the reflection words behaviour metrics count.

    >>> from ovr.config import RewardConfig
    >>> options_from_config(RewardConfig(format_weight=0.2, overlong_buffer=64))
    {'format_weight': 0.2, 'truncated_reward': 0.0, 'overlong_buffer': 64, 'overlong_penalty': 1.0}
    """
    opts: dict = {"format_weight": cfg.format_weight, "truncated_reward": cfg.truncated_reward}
    if cfg.overlong_buffer is not None:
        opts |= {"overlong_buffer": cfg.overlong_buffer, "overlong_penalty": cfg.overlong_penalty}
    if reflection_words is not None:
        opts["reflection_words"] = list(reflection_words)
    return opts


__all__ = ["RewardOptions", "options_from_config", "registry", "score_item", "score_items", "validate_item"]
