"""Build a dataset: sources + procedural sets -> filtered, mixed, shuffled parquet shards in the store.

Reads top to bottom: (1) adapt every configured source row by row, recording why rows are
skipped; (2) generate the procedural sets; (3) drop items the reward functions cannot check;
(4) deduplicate, decontaminate against every eval item, apply the pass-rate band; (5) apply
mixing weights and a seeded shuffle per split; (6) write shards + dataset card (+ ``dropped.jsonl``:
every skipped row with its reason) and commit them under ``datasets/<dataset id>/`` (manifest last).
The same config and seed give byte-identical shards.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from ovr.config import DataConfig, DataSourceConfig, RunConfig, StoreConfig
from ovr.data import filters, hub, mix, synthetic
from ovr.data.card import render_card
from ovr.data.registry import Drop, Reject, RowContext, get_adapter
from ovr.data.shards import count_by, write_split
from ovr.data.sources import fetch_s3, iter_rows, resolve
from ovr.schema import Sample
from ovr.store import Store, dataset_prefix

log = logging.getLogger("ovr.data")
SPLITS = ("sft", "rl", "eval")
EXAMPLES_PER_REASON = 3  # dropped-row examples kept in the manifest per (source, reason)
BEHAVIOUR_SAMPLE = 20_000  # SFT items whose assistant turns are scanned for behaviours at build time
DROPPED_FILE = "dropped.jsonl"  # every dropped row (source, row, reason, detail), listed in the manifest


class Report:
    """Counts of what was read, kept and dropped (with reasons), per source, and every dropped row."""

    def __init__(self) -> None:
        self.read: dict[str, int] = defaultdict(int)
        self.dropped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.examples: list[dict] = []
        self.rows: list[dict] = []

    def drop(self, source: str, reason: str, row: int | str | None = None, detail: str | None = None) -> None:
        self.dropped[source][reason] += 1
        record = {"source": source, "row": row, "reason": reason, "detail": detail}
        self.rows.append(record)
        if self.dropped[source][reason] <= EXAMPLES_PER_REASON:
            self.examples.append(record)

    def write_rows(self, path: Path) -> None:
        """Every dropped row as one JSON line, in the order they were dropped."""
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows), encoding="utf-8")

    def drop_all(self, dropped: list[tuple[Sample, str]]) -> None:
        for sample, reason in dropped:
            self.drop(sample.source, reason, sample.provenance.get("row", sample.id), sample.id)

    def as_dict(self) -> dict:
        return {
            "read": dict(sorted(self.read.items())),
            "dropped": {s: dict(sorted(r.items())) for s, r in sorted(self.dropped.items())},
            "examples": self.examples,
        }


# --------------------------------------------------------------------------- 1. sources
def load_source(
    src: DataSourceConfig, dc: DataConfig, store_cfg: StoreConfig, report: Report, progress: bool = True
) -> list[Sample]:
    """Adapt one source's rows; skipped and corrupt rows are counted with their reasons."""
    adapter = get_adapter(src.adapter)
    name = src.name or adapter.name
    if src.path is None:
        raise ValueError(f"data source {name} ({src.adapter}) needs a path")
    path = src.path
    if hub.is_hub(path):
        source = hub.HubSource.parse(path, src.hf_config, src.hf_split, src.revision)
        path = str(hub.mirror(source, Store.from_config(store_cfg), Path(dc.cache_dir)))
    elif path.startswith("s3://"):
        path = str(fetch_s3(path, store_cfg, Path(dc.cache_dir)))
    files = resolve(path, snapshot=src.hf_config is not None or src.hf_split is not None)
    out: list[Sample] = []
    rows = iter_rows(files, hf_split=src.hf_split, hf_config=src.hf_config)
    for index, row in enumerate(tqdm(rows, desc=f"read {name}", unit="row", disable=not progress)):
        report.read[name] += 1
        if isinstance(row, Exception):
            report.drop(name, "corrupt row: unreadable", index, str(row))
            continue
        ctx = RowContext(name, src.split, index, src.path, files.root, dc.prompt_template, src.options)
        try:
            sample = adapter(row, ctx)
        except Reject as why:
            report.drop(name, f"corrupt row: {why.reason}", index, why.detail)
            continue
        except Drop as why:
            report.drop(name, why.reason, index, why.detail)
            continue
        except Exception as err:  # a bad row never stops the build; it is reported with its reason
            report.drop(name, f"corrupt row: {type(err).__name__}", index, f"{type(err).__name__}: {err}"[:300])
            log.warning("%s row %d skipped: %s: %s", name, index, type(err).__name__, err)
            continue
        if sample.pass_rate is None and row.get("pass_rate") is not None:
            sample = sample.model_copy(update={"pass_rate": float(row["pass_rate"])})
        out.append(sample)
        if src.max_samples is not None and len(out) >= src.max_samples:
            break
    return out


