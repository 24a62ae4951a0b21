"""Mix, shuffle and write the spooled groups of a build as shards, a row group at a time.

Mixing weights and the shuffle are decided on index arrays (:func:`split_plan`, 24 bytes an item)
with the same seeded choices the list functions of :mod:`ovr.data.mix` make, then each shard is
gathered from the spools a row group at a time and written with the fixed shard schema: row groups
of ``ROW_GROUP`` rows, as a shard written at once has, so the shards are byte-identical to writing
the mixed, shuffled list; only rows so large that a row group would exceed ``ROW_GROUP_BYTES`` (big
images) get smaller row groups, which keeps a build's memory bounded whatever the rows hold.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ovr.data.checks import behaviour_hits
from ovr.data.mix import permutation, weight_plan
from ovr.data.shards import SCHEMA, shard_names
from ovr.data.stream import CHUNK as CHECK_CHUNK
from ovr.data.stream import Group
from ovr.data.workers import CheckPool

ROW_GROUP = 1024  # rows per parquet row group (and per gather from the spools)
ROW_GROUP_BYTES = 32 << 20  # ... unless its rows hold more bytes than this
BEHAVIOUR_SAMPLE = 20_000  # SFT items whose assistant turns are scanned for behaviours at build time

Plan = tuple[np.ndarray, np.ndarray, np.ndarray]  # (group index, row in its spool, repeat number)


def split_plan(groups: list[Group], seed: int, split: str) -> Plan:
    """Every item of ``split`` in its final order: each group's weight plan (seed
    ``{seed}:{split}:{name}``) in group order, then one shuffle (seed ``{seed}:{split}``)."""
    parts = [(g, *weight_plan(len(g.spool), g.weight, seed=f"{seed}:{split}:{g.name}")) for g in groups]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    index = np.concatenate([np.full(len(rows), i, dtype=np.int64) for i, (_, rows, _) in enumerate(parts)])
    rows = np.concatenate([p[1] for p in parts])
    repeats = np.concatenate([p[2] for p in parts])
    order = permutation(len(rows), seed=f"{seed}:{split}")
    return index[order], rows[order], repeats[order]


def plan_sizes(groups: list[Group], plan: Plan) -> np.ndarray:
    """The bytes of each row of a plan (for row groups of bounded size)."""
    index, rows, _ = plan
    sizes = np.zeros(len(rows), dtype=np.int64)
    for g, group in enumerate(groups):
        at = index == g
        sizes[at] = group.spool.sizes[rows[at]]
    return sizes


def row_groups(sizes: np.ndarray, start: int, stop: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into row groups of ``ROW_GROUP`` rows, fewer where their bytes would
    exceed ``ROW_GROUP_BYTES`` (at least one row each)."""
    out, a = [], start
    while a < stop:
        fits = np.searchsorted(np.cumsum(sizes[a : min(stop, a + ROW_GROUP)]), ROW_GROUP_BYTES, side="right")
        b = a + max(1, int(fits))
        out.append((a, b))
        a = b
    return out


def gather_rows(groups: list[Group], plan: Plan, start: int, stop: int) -> list[dict]:
    """Rows ``start:stop`` of a split's plan, read from the groups' spools as shard rows; repeats
    get ``#r<k>`` ids."""
    index, rows, repeats = (a[start:stop] for a in plan)
    out: list[dict | None] = [None] * len(rows)
    for g in np.unique(index):
        at = np.nonzero(index == g)[0]
        for i, row in zip(at.tolist(), groups[int(g)].spool.rows(rows[at])):
            out[i] = row
    for i in np.nonzero(repeats)[0].tolist():
        out[i]["id"] += f"#r{repeats[i]}"
    return out


def gather(groups: list[Group], plan: Plan, start: int, stop: int) -> pa.Table:
    """:func:`gather_rows` as a table in the shard schema."""
    return pa.Table.from_pylist(gather_rows(groups, plan, start, stop), schema=SCHEMA)


class BehaviourTally:
    """Behaviour rates of the assistant turns of the first ``limit`` items it is given (a split is
    shuffled, so a random sample), counted by the detectors eval and RL use; plus the generator's
    record of which trace kind each procedural item shows (``provenance["behaviour"]``)."""

    def __init__(self, limit: int = BEHAVIOUR_SAMPLE):
        self.limit, self.items = limit, 0
        self.hits: Counter = Counter()
        self.kinds: Counter = Counter()

    @property
    def full(self) -> bool:
        return self.items >= self.limit

    def add(self, hits: dict[str, int], provenance: dict) -> None:
        """One item: its :func:`ovr.data.checks.behaviour_hits` and provenance."""
        if not self.full:
            self.items += 1
            self.hits.update(hits)
            if "behaviour" in provenance:
                self.kinds[provenance["behaviour"]] += 1

    def result(self) -> dict:
        from ovr.rewards.detectors import BEHAVIOURS

        n = self.hits["responses"]
        rates = {k: self.hits[k] / n if n else 0.0 for k in BEHAVIOURS}
        return {"responses": n, **rates, "trace_kinds": dict(sorted(self.kinds.items()))}


def split_behaviours(groups: list[Group], plan: Plan, pool: CheckPool, limit: int = BEHAVIOUR_SAMPLE) -> dict:
    """:class:`BehaviourTally` of the first ``limit`` items of a split's plan; the detectors run in
    the build's workers (a regex scan of each long trace)."""
    tally = BehaviourTally(limit)
    stop = min(limit, len(plan[0]))

    def tasks():
        for start in range(0, stop, CHECK_CHUNK):
            rows = gather_rows(groups, plan, start, min(stop, start + CHECK_CHUNK))
            texts = [[m["content"] for m in r["messages"] or () if m["role"] == "assistant"] for r in rows]
            yield [json.loads(r["provenance"] or "{}") for r in rows], texts

    for provenances, hits in pool.imap(behaviour_hits, tasks()):
        for h, prov in zip(hits, provenances):
            tally.add(h, prov)
    return tally.result()


class SplitStats:
    """What the manifest says of a written split: its count, shards, and counts by source, modality
    and subject."""

    def __init__(self) -> None:
        self.counts = {key: Counter() for key in ("source", "modality", "subject")}

    def add(self, table: pa.Table) -> None:
        for key, counter in self.counts.items():
            counter.update(str(v) for v in table[key].to_pylist())

    def meta(self, count: int, shards: list[str]) -> dict:
        names = {"source": "sources", "modality": "modalities", "subject": "subjects"}
        return {"count": count, "shards": shards} | {names[k]: dict(sorted(c.items())) for k, c in self.counts.items()}


def write_split(
    split: str, groups: list[Group], plan: Plan, out_dir: Path, shard_size: int, stats: SplitStats
) -> list[str]:
    """Write the plan's rows as ``ceil(n / shard_size)`` shards under ``out_dir/split/``; returns their names."""
    total = len(plan[0])
    names = shard_names(split, -(-total // shard_size))
    sizes = plan_sizes(groups, plan)
    for i, name in enumerate(names):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
            for start, stop in row_groups(sizes, i * shard_size, min(total, (i + 1) * shard_size)):
                table = gather(groups, plan, start, stop)
                writer.write_table(table, row_group_size=ROW_GROUP)
                stats.add(table)
    return names
