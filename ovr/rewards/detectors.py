"""Named cognitive-behaviour detectors: one set of phrase patterns counted everywhere.

The same functions count the cold-start data (assistant turns of the SFT split, at dataset build),
eval responses (per benchmark and per modality) and RL rollouts (every step, per modality), so a
rate in the data, in eval and in training means the same thing. A detector is a list of
case-insensitive regular expressions; a response's count is the number of matches of all of them.

- ``reflection``: noticing a slip and going back ("Wait, ...", "let me recheck", "retry",
  "that is wrong", "I made a mistake");
- ``verification``: checking a result another way ("Let me verify: ...", "double-check", "check:");
- ``backtracking``: abandoning a path ("let me try again", "start over", "backtrack", "alternatively,").

A straight trace ("2 + 6 = 8. The answer is \\\\boxed{8}.") matches none of them.

>>> detect("2 + 6 = 7. Wait, let me recheck: 2 + 6 = 8.")
{'reflection': 2, 'verification': 0, 'backtracking': 0}
>>> has_behaviour("Let me verify: 8 - 6 = 2.", "verification")
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ovr.registry import Registry

DETECTORS: Registry[tuple[re.Pattern, ...]] = Registry("behaviour detector")


def _detector(name: str, *patterns: str) -> None:
    DETECTORS.add(name, tuple(re.compile(p, re.IGNORECASE) for p in patterns))


_detector(
    "reflection",
    r"\bwait\b",
    r"\bre-?check",
    r"\bretry\b",
    r"\bthat(?:'s| is| was) (?:wrong|not right|incorrect)",
    r"\bi made a mistake\b",
    r"\blet me re-?think\b",
)
_detector("verification", r"\bverif(?:y|ies|ied|ication)\b", r"\bdouble[- ]check", r"\bcheck:")
_detector("backtracking", r"\blet me try again\b", r"\bstart over\b", r"\bbacktrack", r"\balternatively,")

BEHAVIOURS: tuple[str, ...] = ("reflection", "verification", "backtracking")  # table order
if sorted(BEHAVIOURS) != DETECTORS.names():
    raise RuntimeError(f"BEHAVIOURS {BEHAVIOURS} must list every detector {DETECTORS.names()}")


def detect(text: str, names: Sequence[str] | None = None) -> dict[str, int]:
    """Match count of each named detector (all by default) in ``text``."""
    return {n: sum(len(p.findall(text)) for p in DETECTORS.get(n)) for n in (names or BEHAVIOURS)}


def has_behaviour(text: str, name: str) -> bool:
    """Whether ``text`` shows behaviour ``name`` at least once."""
    return any(p.search(text) for p in DETECTORS.get(name))


def rate_counts(counts: Iterable[Mapping[str, int]]) -> tuple[int, dict[str, int]]:
    """(responses, responses with count > 0 per behaviour): sums that add up across shards and ranks."""
    n, hits = 0, dict.fromkeys(BEHAVIOURS, 0)
    for c in counts:
        n += 1
        for name, k in c.items():
            hits[name] = hits.get(name, 0) + (k > 0)
    return n, hits


def text_rates(texts: Iterable[str]) -> dict[str, float | int]:
    """``{"responses": n, <behaviour>: share of texts showing it}`` (shares are 0.0 when there is no text)."""
    n, hits = rate_counts(detect(t) for t in texts)
    return {"responses": n, **{k: v / n if n else 0.0 for k, v in hits.items()}}
