"""From sampled groups and their scores to the flat experience the updates train on.

One :class:`Experience` row per response: its prompt (as the model sees it), response tokens,
score (the reward service's ``overall``: accuracy, format weight, truncation and overlong shaping
all applied there), group index and the sampler's log-probs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovr.rl.forward import EncodedPrompt
from ovr.schema import RolloutGroup, ScoreResult


@dataclass
class Experience:
    prompt: EncodedPrompt
    response_ids: list[int]
    score: float
    accuracy: float
    group: int
    truncated: bool
    sampler_logprobs: list[float]
    weight_version: int


def build_experience(
    groups: list[RolloutGroup], prompts: dict[str, EncodedPrompt], results: list[ScoreResult]
) -> list[Experience]:
    """One row per completion, in group order; ``results`` are flat in the same order."""
    rows, k = [], 0
    for gi, g in enumerate(groups):
        for c in g.completions:
            if k >= len(results):
                raise ValueError(f"{len(results)} scores for more responses")
            r = results[k]
            k += 1
            rows.append(
                Experience(
                    prompts[g.sample_id],
                    list(c.token_ids),
                    r.overall,
                    r.accuracy,
                    gi,
                    c.truncated,
                    list(c.logprobs),
                    c.weight_version,
                )
            )
    if k != len(results):
        raise ValueError(f"{len(results)} scores for {k} responses")
    return rows


def group_is_informative(results: list[ScoreResult]) -> bool:
    """A group teaches something under group baselines only when its scores differ (DAPO)."""
    return len({r.overall for r in results}) > 1
