"""Stream one (split, source) group of a build: rows -> adapter -> checks (worker processes) ->
the split's stateful filters -> an on-disk spool, holding only the chunks in flight.

The filters see items in the order the in-memory build saw them (source by source in config order,
row by row) and keep the same state (first of duplicates kept; the LSH holds every item that passed
the exact and near-duplicate filters), so a streaming build keeps and drops the same rows.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ovr.config import DataConfig, DataSourceConfig, StoreConfig
from ovr.data import hub
from ovr.data.checks import Checked, CheckSettings, image_hashes
from ovr.data.filters import is_procedural, pass_rate_problem
from ovr.data.index import ExactIndex, NearDupIndex, QuestionStore
from ovr.data.registry import Drop, Reject, RowContext, get_adapter
from ovr.data.report import FILTER, READ, VERIFY, BuildProgress, Report
from ovr.data.sources import SourceFiles, count_rows, fetch_s3, iter_rows, resolve
from ovr.data.spool import Spool, SpoolWriter, sample_bytes
from ovr.data.workers import CheckPool
from ovr.schema import Sample
from ovr.store import Store

log = logging.getLogger("ovr.data")
CHUNK = 64  # items per task sent to a worker
CHUNK_BYTES = 4 << 20  # ... fewer when their rows hold more (the build keeps in-flight chunks' rows)
EXACT, NEAR, CONTAMINATION, BAND = range(4)  # the training filters, in the order they apply


def source_files(src: DataSourceConfig, dc: DataConfig, store_cfg: StoreConfig) -> SourceFiles:
    """A source's local files: hub datasets mirrored through the store, s3:// copied to the cache."""
    if src.path is None:
        raise ValueError(f"data source {src.name or src.adapter} ({src.adapter}) needs a path")
    path = src.path
    if hub.is_hub(path):
        source = hub.HubSource.parse(path, src.hf_config, src.hf_split, src.revision)
        path = str(hub.mirror(source, Store.from_config(store_cfg), Path(dc.cache_dir)))
    elif path.startswith("s3://"):
        path = str(fetch_s3(path, store_cfg, Path(dc.cache_dir)))
    return resolve(path, snapshot=src.hf_config is not None or src.hf_split is not None)


def adapt_rows(
    src: DataSourceConfig,
    files: SourceFiles,
    dc: DataConfig,
    report: Report,
    bucket: tuple = (READ,),
    on_row: Callable[[int], object] | None = None,
) -> Iterator[Sample]:
    """Adapt one source's rows; skipped and corrupt rows are reported with their reasons, the
    source's ``max_samples`` stops the reading."""
    adapter = get_adapter(src.adapter)
    name = src.name or adapter.name
    kept = 0
    for index, row in enumerate(iter_rows(files, hf_split=src.hf_split, hf_config=src.hf_config)):
        report.read[name] += 1
        if on_row:
            on_row(1)
        if isinstance(row, Exception):
            report.drop(name, "corrupt row: unreadable", index, str(row), bucket)
            continue
        ctx = RowContext(name, src.split, index, src.path, files.root, dc.prompt_template, src.options)
        try:
            sample = adapter(row, ctx)
        except Reject as why:
            report.drop(name, f"corrupt row: {why.reason}", index, why.detail, bucket)
            continue
        except Drop as why:
            report.drop(name, why.reason, index, why.detail, bucket)
            continue
        except Exception as err:  # a bad row never stops the build; it is reported with its reason
            detail = f"{type(err).__name__}: {err}"[:300]
            report.drop(name, f"corrupt row: {type(err).__name__}", index, detail, bucket)
            log.warning("%s row %d skipped: %s: %s", name, index, type(err).__name__, err)
            continue
        if sample.pass_rate is None and row.get("pass_rate") is not None:
            sample = sample.model_copy(update={"pass_rate": float(row["pass_rate"])})
        yield sample
        kept += 1
        if src.max_samples is not None and kept >= src.max_samples:
            return


