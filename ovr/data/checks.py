"""The per-item work of a streaming build that needs no shared state: answer verification and the
keys the stateful filters compare (exact key, LSH band keys, eval contamination).

It is the expensive part (math-verify parsing of long traces: ~3-20 ms an item), so
:class:`ovr.data.workers.CheckPool` runs :func:`check_items` on chunks in worker processes; the
results are small (no row data comes back), and the build applies them in row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from ovr.data import filters
from ovr.data.index import EvalIndex, band_keys, exact_key
from ovr.schema import Sample


@dataclass(frozen=True)
class CheckSettings:
    """What :func:`check_items` computes for a group of items."""

    reward: str  # reward whose checker must accept the reference (and an SFT trace)
    template: str  # prompt template (stripped to compare bare questions)
    keys: bool = False  # also compute dedup / decontamination keys (training splits)
    near_dup: float | None = None  # near-duplicate threshold (None: no LSH keys)
    eval_index: str | None = None  # saved EvalIndex to decontaminate against (None: none)


class Checked(NamedTuple):
    """One item's results: why it cannot be verified (None when it can) and, for training items that
    can, its folded question, exact key, LSH band keys and eval-contamination reason."""

    problem: str | None
    words: str = ""
    exact: int = 0
    bands: list[int] | None = None
    contamination: str | None = None


@lru_cache(maxsize=2)
def _eval_index(path: str) -> EvalIndex:
    return EvalIndex.load(path)


def image_hashes(sample: Sample) -> tuple[str, ...]:
    return tuple(i.sha256 or "" for i in sample.images)


def light(sample: Sample) -> Sample:
    """The sample without its image bytes (what verification needs, cheap to send to a worker)."""
    return sample.model_copy(update={"images": [], "modality": "text"}) if sample.images else sample


def check_items(items: list[tuple[Sample, tuple[str, ...]]], settings: CheckSettings) -> list[Checked]:
    """:class:`Checked` of each ``(sample, image hashes)`` (samples may be :func:`light`)."""
    index = _eval_index(settings.eval_index) if settings.eval_index else None
    out = []
    for sample, images in items:
        # eval items are all kept (a benchmark's denominator is its published size; ovr.rewards.grading)
        problem = None if sample.split == "eval" else filters.verification_problem(sample, settings.reward)
        if problem or not settings.keys:
            out.append(Checked(problem))
            continue
        words = filters.question_words(sample, settings.template)
        procedural = filters.is_procedural(sample)  # never deduplicated: no LSH keys
        near = settings.near_dup is not None and not procedural
        bands = band_keys(words, images, settings.near_dup) if near else None
        reason = index.reason(words, images, procedural) if index else None
        out.append(Checked(None, " ".join(words), exact_key(words, images), bands, reason))
    return out


@lru_cache(maxsize=1)
def _behaviour_patterns() -> dict:
    """One case-insensitive alternation per behaviour detector of :mod:`ovr.rewards.detectors`: a text
    shows the behaviour iff it matches (one scan instead of one per pattern)."""
    import re

    from ovr.rewards.detectors import BEHAVIOURS, DETECTORS

    return {n: re.compile("|".join(f"(?:{p.pattern})" for p in DETECTORS.get(n)), re.IGNORECASE) for n in BEHAVIOURS}


def behaviour_hits(items: list[list[str]]) -> list[dict[str, int]]:
    """For each item's assistant turns: how many there are (``"responses"``) and how many show each
    behaviour (what :func:`ovr.rewards.detectors.rate_counts` adds up)."""
    patterns = _behaviour_patterns()
    return [
        {"responses": len(texts), **{n: sum(bool(p.search(t)) for t in texts) for n, p in patterns.items()}}
        for texts in items
    ]
