"""Build a dataset: sources + procedural sets -> filtered, mixed, shuffled parquet shards in the store.

Rows stream; no split is held in memory. Reads top to bottom: (1) plan the (split, source) groups
and resolve every source (failing fast); (2) stream the eval groups: adapt row by row (skipped rows
recorded with their reason), drop items the reward functions cannot check (worker processes), spool
the rest to disk; (3) index the eval items once; (4) stream each training split the same way, through
its bounded-memory filters (exact and near duplicates across its sources, eval decontamination, the
RL pass-rate band); (5) decide mixing weights and one seeded shuffle per split on index arrays;
(6) write shards + card (+ ``dropped.jsonl``: every skipped row with its reason) from the spools and
commit them under ``datasets/<dataset id>/`` (manifest last). The same config and seed give
byte-identical shards, the same as the in-memory build gave.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ovr.config import DataConfig, DataSourceConfig, RunConfig, StoreConfig
from ovr.data import synthetic
from ovr.data.assemble import BEHAVIOUR_SAMPLE, BehaviourTally, SplitStats, split_behaviours, split_plan, write_split
from ovr.data.card import render_card
from ovr.data.checks import CheckSettings, behaviour_hits
from ovr.data.filters import eval_index
from ovr.data.report import BuildProgress, Report
from ovr.data.spool import DropLog
from ovr.data.stream import (
    Feed,
    Group,
    SplitFilters,
    adapt_rows,
    generated_feed,
    source_feed,
    source_files,
    stream_group,
)
from ovr.data.workers import CheckPool, resolve_workers
from ovr.schema import Sample
from ovr.store import Store, dataset_prefix

log = logging.getLogger("ovr.data")
SPLITS = ("sft", "rl", "eval")
TRAIN_SPLITS = ("sft", "rl")
DROPPED_FILE = "dropped.jsonl"  # every dropped row (source, row, reason, detail), listed in the manifest


def load_source(
    src: DataSourceConfig, dc: DataConfig, store_cfg: StoreConfig, report: Report, progress: bool = True
) -> list[Sample]:
    """One source's adapted rows as a list (skipped and corrupt rows are counted with their reasons)."""
    bar = BuildProgress(None, progress, desc=f"read {src.name or src.adapter}")
    try:
        return list(adapt_rows(src, source_files(src, dc, store_cfg), dc, report, on_row=bar.update))
    finally:
        bar.close()


def trace_behaviours(items: Iterable[Sample], limit: int = BEHAVIOUR_SAMPLE) -> dict:
    """Behaviour rates of the assistant turns of the first ``limit`` items (see :class:`BehaviourTally`)."""
    tally = BehaviourTally(limit)
    for s in items:
        if tally.full:
            break
        [hits] = behaviour_hits([[m.content for m in s.messages or () if m.role == "assistant"]])
        tally.add(hits, s.provenance)
    return tally.result()


# --------------------------------------------------------------------------- 1. groups
def synthetic_feeds(dc: DataConfig) -> list[tuple[str, str, Feed]]:
    """The configured procedural sets as (split, source, feed); eval sets use seeds disjoint from the
    training ones. Each is generated when its group streams (their size is the config's)."""
    sc, seed, tpl = dc.synthetic, dc.seed, dc.prompt_template
    eval_seed = seed + 1_000_003
    text, visual = synthetic.TEXT_SOURCE, synthetic.VISUAL_SOURCE
    feeds = [
        ("sft", text, sc.text_samples, lambda: synthetic.text_samples(
            sc.text_samples, seed, sc.difficulty, template=tpl, behaviours=sc.behaviours)),
        ("rl", visual, sc.visual_samples, lambda: synthetic.visual_samples(
            sc.visual_samples, seed, sc.tasks, sc.difficulty, sc.image_size, template=tpl)),
        ("eval", visual, sc.eval_samples, lambda: synthetic.visual_samples(
            sc.eval_samples, eval_seed, sc.tasks, sc.difficulty, sc.image_size, split="eval", template=tpl)),
        ("eval", text, sc.eval_samples, lambda: synthetic.text_samples(
            sc.eval_samples, eval_seed, sc.difficulty, split="eval", template=tpl)),
    ]  # fmt: skip
    return [(split, name, generated_feed(n, make)) for split, name, n, make in feeds if n > 0]


def plan_groups(dc: DataConfig, store_cfg: StoreConfig) -> list[Group]:
    """The (split, source) groups in build order: configured sources in config order, then the
    procedural sets; every source resolved (hub mirrors and s3:// copies fetched) up front."""
    groups: dict[tuple[str, str], Group] = {}
    for position, src in enumerate(dc.sources):
        name = src.name or src.adapter
        if (src.split, name) in groups:
            raise ValueError(f"two sources named {name!r} feed split {src.split}: set a distinct `name`")
        group = groups[(src.split, name)] = Group(src.split, name, src.weight, len(groups))
        group.feeds.append(source_feed(src, position, dc, store_cfg))
    for split, name, feed in synthetic_feeds(dc):
        groups.setdefault((split, name), Group(split, name, 1.0, len(groups))).feeds.append(feed)
    return list(groups.values())


