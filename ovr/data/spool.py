"""On-disk spools of a streaming build: the kept rows of each (split, source) as an Arrow IPC file in
the shard schema, read back memory-mapped, and the dropped-row records, joined in the build's order.

A spool is mapped only for the length of one read (:meth:`Spool.take`), so the file pages a build
touches leave the process's resident memory again; what stays in memory is one batch being written
and the batch boundaries (8 bytes a batch).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ovr.data.shards import SCHEMA, from_row, to_row
from ovr.schema import Sample


class SpoolWriter:
    """Appends samples to an Arrow IPC file, a record batch at a time (``batch_rows`` rows or
    ``batch_bytes`` of text, whichever comes first)."""

    def __init__(self, path: Path, batch_rows: int = 512, batch_bytes: int = 8 << 20):
        self.path, self.batch_rows, self.batch_bytes = path, batch_rows, batch_bytes
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, SCHEMA)
        self._rows: list[dict] = []
        self._bytes = 0
        self.starts = array("q", [0])  # first row of each batch, then the row count

    def add(self, sample: Sample) -> None:
        row = to_row(sample)
        self._rows.append(row)
        self._bytes += len(row["prompt"]) + sum(len(m["content"]) for m in row["messages"] or ())
        self._bytes += sum(len(i["data"] or b"") for i in row["images"])
        if len(self._rows) >= self.batch_rows or self._bytes >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_batch(pa.RecordBatch.from_pylist(self._rows, schema=SCHEMA))
            self.starts.append(self.starts[-1] + len(self._rows))
            self._rows, self._bytes = [], 0

    def close(self) -> Spool:
        self._flush()
        self._writer.close()
        self._sink.close()
        return Spool(self.path, np.frombuffer(self.starts, dtype=np.int64).copy())


class Spool:
    """The rows of a closed spool file; ``starts``: the first row of each batch, then the count."""

    def __init__(self, path: Path, starts: np.ndarray):
        self.path, self.starts = path, starts

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, rows: np.ndarray) -> pa.Table:
        """The rows at ``rows`` (any order, repeats allowed), copied out of the mapped file."""
        batch = np.searchsorted(self.starts, rows, side="right") - 1
        pieces, where = [], []
        with pa.memory_map(str(self.path)) as mm:
            reader = pa.ipc.open_file(mm)
            for b in np.unique(batch):
                at = np.nonzero(batch == b)[0]
                pieces.append(reader.get_batch(int(b)).take(pa.array(rows[at] - self.starts[b])))
                where.append(at)
            table = pa.Table.from_batches(pieces, schema=SCHEMA).combine_chunks()
            del pieces, reader
        order = np.argsort(np.concatenate(where), kind="stable") if where else np.zeros(0, np.int64)
        return table.take(pa.array(order))

    def samples(self) -> Iterator[Sample]:
        """Every row as a Sample, in order, one batch mapped at a time."""
        for b in range(len(self.starts) - 1):
            with pa.memory_map(str(self.path)) as mm:
                rows = pa.ipc.open_file(mm).get_batch(b).to_pylist()
            yield from (from_row(r) for r in rows)


class DropLog:
    """Dropped-row records in buckets (files under ``folder``), written as rows are dropped and
    joined in sorted bucket order by :meth:`write`: a streaming build drops rows in a different
    order than the list shows them (read drops by source, then verification drops by group, then
    each training split's filter drops, filter by filter)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple, object] = {}

    def add(self, bucket: tuple, record: dict) -> None:
        f = self._files.get(bucket)
        if f is None:
            name = "-".join(str(b) for b in bucket) + ".jsonl"
            f = self._files[bucket] = open(self.folder / name, "w", encoding="utf-8")  # noqa: SIM115
        f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def __bool__(self) -> bool:
        return bool(self._files)

    def write(self, path: Path, per_reason: int) -> list[dict]:
        """Join the buckets into ``path``; returns the first ``per_reason`` records of each
        (source, reason) in the joined order."""
        seen: dict[tuple[str, str], int] = {}
        examples = []
        with open(path, "w", encoding="utf-8") as out:
            for bucket in sorted(self._files):
                self._files[bucket].close()
                with open(self._files[bucket].name, encoding="utf-8") as f:
                    for line in f:
                        out.write(line)
                        record = json.loads(line)
                        key = (record["source"], record["reason"])
                        seen[key] = seen.get(key, 0) + 1
                        if seen[key] <= per_reason:
                            examples.append(record)
        return examples
