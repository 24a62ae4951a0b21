"""Each rank's share of an RL step: cut by the main rank, sent to each rank alone.

The main rank samples and scores (:mod:`ovr.rl.step`), encodes every sampled prompt (for the step's
metrics and the groups' costs), and splits the kept groups between the ranks, whole groups, the
costliest first (:func:`ovr.distributed.shard`). Rank ``r`` receives only its own groups with their
global indices, plus what every rank needs of the whole step: how many groups train (mini-batches
are drawn over global indices), whether their scores differ (the actor updates or waits), one row
to run zero-weight passes over when it owns none, the step's metrics and the prompt cursor
(:meth:`ovr.distributed.Dist.scatter`: the others wait polled, then receive only their payload).

>>> shares = cut_step(run, got, metrics, world=2)     # doctest: +SKIP  (main rank)
>>> rows = share_rows(run, dist.scatter(shares))      # doctest: +SKIP  (every rank)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovr.distributed import shard
from ovr.rl.experience import Experience, build_experience
from ovr.rl.forward import encode_prompt
from ovr.rl.sampling import Collected
from ovr.rl.state import PromptCursor
from ovr.schema import RolloutGroup, ScoreResult


@dataclass
class StepShare:
    """What one rank receives of a step."""

    groups: list[RolloutGroup]  # this rank's kept groups
    results: list[ScoreResult]  # flat, aligned with their completions
    index: list[int]  # global index (among the kept groups) of each of ``groups``
    n_groups: int  # kept groups of the whole step (0: nothing trains)
    scores_differ: bool  # the kept rows' scores are not all equal
    filler: RolloutGroup | None  # the step's first kept row, for zero-weight passes
    filler_result: ScoreResult | None
    cursor: PromptCursor | None
    metrics: dict[str, float] = field(default_factory=dict)  # the step's rollout metrics (every group)


@dataclass
class RowShare:
    """One rank's experience rows of a step and the step-wide facts its update needs."""

    mine: list[Experience]  # whole groups; ``group`` is the global index
    n_groups: int
    filler: Experience | None
    scores_differ: bool


def encode_groups(run, groups: list[RolloutGroup]) -> None:
    """The processor's encoding of every group's prompt, cached on ``run`` (images done once)."""
    for g in groups:
        if g.sample_id not in run.encoded:
            run.encoded[g.sample_id] = encode_prompt(run.processor, run.by_id[g.sample_id], g.prompt_token_ids)


def group_costs(run, groups: list[RolloutGroup]) -> list[float]:
    """Tokens each group trains on (prompt + response per completion): what the ranks balance."""
    return [
        float(sum(len(run.encoded[g.sample_id].input_ids) + len(c.token_ids) for c in g.completions)) for g in groups
    ]


def _results_of(groups: list[RolloutGroup], results: list[ScoreResult]) -> list[list[ScoreResult]]:
    out, k = [], 0
    for g in groups:
        out.append(results[k : k + len(g.completions)])
        k += len(g.completions)
    return out


def cut_step(run, got: Collected, metrics: dict[str, float], world: int) -> list[StepShare]:
    """One :class:`StepShare` per rank from everything the main rank sampled and scored."""
    groups, results = got.kept()
    encode_groups(run, groups)
    per_group = _results_of(groups, results)
    owners = shard(group_costs(run, groups), world) if groups else [[] for _ in range(world)]
    filler = groups[0].model_copy(update={"completions": groups[0].completions[:1]}) if groups else None
    return [
        StepShare(
            groups=[groups[i] for i in idx],
            results=[res for i in idx for res in per_group[i]],
            index=list(idx),
            n_groups=len(groups),
            scores_differ=len({res.overall for res in results}) > 1,
            filler=filler,
            filler_result=per_group[0][0] if groups else None,
            cursor=got.cursor,
            metrics=dict(metrics),
        )
        for idx in owners
    ]


def share_rows(run, share: StepShare) -> RowShare:
    """This rank's experience rows (global group indices) and filler row from its share."""
    encode_groups(run, share.groups + ([share.filler] if share.filler is not None else []))
    mine = build_experience(share.groups, run.encoded, share.results)
    for row in mine:
        row.group = share.index[row.group]
    filler = None
    if share.filler is not None:
        filler = build_experience([share.filler], run.encoded, [share.filler_result])[0]
    return RowShare(mine, share.n_groups, filler, share.scores_differ)


def split_rows(rows: list[Experience], costs: list[float], rank: int, world: int) -> RowShare:
    """This rank's share of rows every rank holds (``costs`` per group, ``row.group`` its index)."""
    mine_groups = set(shard(costs, world)[rank])
    return RowShare(
        mine=[r for r in rows if r.group in mine_groups],
        n_groups=len(costs),
        filler=rows[0] if rows else None,
        scores_differ=len({r.score for r in rows}) > 1,
    )