# --------------------------------------------------------------------------- 2-4. streaming
def stream_groups(
    cfg: RunConfig, groups: list[Group], pool: CheckPool, report: Report, tmp: Path, bar: BuildProgress
) -> None:
    """Eval groups first (training items are decontaminated against them), then each training split
    through its filters, every group into its spool under ``tmp``."""
    dc = cfg.data
    check = CheckSettings(reward=cfg.reward.name, template=dc.prompt_template)
    for group in (g for g in groups if g.split == "eval"):
        stream_group(group, pool, check, report, tmp, bar)
    index_path = None
    if any(g.split == "eval" for g in groups):
        evals = (s for g in groups if g.split == "eval" for s in g.spool.samples())
        index_path = str(tmp / "eval-index.npz")
        eval_index(evals, dc.decontaminate_ngram, dc.prompt_template).save(index_path)
    train = CheckSettings(cfg.reward.name, dc.prompt_template, True, dc.near_dup_threshold, index_path)
    for position, split in enumerate(TRAIN_SPLITS):
        filters = SplitFilters(dc, split, tmp)
        try:
            for group in (g for g in groups if g.split == split):
                stream_group(group, pool, train, report, tmp, bar, filters, position)
        finally:
            filters.close()


# --------------------------------------------------------------------------- 5-6. mix, shards, commit
def commit_dataset(
    store: Store, dc: DataConfig, groups: list[Group], report: Report, seconds: dict, tmp: Path, pool: CheckPool
):
    """Shards, card and dropped-row list of the splits, committed manifest-last (replacing an older build)."""
    out = tmp / "out"
    out.mkdir()
    t0 = time.perf_counter()
    meta_splits = {}
    for split in SPLITS:
        members = [g for g in groups if g.split == split]
        plan = split_plan(members, dc.seed, split)
        stats = SplitStats()
        shards = write_split(split, members, plan, out, dc.shard_size, stats) if len(plan[0]) else []
        meta_splits[split] = stats.meta(len(plan[0]), shards)
        if split == "sft":
            meta_splits[split]["behaviours"] = split_behaviours(members, plan, pool)
    if report.any_dropped:
        report.write_rows(out / DROPPED_FILE)
    metadata = {
        "name": dc.name,
        "dataset_id": dc.dataset_id,
        "splits": meta_splits,
        "benchmarks": sorted(meta_splits["eval"]["sources"]),
        **report.as_dict(),
        "dropped_rows": DROPPED_FILE if report.any_dropped else None,
        "seconds": {k: round(v, 3) for k, v in (seconds | {"write": time.perf_counter() - t0}).items()},
        "workers": pool.workers if pool.started else 1,  # processes that checked the items
        "config": dc.model_dump(mode="json"),
    }
    (out / "README.md").write_text(render_card(metadata))
    return store.commit(dataset_prefix(dc.dataset_id), out, run=dc.name, step=0, kind="dataset", metadata=metadata)


# --------------------------------------------------------------------------- the build
def build_dataset(cfg: RunConfig, store: Store, progress: bool = True) -> dict:
    """Build ``cfg.data`` into ``datasets/<dataset id>/`` of ``store``; returns the committed manifest as a dict
    (``metadata`` holds per-split counts/shards, drop reasons, timings and the data config)."""
    dc = cfg.data
    t0 = time.perf_counter()

    # 1. groups, every source resolved
    groups = plan_groups(dc, cfg.store)
    rows = [f.rows for g in groups for f in g.feeds]
    total = None if None in rows else sum(rows)
    workers = resolve_workers(dc.workers)

    with (
        tempfile.TemporaryDirectory(prefix="ovr-data-", dir=dc.spool_dir) as tmp_name,
        CheckPool(workers, expected=sum(r or 0 for r in rows)) as pool,
    ):
        tmp = Path(tmp_name)
        report = Report(DropLog(tmp / "dropped"))
        bar = BuildProgress(total, progress, desc="read, verify answers, filter")

        # 2-4. eval groups, the eval index, the training splits: rows stream into spools
        try:
            stream_groups(cfg, groups, pool, report, tmp, bar)
        finally:
            bar.close()
        t_stream = time.perf_counter()
        seconds = {"stream": t_stream - t0}

        # 5-6. weights + shuffle on index arrays, shards from the spools, committed manifest-last
        manifest = commit_dataset(store, dc, groups, report, seconds, tmp, pool)
    meta_splits = manifest.metadata["splits"]
    total_kept = sum(m["count"] for m in meta_splits.values())
    log.info(
        "dataset %s: %d samples (%s) in %.1fs",
        dc.name,
        total_kept,
        ", ".join(f"{k}={v['count']}" for k, v in meta_splits.items()),
        time.perf_counter() - t0,
    )
    return manifest.model_dump(mode="json")
