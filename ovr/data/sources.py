"""Read a source's rows, whatever it was saved as: ``datasets.save_to_disk`` folders, parquet
(a file or a folder of shards), JSONL, a JSON array or object of rows, or a folder of one folder
per row holding ``data.json`` (Geometry3K's raw layout); locally or under ``s3://bucket/prefix``
(hub ids ``hf://datasets/ORG/NAME`` are mirrored by :mod:`ovr.data.hub`). A folder downloaded from
the hub (``huggingface-cli download --repo-type dataset ORG/NAME --local-dir DIR``) is read through
``datasets.load_dataset(DIR, config, split)`` when a config or split is asked for, so its README's
configurations and split file names mean what they mean on the hub.

Rows come out as plain dicts in the source's own columns. Image columns keep their storage form
(``{"bytes", "path"}``) so nothing is decoded twice. Rows that have a name but no column for it get
it as ``__key__``: the key of a JSON object of rows (ScienceQA's ``problems.json``: pid -> row) or
the row folder relative to the source (``test/2401``). A JSONL line that does not parse is yielded
as the exception, so the build reports it and goes on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ovr.config import StoreConfig

RowOrError = dict | Exception
KEY = "__key__"  # a row's name when the source keeps it outside the row (object key, row folder)
ROW_FILE = "data.json"  # the file of each row folder in a folder-per-row layout
BATCH_BYTES = 8 << 20  # rows read from a columnar file at a time: about this many bytes of them


@dataclass(frozen=True)
class SourceFiles:
    """A source resolved to local files."""

    kind: str  # "hf_disk" | "hf_snapshot" | "parquet" | "jsonl" | "json" | "row_dirs"
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


def resolve(path: str | Path, snapshot: bool = False) -> SourceFiles:
    """What kind of source a local path is, and its files in a stable order. ``snapshot``: a folder
    that is not a ``save_to_disk`` one is a hub snapshot, read by ``datasets.load_dataset``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"source not found: {p}")
    if p.is_dir():
        if any((p / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return SourceFiles("hf_disk", p, (p,))
        if snapshot:
            return SourceFiles("hf_snapshot", p, (p,))
        for kind, pattern in (("parquet", "*.parquet"), ("jsonl", "*.jsonl")):
            files = tuple(sorted(f for f in p.rglob(pattern) if not f.name.startswith(".")))
            if files:
                return SourceFiles(kind, p, files)
        row_files = [f for f in p.rglob(ROW_FILE) if f.parent != p]
        if row_files:
            return SourceFiles("row_dirs", p, tuple(sorted(row_files, key=lambda f: _natural(f.relative_to(p)))))
        files = tuple(sorted(f for f in p.rglob("*.json") if not f.name.startswith(".")))
        if files:
            return SourceFiles("json", p, files)
        raise ValueError(f"{p} holds no datasets save_to_disk folder, parquet, JSONL, JSON or */{ROW_FILE} files")
    suffix = p.suffix.lower()
    kind = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json"}.get(suffix)
    if kind is None:
        raise ValueError(f"unsupported source file {p} (expected .parquet, .jsonl or .json)")
    return SourceFiles(kind, p.parent, (p,))


def _hf_rows(
    path: Path, hf_split: str | None, batch: int, kind: str = "hf_disk", hf_config: str | None = None
) -> Iterator[dict]:
    if kind == "hf_disk" and (files := _saved_arrow_files(path, hf_split)) is not None:
        yield from _arrow_stream_rows(files, batch)
        return
    from datasets import DatasetDict, load_dataset, load_from_disk

    if kind == "hf_snapshot":
        ds = load_dataset(str(path), name=hf_config, split=hf_split)
    else:
        ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        ds = ds[_pick_split(path, list(ds), hf_split)]
    batch = _rows_per_batch(batch, ds.data.nbytes, ds.num_rows)
    # Arrow format keeps Image columns as their {"bytes", "path"} storage: no decode/re-encode.
    for table in ds.with_format("arrow").iter(batch_size=batch):
        yield from table.to_pylist()


def _pick_split(path: Path, splits: list[str], hf_split: str | None) -> str:
    if hf_split is None:
        if len(splits) != 1:
            raise ValueError(f"{path} has splits {splits}: set the source's hf_split")
        return splits[0]
    if hf_split not in splits:
        raise ValueError(f"{path} has no split {hf_split!r} (has {splits})")
    return hf_split


def _saved_arrow_files(path: Path, hf_split: str | None) -> list[Path] | None:
    """The Arrow files of a ``save_to_disk`` folder (a split's, for a DatasetDict), which hold its
    rows in order; None when its state names something else (then ``datasets`` reads it)."""
    if (path / "dataset_dict.json").is_file():
        path = path / _pick_split(path, json.loads((path / "dataset_dict.json").read_text())["splits"], hf_split)
    try:
        state = json.loads((path / "state.json").read_text())
        files = [path / f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.get("_indices_data_files") or not all(f.is_file() for f in files):
        return None
    return files


def _arrow_stream_rows(files: list[Path], batch: int) -> Iterator[dict]:
    """Rows of Arrow stream files read a batch at a time (no memory map: pages a whole pass touched
    would stay in the process's resident memory); image columns keep their storage form."""
    import pyarrow as pa

    for file in files:
        with pa.OSFile(str(file)) as f:
            for rb in pa.ipc.open_stream(f):
                step = _rows_per_batch(batch, rb.nbytes, rb.num_rows)
                for start in range(0, rb.num_rows, step):
                    yield from rb.slice(start, step).to_pylist()


def _rows_per_batch(batch: int, nbytes: int, rows: int, budget: int = BATCH_BYTES) -> int:
    """``batch`` rows, fewer when rows are large: a batch of rows as Python objects stays near ``budget``."""
    return max(1, min(batch, budget * max(rows, 1) // max(nbytes, 1)))


def _parquet_rows(path: Path, batch: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    # without pre-buffering a reader holds one row group's pages, not several row groups ahead
    file = pq.ParquetFile(path, pre_buffer=False)
    meta = file.metadata
    nbytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    for rb in file.iter_batches(batch_size=_rows_per_batch(batch, nbytes, meta.num_rows)):
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


def _natural(path: Path) -> tuple:
    """Sort key putting ``2/`` before ``10/``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def _json_rows(path: Path) -> Iterator[RowOrError]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("data"), list):  # {"data": [...]}
        data = data["data"]
    if isinstance(data, dict):  # {"<key>": {...}, ...}: the key names the row
        for key, row in data.items():
            yield {**row, KEY: key} if isinstance(row, dict) else ValueError(f"{path.name}: {key!r} is not an object")
        return
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array or object of rows")
    for row in data:
        yield row if isinstance(row, dict) else ValueError(f"{path.name}: row is not an object")


def _row_dir_rows(path: Path, root: Path) -> Iterator[RowOrError]:
    key = path.parent.relative_to(root).as_posix()
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        yield ValueError(f"{key}/{path.name}: bad JSON: {err}")
        return
    yield {**row, KEY: key} if isinstance(row, dict) else ValueError(f"{key}/{path.name}: not a JSON object")


def iter_rows(
    src: SourceFiles, hf_split: str | None = None, batch: int = 256, hf_config: str | None = None
) -> Iterator[RowOrError]:
    """Rows of a resolved source, in file order then row order."""
    for file in src.files:
        if src.kind in ("hf_disk", "hf_snapshot"):
            yield from _hf_rows(file, hf_split, batch, src.kind, hf_config)
        elif src.kind == "parquet":
            yield from _parquet_rows(file, batch)
        elif src.kind == "jsonl":
            yield from _jsonl_rows(file)
        elif src.kind == "row_dirs":
            yield from _row_dir_rows(file, src.root)
        else:
            yield from _json_rows(file)


def count_rows(src: SourceFiles, hf_split: str | None = None, sample_bytes: int = 4 << 20) -> int | None:
    """About how many rows a source holds, without reading it all (for a progress line's ETA):
    parquet footers, one row per row folder, a save_to_disk dataset's length, JSONL lines (counted
    in files up to ``sample_bytes``, estimated from their first ``sample_bytes`` beyond); else None."""
    import pyarrow.parquet as pq

    if src.kind == "parquet":
        return sum(pq.ParquetFile(f).metadata.num_rows for f in src.files)
    if src.kind == "row_dirs":
        return len(src.files)
    if src.kind == "jsonl":
        return sum(_jsonl_lines(f, sample_bytes) for f in src.files)
    if src.kind == "hf_disk":
        try:
            from datasets import load_from_disk

            ds = load_from_disk(str(src.root))
            if hasattr(ds, "features"):  # a Dataset, not a DatasetDict
                return ds.num_rows
            return ds[hf_split].num_rows if hf_split in ds else sum(ds.num_rows.values())
        except (OSError, ValueError, KeyError):
            return None
    return None


def _jsonl_lines(path: Path, sample_bytes: int) -> int:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(sample_bytes)
    lines = head.count(b"\n") + (1 if head and not head.endswith(b"\n") and size <= sample_bytes else 0)
    return lines if size <= sample_bytes or not head else round(lines * size / len(head))