@dataclass
class Feed:
    """Where some of a group's items come from: a source's files, or a procedural generator."""

    rows: int | None  # rows it will read, when known (for the ETA)
    items: Callable[[Report, Callable[[int], object]], Iterable[Sample]]


def source_feed(src: DataSourceConfig, position: int, dc: DataConfig, store_cfg: StoreConfig) -> Feed:
    files = source_files(src, dc, store_cfg)
    rows = count_rows(files, src.hf_split)
    if rows is not None and src.max_samples is not None:
        rows = min(rows, src.max_samples)
    return Feed(rows, lambda report, bar: adapt_rows(src, files, dc, report, (READ, position), bar))


def generated_feed(count: int, make: Callable[[], list[Sample]]) -> Feed:
    def items(report: Report, bar: Callable[[int], object]) -> Iterator[Sample]:
        for sample in make():
            report.read[sample.source] += 1
            bar(1)
            yield sample

    return Feed(count, items)


@dataclass
class Group:
    """One (split, source) of a build: its feeds, mixing weight and, once streamed, its spool."""

    split: str
    name: str
    weight: float
    position: int  # order of the group in the build (drop lists, mixing)
    feeds: list[Feed] = field(default_factory=list)
    spool: Spool | None = None


class SplitFilters:
    """The stateful filters of one training split, item by item: exact duplicates, near duplicates
    (both across the split's sources; procedural items exempt), eval contamination, pass-rate band."""

    def __init__(self, dc: DataConfig, split: str, folder: Path):
        self.exact = ExactIndex() if dc.dedup else None
        self.near = None
        if dc.near_dup_threshold is not None:
            self.near = NearDupIndex(dc.near_dup_threshold, store=QuestionStore(folder / f"{split}-questions.txt"))
        self.band = dc.pass_rate_band if split == "rl" else None

    def verdict(self, sample: Sample, checked: Checked, images: tuple[str, ...]) -> tuple[int, str] | None:
        """(filter, reason) when the item is dropped, else None (and it is indexed)."""
        if not is_procedural(sample):
            if self.exact is not None and not self.exact.add(checked.exact):
                return EXACT, "exact duplicate"
            if self.near is not None and self.near.check_add(checked.words.split(" "), images, checked.bands):
                return NEAR, "near duplicate"
        if checked.contamination:
            return CONTAMINATION, checked.contamination
        problem = pass_rate_problem(sample, self.band)
        return (BAND, problem) if problem else None

    def close(self) -> None:
        if self.near is not None:
            self.near.store.close()


def _chunks(items: Iterable[Sample], size: int = CHUNK, max_bytes: int = CHUNK_BYTES) -> Iterator[list[Sample]]:
    """Lists of ``size`` items, fewer when their rows hold more than ``max_bytes``."""
    chunk, nbytes = [], 0
    for sample in items:
        chunk.append(sample)
        nbytes += sample_bytes(sample)
        if len(chunk) >= size or nbytes >= max_bytes:
            yield chunk
            chunk, nbytes = [], 0
    if chunk:
        yield chunk


def stream_group(
    group: Group,
    pool: CheckPool,
    settings: CheckSettings,
    report: Report,
    folder: Path,
    progress: BuildProgress,
    filters: SplitFilters | None = None,
    split_position: int = 0,
) -> Spool:
    """Stream every feed of ``group`` through the checks and ``filters`` into a spool under ``folder``."""
    writer = SpoolWriter(folder / f"{group.position:03d}-{group.split}.spool")
    items = itertools.chain.from_iterable(feed.items(report, progress.update) for feed in group.feeds)
    for chunk, checked in pool.check(_chunks(items), settings):
        for sample, result in zip(chunk, checked):
            if result.problem:
                report.drop_sample(sample, result.problem, (VERIFY, group.position))
                continue
            verdict = filters.verdict(sample, result, image_hashes(sample)) if filters else None
            if verdict:
                report.drop_sample(sample, verdict[1], (FILTER, split_position, verdict[0]))
                continue
            writer.add(sample)
    group.spool = writer.close()
    return group.spool
