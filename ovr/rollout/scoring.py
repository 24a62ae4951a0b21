"""Sample responses from the rollout replicas and score them with the reward service: the one path
RL and eval share, so both build their reward requests the same way (the recipe's reward function
and its options: format weight, overlong shaping, truncated reward, reflection words).

>>> scored = sample_and_score_sync(rollout, reward, samples, n=4, max_tokens=64, cfg=cfg)  # doctest: +SKIP
>>> scored.results[0].overall                                                             # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ovr.config import RunConfig
from ovr.rewards import options_from_config
from ovr.rewards.client import RewardClient
from ovr.rollout.client import RolloutClient
from ovr.schema import Completion, RolloutGroup, Sample, ScoreItem, ScoreResult


@dataclass
class Scored:
    """Sampled groups and one score per completion, flat in group order."""

    groups: list[RolloutGroup]
    results: list[ScoreResult]
    rollout_s: float
    reward_s: float

    def pairs(self) -> list[tuple[RolloutGroup, int, Completion, ScoreResult]]:
        """``(group, index in group, completion, result)`` for every response."""
        flat = [(g, i, c) for g in self.groups for i, c in enumerate(g.completions)]
        return [(g, i, c, r) for (g, i, c), r in zip(flat, self.results, strict=True)]


def build_score_items(
    groups: list[RolloutGroup], samples: dict[str, Sample], cfg: RunConfig, max_tokens: int
) -> list[ScoreItem]:
    """One reward request item per response, in group order, carrying the recipe's reward options."""
    options = options_from_config(cfg.reward, cfg.eval.reflection_words)
    items = []
    for g in groups:
        if g.sample_id not in samples:
            raise RuntimeError(f"rollout returned an unknown sample id {g.sample_id}")
        s = samples[g.sample_id]
        items += [
            ScoreItem(
                response=c.text,
                reference=s.answer,
                answer_type=s.answer_type,
                reward=cfg.reward.name,
                truncated=c.truncated,
                choices=s.choices,
                response_tokens=len(c.token_ids),
                max_tokens=max_tokens,
                options=options,
            )
            for c in g.completions
        ]
    return items


async def sample_and_score(
    rollout: RolloutClient,
    reward: RewardClient,
    samples: list[Sample],
    *,
    n: int,
    max_tokens: int,
    cfg: RunConfig,
    temperature: float | None = None,
    top_p: float | None = None,
    progress: bool = False,
    extra: dict | None = None,
) -> Scored:
    """``n`` responses per sample (the rollout's sampling settings unless given; ``extra``: more vLLM
    sampling parameters) and their scores."""
    t0 = time.perf_counter()
    groups = await rollout.generate(
        samples, n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, progress=progress, extra=extra
    )
    if len(groups) != len(samples):
        raise RuntimeError(f"rollout returned {len(groups)} groups for {len(samples)} samples")
    t1 = time.perf_counter()
    items = build_score_items(groups, {s.id: s for s in samples}, cfg, max_tokens)
    results = await reward.score(items)
    return Scored(groups, results, rollout_s=t1 - t0, reward_s=time.perf_counter() - t1)


def sample_and_score_sync(rollout: RolloutClient, reward: RewardClient, samples: list[Sample], **kw) -> Scored:
    """:func:`sample_and_score` from synchronous code (one event loop; both clients closed after)."""

    async def run() -> Scored:
        try:
            return await sample_and_score(rollout, reward, samples, **kw)
        finally:
            await rollout.close()
            await reward.aclose()

    return asyncio.run(run())