# --------------------------------------------------------------------------- 2. procedural sets
def synthetic_sets(dc: DataConfig) -> dict[str, list[Sample]]:
    """The configured procedural sets by split; eval sets use seeds disjoint from the training ones."""
    sc, seed, tpl = dc.synthetic, dc.seed, dc.prompt_template
    eval_seed = seed + 1_000_003
    return {
        "sft": synthetic.text_samples(sc.text_samples, seed, sc.difficulty, template=tpl, behaviours=sc.behaviours),
        "rl": synthetic.visual_samples(sc.visual_samples, seed, sc.tasks, sc.difficulty, sc.image_size, template=tpl),
        "eval": synthetic.visual_samples(
            sc.eval_samples, eval_seed, sc.tasks, sc.difficulty, sc.image_size, split="eval", template=tpl
        )
        + synthetic.text_samples(sc.eval_samples, eval_seed, sc.difficulty, split="eval", template=tpl),
    }


def filter_train_splits(groups: dict[tuple[str, str], list[Sample]], dc, report: Report) -> None:
    """Exact and near duplicates (across the sources of a split), eval n-gram overlap, and the RL
    pass-rate band, applied to the sft and rl groups in place."""
    eval_items = [s for (split, _), items in groups.items() if split == "eval" for s in items]
    for split in ("sft", "rl"):
        keys = [k for k in groups if k[0] == split]
        pool = [s for k in keys for s in groups[k]]
        if dc.dedup:
            pool, dropped = filters.drop_exact_duplicates(pool, dc.prompt_template)
            report.drop_all(dropped)
        if dc.near_dup_threshold is not None:
            pool, dropped = filters.drop_near_duplicates(pool, dc.near_dup_threshold, dc.prompt_template)
            report.drop_all(dropped)
        pool, dropped = filters.decontaminate(pool, eval_items, dc.decontaminate_ngram, dc.prompt_template)
        report.drop_all(dropped)
        if split == "rl":
            pool, dropped = filters.pass_rate_band(pool, dc.pass_rate_band)
            report.drop_all(dropped)
        for k in keys:
            groups[k] = [s for s in pool if s.source == k[1]]


def trace_behaviours(items: list[Sample], limit: int = BEHAVIOUR_SAMPLE) -> dict:
    """Behaviour rates of the assistant turns of the first ``limit`` items (a split is shuffled, so
    this is a random sample), counted by the detectors eval and RL use; plus the generator's own
    record of which trace kind each procedural item shows (``provenance["behaviour"]``)."""
    from ovr.rewards.detectors import text_rates

    head = items[:limit]
    texts = [m.content for s in head for m in (s.messages or []) if m.role == "assistant"]
    kinds: dict[str, int] = {}
    for s in head:
        if "behaviour" in s.provenance:
            kinds[s.provenance["behaviour"]] = kinds.get(s.provenance["behaviour"], 0) + 1
    return {**text_rates(texts), "trace_kinds": dict(sorted(kinds.items()))}


