"""The behaviours a cold-start trace may show, as config knows them (names and shares).

The data stage (``ovr/data/synthetic.py``) writes the traces and registers a writer under each of
these names; config validates ``data.synthetic.behaviours`` here without importing it.

>>> check_behaviours({"reflect": 0.2, "direct": 0.8})
{'reflect': 0.2, 'direct': 0.8}
"""

from __future__ import annotations

from collections.abc import Mapping

from ovr.registry import Registry

#: trace behaviour name -> what a trace of it shows
TRACE_BEHAVIOURS: Registry[str] = Registry("trace behaviour")
TRACE_BEHAVIOURS.add("direct", "the steps, straight")
TRACE_BEHAVIOURS.add("verify", "the steps, then a line checking the result another way ('Let me verify: ...')")
TRACE_BEHAVIOURS.add("reflect", "a slip, noticed ('Wait, let me recheck: ...') and corrected")

DEFAULT_BEHAVIOURS: dict[str, float] = {"reflect": 0.25, "verify": 0.25, "direct": 0.5}


def check_behaviours(mix: Mapping[str, float]) -> dict[str, float]:
    """``mix`` if it names only known trace behaviours with non-negative shares summing to 1."""
    unknown = sorted(set(mix) - set(TRACE_BEHAVIOURS.names()))
    if unknown:
        raise ValueError(f"unknown trace behaviours {unknown}; known: {TRACE_BEHAVIOURS.names()}")
    if not mix or any(v < 0 for v in mix.values()):
        raise ValueError(f"behaviour shares must be non-negative and not empty, got {dict(mix)}")
    if abs(sum(mix.values()) - 1.0) > 1e-6:
        raise ValueError(f"behaviour shares must sum to 1, got {sum(mix.values()):.6g} in {dict(mix)}")
    return dict(mix)
