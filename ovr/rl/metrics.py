"""Per-step RL metrics: rewards, lengths, truncation, reflection words, weight lag, log-prob drift,
advantage statistics, and the progress line a person reads."""

from __future__ import annotations

import numpy as np
import torch

from ovr.rl.algorithms import explained_variance, masked_mean
from ovr.rl.experience import Experience
from ovr.schema import RolloutGroup, Sample, ScoreResult


def metric_name(text: str) -> str:
    """``text`` as an MLflow-friendly metric name part (alphanumerics, others become ``_``)."""
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def subject_rewards(rows: list[Experience], groups: list[RolloutGroup], samples: dict[str, Sample]) -> dict[str, float]:
    """Mean reward per task (``reward_mean/<subject or source>``): which tasks a run is learning."""
    by: dict[str, list[float]] = {}
    for r in rows:
        s = samples[groups[r.group].sample_id]
        name = metric_name(s.subject or s.source) or "unknown"
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
    if any("overlong" in res.extra for res in results):
        out["overlong_mean"] = float(np.mean([res.extra.get("overlong", 0.0) for res in results]))
    totals = {w: 0 for w in reflection_words}
    for res in results:
        for w, c in res.reflection.items():
            totals[w] = totals.get(w, 0) + c
    for w, c in totals.items():
        out[f"reflection/{metric_name(w)}"] = c / len(results)
    out["reflection/total"] = sum(totals.values()) / len(results)
    return out


def logprob_drift(rows: list[Experience], old_logp: list[torch.Tensor]) -> dict[str, float]:
    """Mean |trainer - sampler| log-prob per token: ~0 when both sides see the same tokens and weights."""
    diffs = [(lp - torch.tensor(r.sampler_logprobs[: len(lp)])).abs() for r, lp in zip(rows, old_logp)
             if r.sampler_logprobs and len(r.sampler_logprobs) == len(lp)]
    if not diffs:
        return {}
    return {"logprob_drift": float(torch.cat(diffs).mean())}


def advantage_stats(adv: torch.Tensor, ret: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None) -> dict:
    """Advantage and return statistics over the real tokens; critic fit when values are given."""
    a = adv[mask.bool()]
    out = {"adv_mean": float(a.mean()), "adv_std": float(a.std()) if a.numel() > 1 else 0.0,
           "adv_min": float(a.min()), "adv_max": float(a.max()), "return_mean": float(masked_mean(ret, mask))}
    if values is not None:
        out["value_mean"] = float(masked_mean(values, mask))
        out["explained_variance"] = float(explained_variance(values, ret, mask))
    return out


def progress_line(step: int, total: int, m: dict) -> str:
    return (f"rl step {step + 1}/{total}  reward {m['reward_mean']:.3f}  acc {m['accuracy']:.3f}  "
            f"len {m['response_len_mean']:.1f}  drift {m.get('logprob_drift', 0):.4f}  "
            f"rollout {m['rollout_seconds']:.1f}s reward {m['reward_seconds']:.1f}s train {m['train_seconds']:.1f}s "
            f"sync {m['sync_seconds']:.1f}s")