def commit_dataset(store: Store, dc, splits: dict[str, list[Sample]], report: Report, seconds: dict, progress: bool):
    """Shards, card and dropped-row list of the splits, committed manifest-last (replacing an older build)."""
    with tempfile.TemporaryDirectory(prefix="ovr-data-") as tmp:
        out = Path(tmp)
        meta_splits = {}
        t0 = time.perf_counter()
        for split, items in tqdm(splits.items(), desc="write shards", unit="split", disable=not progress):
            meta_splits[split] = {
                "count": len(items),
                "shards": write_split(items, split, out, dc.shard_size) if items else [],
                "sources": count_by(items, "source"),
                "modalities": count_by(items, "modality"),
                "subjects": count_by(items, "subject"),
            }
            if split == "sft":
                meta_splits[split]["behaviours"] = trace_behaviours(items)
        metadata = {
            "name": dc.name,
            "dataset_id": dc.dataset_id,
            "splits": meta_splits,
            "benchmarks": sorted({s.source for s in splits["eval"]}),
            **report.as_dict(),
            "dropped_rows": DROPPED_FILE if report.rows else None,
            "seconds": {k: round(v, 3) for k, v in (seconds | {"write": time.perf_counter() - t0}).items()},
            "config": dc.model_dump(mode="json"),
        }
        (out / "README.md").write_text(render_card(metadata))
        if report.rows:
            report.write_rows(out / DROPPED_FILE)
        return store.commit(dataset_prefix(dc.dataset_id), out, run=dc.name, step=0, kind="dataset", metadata=metadata)


# --------------------------------------------------------------------------- the build
def build_dataset(cfg: RunConfig, store: Store, progress: bool = True) -> dict:
    """Build ``cfg.data`` into ``datasets/<dataset id>/`` of ``store``; returns the committed manifest as a dict
    (``metadata`` holds per-split counts/shards, drop reasons, timings and the data config)."""
    dc = cfg.data
    t0 = time.perf_counter()
    report = Report()
    weights: dict[str, float] = {}

    # 1. sources, grouped as (split, source) in config order
    groups: dict[tuple[str, str], list[Sample]] = {}
    for src in dc.sources:
        name = src.name or src.adapter
        if (src.split, name) in groups:
            raise ValueError(f"two sources named {name!r} feed split {src.split}: set a distinct `name`")
        groups[(src.split, name)] = load_source(src, dc, cfg.store, report, progress)
        weights[name] = src.weight

    # 2. procedural sets
    for split, samples in synthetic_sets(dc).items():
        for sample in samples:
            groups.setdefault((split, sample.source), []).append(sample)
            report.read[sample.source] += 1
    t_read = time.perf_counter()

    # 3. verifiability (eval items too: an item the reward cannot check is useless everywhere)
    with tqdm(total=sum(map(len, groups.values())), desc="verify answers", unit="item", disable=not progress) as bar:
        for key in groups:
            groups[key], dropped = filters.drop_unverifiable(
                groups[key], cfg.reward.name, dc.workers, progress=bar.update
            )
            report.drop_all(dropped)
    t_verify = time.perf_counter()

    # 4. dedup (train splits, across sources), decontamination, pass-rate band
    filter_train_splits(groups, dc, report)
    t_filter = time.perf_counter()

    # 5. mixing weights, then one seeded shuffle per split
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for (split, name), items in groups.items():
        splits[split] += mix.apply_weight(items, weights.get(name, 1.0), seed=f"{dc.seed}:{split}:{name}")
    splits = {s: mix.shuffled(items, seed=f"{dc.seed}:{s}") for s, items in splits.items()}

    # 6. shards + card, committed manifest-last
    seconds = {"read": t_read - t0, "verify": t_verify - t_read, "filter": t_filter - t_verify}
    manifest = commit_dataset(store, dc, splits, report, seconds, progress)
    meta_splits = manifest.metadata["splits"]
    total = sum(m["count"] for m in meta_splits.values())
    log.info(
        "dataset %s: %d samples (%s) in %.1fs",
        dc.name,
        total,
        ", ".join(f"{k}={v['count']}" for k, v in meta_splits.items()),
        time.perf_counter() - t0,
    )
    return manifest.model_dump(mode="json")
