"""From sampled groups and their scores to the flat experience the updates train on.

One :class:`Experience` row per response: its prompt (as the model sees it), response tokens,
score, group index and the sampler's log-probs. Dynamic sampling (DAPO) drops groups whose
responses all scored the same (zero advantage under group baselines, pure noise for the update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovr.rl.forward import EncodedPrompt
from ovr.schema import Completion, RolloutGroup, Sample, ScoreItem, ScoreResult


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


def score_items(groups: list[RolloutGroup], samples: dict[str, Sample], reward: str,
                max_tokens: int) -> list[ScoreItem]:
    """One reward request item per response, in group order."""
    items = []
    for g in groups:
        s = samples[g.sample_id]
        for c in g.completions:
            items.append(
                ScoreItem(
                    response=c.text, reference=s.answer, answer_type=s.answer_type, reward=reward,
                    truncated=c.truncated, choices=s.choices, response_tokens=len(c.token_ids), max_tokens=max_tokens,
                )
            )
    return items


def response_score(result: ScoreResult, completion: Completion, truncated_reward: float) -> float:
    """The scalar optimised for one response: the service's ``overall``, or the recipe's
    ``truncated_reward`` for a response cut by the length limit."""
    return truncated_reward if completion.truncated else result.overall


def build_experience(
    groups: list[RolloutGroup], prompts: dict[str, EncodedPrompt], results: list[ScoreResult], truncated_reward: float
) -> list[Experience]:
    rows, k = [], 0
    for gi, g in enumerate(groups):
        for c in g.completions:
            r = results[k]
            k += 1
            rows.append(Experience(prompts[g.sample_id], list(c.token_ids), response_score(r, c, truncated_reward),
                                   r.accuracy, gi, c.truncated, list(c.logprobs), c.weight_version))
    if k != len(results):
        raise ValueError(f"{len(results)} scores for {k} responses")
    return rows


def dynamic_filter(rows: list[Experience]) -> tuple[list[Experience], int, int]:
    """Keep groups whose scores differ; returns (kept rows, groups kept, groups seen)."""
    by_group: dict[int, list[Experience]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    kept = [g for g in by_group.values() if len({r.score for r in g}) > 1]
    return [r for g in kept for r in g], len(kept), len(by_group)


def _metric_name(text: str) -> str:
    """``text`` as an MLflow-friendly metric name part (alphanumerics, others become ``_``)."""
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def subject_rewards(rows: list[Experience], groups: list[RolloutGroup], samples: dict[str, Sample]) -> dict[str, float]:
    """Mean reward per task (``reward_mean/<subject or source>``): which tasks a run is learning."""
    by: dict[str, list[float]] = {}
    for r in rows:
        s = samples[groups[r.group].sample_id]
        name = _metric_name(s.subject or s.source) or "unknown"
        by.setdefault(name, []).append(r.score)
    return {f"reward_mean/{k}": float(np.mean(v)) for k, v in sorted(by.items())}


def rollout_metrics(rows: list[Experience], results: list[ScoreResult], reflection_words: list[str],
                    trainer_version: int) -> dict[str, float]:
    """Reward, accuracy, length, truncation, reflection-word and weight-lag statistics of a batch."""
    scores = np.array([r.score for r in rows], dtype=float)
    lengths = np.array([len(r.response_ids) for r in rows], dtype=float)
    lag = np.array([trainer_version - r.weight_version for r in rows], dtype=float)
    out = {
        "reward_mean": scores.mean(),
        "reward_std": scores.std(),
        "accuracy": float(np.mean([r.accuracy for r in rows])),
        "response_len_mean": lengths.mean(),
        "response_len_max": lengths.max(),
        "truncation_rate": float(np.mean([r.truncated for r in rows])),
        "weight_version_lag_mean": lag.mean(),
        "weight_version_lag_max": lag.max(),
        "format_mean": float(np.mean([res.format for res in results])),
        "reward_timeouts": float(sum(res.timed_out for res in results)),
    }
    totals = {w: 0 for w in reflection_words}
    for res in results:
        for w, c in res.reflection.items():
            totals[w] = totals.get(w, 0) + c
    for w, c in totals.items():
        out[f"reflection/{_metric_name(w)}"] = c / len(results)
    out["reflection/total"] = sum(totals.values()) / len(results)
    return out
