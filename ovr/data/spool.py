"""On-disk spools of a streaming build: the kept rows of each (split, source), appended to a file
as they are kept and read back row by row in any order, and the dropped-row records, joined in the
build's order.

A spool holds each row as it goes into a shard (:func:`ovr.data.shards.to_row`), pickled, with its
offset kept in memory (8 bytes a row). Reading a row is one ``pread`` of exactly its bytes, so a
build reading rows in shuffled order holds only the rows it asked for: no memory map (whose pages
would count as the process's resident memory), no read of a whole batch to get one row.
"""

from __future__ import annotations

import json
import os
import pickle
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ovr.data.shards import from_row, to_row
from ovr.schema import Sample


def sample_bytes(sample: Sample) -> int:
    """About the bytes a sample's row takes (its texts and image bytes)."""
    texts = len(sample.prompt) + sum(len(m.content) for m in sample.messages or ())
    return texts + sum(len(i.data or b"") for i in sample.images)


class SpoolWriter:
    """Appends samples' rows to a file."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.offsets = array("q", [0])  # where each row starts, then the file's length

    def add(self, sample: Sample) -> None:
        data = pickle.dumps(to_row(sample), protocol=pickle.HIGHEST_PROTOCOL)
        self._file.write(data)
        self.offsets.append(self.offsets[-1] + len(data))

    def close(self) -> Spool:
        self._file.close()
        return Spool(self.path, np.frombuffer(self.offsets, dtype=np.int64).copy())


class Spool:
    """The rows of a closed spool file; ``offsets``: where each row starts, then the file's length."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = path, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> np.ndarray:
        """Bytes of each row (as stored)."""
        return np.diff(self.offsets)

    def rows(self, indices: np.ndarray) -> list[dict]:
        """The rows at ``indices`` (any order, repeats allowed), as shard rows."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            starts, ends = self.offsets[indices].tolist(), self.offsets[indices + 1].tolist()
            return [pickle.loads(os.pread(fd, end - start, start)) for start, end in zip(starts, ends)]
        finally:
            os.close(fd)

    def samples(self) -> Iterator[Sample]:
        """Every row as a Sample, in order."""
        with open(self.path, "rb") as f:
            for size in self.sizes.tolist():
                yield from_row(pickle.loads(f.read(size)))


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
