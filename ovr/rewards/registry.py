"""Rewards registered by name: ``@register("name")`` on a pure ``(ScoreItem) -> ScoreResult``.

>>> "ovr_boxed" in names()
True
>>> get("no_such_reward")
Traceback (most recent call last):
...
KeyError: "unknown reward 'no_such_reward'; registered: ['any_answer', 'ovr_boxed', 'think_answer']"
"""

from __future__ import annotations

from collections.abc import Callable

from ovr.registry import Registry
from ovr.schema import ScoreItem, ScoreResult

RewardFn = Callable[[ScoreItem], ScoreResult]


def _load_builtin() -> None:
    import ovr.rewards.functions  # noqa: F401  (registers the built-in rewards on import)


REWARDS: Registry[RewardFn] = Registry("reward", loader=_load_builtin)
#: ``@register("name")``: a second registration of a name raises ValueError
register = REWARDS.register
#: the reward registered as ``name`` (KeyError listing the known names otherwise)
get = REWARDS.get
#: registered reward names, sorted
names = REWARDS.names
