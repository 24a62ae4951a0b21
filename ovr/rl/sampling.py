"""The sampling half of an RL step (main rank): prompts from the cursor -> rollouts -> scores.

Without dynamic sampling one round samples ``prompts_per_step`` prompts and every group trains.
With it (DAPO), groups whose responses all scored the same are dropped and more prompts are
sampled until ``prompts_per_step`` informative groups are collected or ``max_generation_rounds``
rounds have run; a later round asks for the missing groups divided by the share kept so far
(capped at ``prompts_per_step``), and the surplus beyond ``prompts_per_step`` is not trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ovr.rl.experience import group_is_informative
from ovr.rl.state import PromptCursor
from ovr.rollout.scoring import Scored
from ovr.schema import RolloutGroup, Sample, ScoreResult


@dataclass
class Collected:
    """Everything sampled in one step, which groups train, and where the prompt cursor stands."""

    groups: list[RolloutGroup] = field(default_factory=list)  # every group sampled this step
    results: list[ScoreResult] = field(default_factory=list)  # flat, aligned with the completions
    keep: list[int] = field(default_factory=list)  # indices of the groups to train on
    rounds: int = 0
    rollout_s: float = 0.0
    reward_s: float = 0.0
    cursor: PromptCursor | None = None

    def add(self, scored: Scored, informative_only: bool) -> None:
        k = 0
        for g in scored.groups:
            n = len(g.completions)
            if not informative_only or group_is_informative(scored.results[k : k + n]):
                self.keep.append(len(self.groups))
            self.groups.append(g)
            k += n
        self.results += scored.results
        self.rounds += 1
        self.rollout_s += scored.rollout_s
        self.reward_s += scored.reward_s

    def kept(self) -> tuple[list[RolloutGroup], list[ScoreResult]]:
        """The groups to train on and their results (flat)."""
        starts, k = [], 0
        for g in self.groups:
            starts.append(k)
            k += len(g.completions)
        groups = [self.groups[i] for i in self.keep]
        results = [r for i in self.keep for r in self.results[starts[i] : starts[i] + len(self.groups[i].completions)]]
        return groups, results


def collect(
    sample: Callable[[list[Sample]], Scored],
    prompts: list[Sample],
    cursor: PromptCursor,
    *,
    want: int,
    dynamic: bool,
    max_rounds: int,
) -> Collected:
    """Sample rounds of prompts taken from ``cursor`` until ``want`` groups can train (see module doc)."""
    out = Collected()
    rounds = max_rounds if dynamic else 1
    while out.rounds < rounds and len(out.keep) < want:
        missing = want - len(out.keep)
        if out.rounds:
            rate = len(out.keep) / len(out.groups)
            missing = min(want, math.ceil(missing / max(rate, 1.0 / want)))
        out.add(sample([prompts[i] for i in cursor.take(missing)]), informative_only=dynamic)
    out.keep = out.keep[:want]
    out.cursor = cursor
    return out


def sampling_extra(rollout, max_tokens: int) -> dict | None:
    """vLLM sampling parameters of RL rollouts beyond the client's own (``rollout.min_tokens``)."""
    return {"min_tokens": min(rollout.min_tokens, max_tokens)} if rollout.min_tokens else None
