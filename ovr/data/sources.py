"""Read a source's rows, whatever it was saved as: ``datasets.save_to_disk`` folders, parquet
(a file or a folder of shards), JSONL or a JSON array; locally or under ``s3://bucket/prefix``.

Rows come out as plain dicts in the source's own columns. Image columns keep their storage form
(``{"bytes", "path"}``) so nothing is decoded twice. A JSONL line that does not parse is yielded as
the exception, so the build reports it and goes on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ovr.config import StoreConfig

RowOrError = dict | Exception


@dataclass(frozen=True)
class SourceFiles:
    """A source resolved to local files."""

    kind: str  # "hf_disk" | "parquet" | "jsonl" | "json"
    root: Path  # folder relative image paths are resolved against
    files: tuple[Path, ...]


def fetch_s3(uri: str, store_cfg: StoreConfig, cache_dir: Path) -> Path:
    """Download every object under ``s3://bucket/prefix`` into a cache folder (reused when complete)."""
    from ovr.store import Store

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    store = Store.from_config(store_cfg.model_copy(update={"uri": f"s3://{bucket}"}))
    dest = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    keys = store.list(prefix)
    if not keys:
        raise FileNotFoundError(f"no objects under {uri}")
    if (dest / ".complete").is_file():
        return dest if len(keys) > 1 else dest / Path(keys[0]).name
    for key in keys:
        rel = Path(key).relative_to(prefix) if len(keys) > 1 else Path(Path(key).name)
        store.get_file(key, dest / rel)
    (dest / ".complete").write_text(uri)
    return dest if len(keys) > 1 else dest / Path(keys[0]).name


def resolve(path: str | Path) -> SourceFiles:
    """What kind of source a local path is, and its files in a stable order."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"source not found: {p}")
    if p.is_dir():
        if any((p / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return SourceFiles("hf_disk", p, (p,))
        for kind, pattern in (("parquet", "*.parquet"), ("jsonl", "*.jsonl"), ("json", "*.json")):
            files = tuple(sorted(f for f in p.rglob(pattern) if not f.name.startswith(".")))
            if files:
                return SourceFiles(kind, p, files)
        raise ValueError(f"{p} holds no datasets save_to_disk folder, parquet, JSONL or JSON files")
    suffix = p.suffix.lower()
    kind = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json"}.get(suffix)
    if kind is None:
        raise ValueError(f"unsupported source file {p} (expected .parquet, .jsonl or .json)")
    return SourceFiles(kind, p.parent, (p,))


def _hf_rows(path: Path, hf_split: str | None, batch: int) -> Iterator[dict]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if hf_split is None:
            if len(ds) != 1:
                raise ValueError(f"{path} has splits {list(ds)}: set options.hf_split")
            hf_split = next(iter(ds))
        if hf_split not in ds:
            raise ValueError(f"{path} has no split {hf_split!r} (has {list(ds)})")
        ds = ds[hf_split]
    # Arrow format keeps Image columns as their {"bytes", "path"} storage: no decode/re-encode.
    for table in ds.with_format("arrow").iter(batch_size=batch):
        yield from table.to_pylist()


def _parquet_rows(path: Path, batch: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for rb in pq.ParquetFile(path).iter_batches(batch_size=batch):
        yield from rb.to_pylist()


def _jsonl_rows(path: Path) -> Iterator[RowOrError]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("line is not a JSON object")
                yield row
            except ValueError as err:
                yield ValueError(f"{path.name}:{lineno}: bad JSON line: {err}")


def _json_rows(path: Path) -> Iterator[RowOrError]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):  # {"data": [...]} or {"id": {...}, ...}
        data = data.get("data", list(data.values()))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of rows")
    for row in data:
        yield row if isinstance(row, dict) else ValueError(f"{path.name}: row is not an object")


def iter_rows(src: SourceFiles, hf_split: str | None = None, batch: int = 256) -> Iterator[RowOrError]:
    """Rows of a resolved source, in file order then row order."""
    for file in src.files:
        if src.kind == "hf_disk":
            yield from _hf_rows(file, hf_split, batch)
        elif src.kind == "parquet":
            yield from _parquet_rows(file, batch)
        elif src.kind == "jsonl":
            yield from _jsonl_rows(file)
        else:
            yield from _json_rows(file)
