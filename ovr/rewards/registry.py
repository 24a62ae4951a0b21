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

from ovr.schema import ScoreItem, ScoreResult

RewardFn = Callable[[ScoreItem], ScoreResult]
_REWARDS: dict[str, RewardFn] = {}


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering a reward under ``name``; a second registration of a name raises."""

    def deco(fn: RewardFn) -> RewardFn:
        if name in _REWARDS:
            raise ValueError(f"reward {name!r} is already registered (by {_REWARDS[name].__qualname__})")
        _REWARDS[name] = fn
        return fn

    return deco


def get(name: str) -> RewardFn:
    """The reward registered as ``name`` (KeyError listing the known names otherwise)."""
    _load_builtin()
    try:
        return _REWARDS[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(_REWARDS)}") from None


def names() -> list[str]:
    """Registered reward names, sorted."""
    _load_builtin()
    return sorted(_REWARDS)


def _load_builtin() -> None:
    import ovr.rewards.functions  # noqa: F401  (registers the built-in rewards on import)
