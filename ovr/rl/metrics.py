"""Per-step RL metrics: rewards, lengths, truncation, reflection words, named behaviours per
modality, weight lag, log-prob drift, advantage statistics, and the progress line a person reads."""

from __future__ import annotations

import numpy as np
import torch

from ovr.distributed import Dist
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


def rollout_metrics(
    rows: list[Experience], results: list[ScoreResult], reflection_words: list[str], trainer_version: int
) -> dict[str, float]:
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


def behaviour_metrics(
    groups: list[RolloutGroup], results: list[ScoreResult], samples: dict[str, Sample]
) -> dict[str, float]:
    """Per modality of the prompts (``behaviour/<text|image>/...``): the share of responses showing
    each named behaviour of :mod:`ovr.rewards.detectors` (the detectors that count the cold-start data
    and eval), and the accuracy of the responses with and without it (``accuracy_with/<name>``,
    ``accuracy_without/<name>``, when any are). ``groups`` and the flat ``results`` are the whole
    step's batch, which the main rank sampled and broadcast: every rank gets the same figures with no
    further gather."""
    from ovr.rewards.detectors import BEHAVIOURS, detect

    by: dict[str, list[tuple[dict[str, int], float]]] = {}
    flat = [(samples[g.sample_id].modality, c.text) for g in groups for c in g.completions]
    if len(flat) != len(results):
        raise ValueError(f"{len(results)} scores for {len(flat)} responses")
    for (modality, text), res in zip(flat, results):
        by.setdefault(modality, []).append((detect(text), res.accuracy))
    out: dict[str, float] = {}
    for modality, items in sorted(by.items()):
        base = f"behaviour/{metric_name(modality)}"
        out[f"{base}/responses"] = float(len(items))
        for name in BEHAVIOURS:
            shown = [acc for counts, acc in items if counts[name] > 0]
            plain = [acc for counts, acc in items if counts[name] == 0]
            out[f"{base}/{name}"] = len(shown) / len(items)
            if shown:
                out[f"{base}/accuracy_with/{name}"] = float(np.mean(shown))
            if plain:
                out[f"{base}/accuracy_without/{name}"] = float(np.mean(plain))
    return out


def logprob_drift(rows: list[Experience], old_logp: list[torch.Tensor], dist: Dist | None = None) -> dict[str, float]:
    """Mean |trainer - sampler| log-prob per token over every rank's rows: ~0 when both sides see the
    same tokens and weights."""
    diffs = [
        (lp - torch.tensor(r.sampler_logprobs[: len(lp)])).abs()
        for r, lp in zip(rows, old_logp)
        if r.sampler_logprobs and len(r.sampler_logprobs) == len(lp)
    ]
    total, n = (dist or Dist()).sum([float(sum(d.sum() for d in diffs)), float(sum(d.numel() for d in diffs))])
    return {"logprob_drift": total / n} if n else {}


def advantage_stats(
    adv: torch.Tensor, ret: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None, dist: Dist | None = None
) -> dict:
    """Advantage and return statistics over every rank's real tokens; critic fit when values are given."""
    dist = dist or Dist()
    m = mask.bool()
    a, r = adv[m].double(), ret[m].double()
    sums = [a.numel(), a.sum(), (a**2).sum(), r.sum(), (r**2).sum()]
    if values is not None:
        v = values[m].double()
        sums += [v.sum(), (r - v).sum(), ((r - v) ** 2).sum()]
    n, sa, sa2, sr, sr2, *rest = dist.sum([float(x) for x in sums])
    n = max(n, 1.0)
    extremes = dist.all_gather((float(a.min()), float(a.max())) if a.numel() else None)
    ranges = [e for e in extremes if e is not None] or [(0.0, 0.0)]
    out = {
        "adv_mean": sa / n,
        "adv_std": max(sa2 / n - (sa / n) ** 2, 0.0) ** 0.5,
        "adv_min": min(e[0] for e in ranges),
        "adv_max": max(e[1] for e in ranges),
        "return_mean": sr / n,
    }
    if values is not None:
        sv, sd, sd2 = rest
        var_r, var_d = sr2 / n - (sr / n) ** 2, sd2 / n - (sd / n) ** 2
        out["value_mean"] = sv / n
        out["explained_variance"] = 1 - var_d / max(var_r, 1e-8)
    return out


def progress_line(step: int, total: int, m: dict) -> str:
    return (
        f"rl step {step + 1}/{total}  reward {m['reward_mean']:.3f}  acc {m['accuracy']:.3f}  "
        f"len {m['response_len_mean']:.1f}  drift {m.get('logprob_drift', 0):.4f}  "
        f"rollout {m['rollout_seconds']:.1f}s reward {m['reward_seconds']:.1f}s train {m['train_seconds']:.1f}s "
        f"sync {m['sync_seconds']:.1f}s"
    )
