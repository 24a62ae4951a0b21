"""Samples <-> parquet rows, with one fixed Arrow schema so equal inputs give byte-identical shards.

Images are stored inline (``images: list<struct<data: binary, key, sha256>>``); conversations as a
list of ``{role, content}``; ``provenance`` as sorted-key JSON text (free-form per source).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ovr.schema import ImageRef, Message, Sample

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("modality", pa.string()),
        ("prompt", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(pa.struct([("data", pa.binary()), ("key", pa.string()), ("sha256", pa.string())]))),
        ("answer", pa.string()),
        ("answer_type", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("subject", pa.string()),
        ("difficulty", pa.float64()),
        ("pass_rate", pa.float64()),
        ("provenance", pa.string()),
    ]
)


def to_row(s: Sample) -> dict:
    return {
        "id": s.id,
        "source": s.source,
        "split": s.split,
        "modality": s.modality,
        "prompt": s.prompt,
        "messages": None if s.messages is None else [m.model_dump() for m in s.messages],
        "images": [i.model_dump() for i in s.images],
        "answer": s.answer,
        "answer_type": s.answer_type,
        "choices": s.choices,
        "subject": s.subject,
        "difficulty": s.difficulty,
        "pass_rate": s.pass_rate,
        "provenance": json.dumps(s.provenance, sort_keys=True, default=str),
    }


def from_row(row: dict) -> Sample:
    return Sample(
        id=row["id"],
        source=row["source"],
        split=row["split"],
        modality=row["modality"],
        prompt=row["prompt"],
        messages=None if row["messages"] is None else [Message(**m) for m in row["messages"]],
        images=[ImageRef(**i) for i in row["images"] or []],
        answer=row["answer"],
        answer_type=row["answer_type"],
        choices=row["choices"],
        subject=row["subject"],
        difficulty=row["difficulty"],
        pass_rate=row["pass_rate"],
        provenance=json.loads(row["provenance"] or "{}"),
    )


def write_shard(samples: list[Sample], path: Path, row_group_size: int = 1024) -> None:
    """One parquet file; zstd, fixed schema, no wall-clock metadata."""
    table = pa.Table.from_pylist([to_row(s) for s in samples], schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)


def shard_names(split: str, count: int) -> list[str]:
    return [f"{split}/{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


def write_split(samples: list[Sample], split: str, out_dir: Path, shard_size: int) -> list[str]:
    """Write ``samples`` as ``ceil(n / shard_size)`` shards under ``out_dir/split/``; returns their names."""
    chunks = [samples[i : i + shard_size] for i in range(0, len(samples), shard_size)]
    names = shard_names(split, len(chunks))
    for name, chunk in zip(names, chunks):
        write_shard(chunk, out_dir / name)
    return names


def read_shard(path: Path, batch_size: int = 256) -> Iterator[Sample]:
    """Stream the samples of one shard, a record batch at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield from_row(row)


def count_by(samples: Iterable[Sample], attr: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        key = str(getattr(s, attr))
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
