"""Stream a built dataset's samples from the store, shard by shard (one shard on local disk at a time).

>>> for sample in iter_samples(store, "tiny", "rl"):     # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from ovr.data.shards import read_shard
from ovr.schema import Sample, Split
from ovr.store import Store, StoreError, dataset_prefix, sha256_file

SPLITS = ("sft", "rl", "eval")


def dataset_manifest(store: Store, name: str):
    """The committed manifest of ``datasets/<name>``; ``StoreError`` when the dataset is not built."""
    manifest = store.read_manifest(dataset_prefix(name))
    if manifest is None:
        raise StoreError(f"dataset {name!r} not found in {store} (run `ovr data build`)")
    return manifest


def iter_samples(store: Store, name: str, split: Split, source: str | None = None) -> Iterator[Sample]:
    """Samples of one split in stored (shuffled) order; ``source`` keeps one source (an eval benchmark).

    Each shard is downloaded, checked against the manifest's sha256, streamed, then deleted.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    manifest = dataset_manifest(store, name)
    shards = sorted((f for f in manifest.files if f.path.startswith(f"{split}/")), key=lambda f: f.path)
    with tempfile.TemporaryDirectory(prefix="ovr-shard-") as tmp:
        for entry in shards:
            local = store.get_file(f"{dataset_prefix(name)}/{entry.path}", Path(tmp) / "shard.parquet")
            if sha256_file(local) != entry.sha256:
                raise StoreError(f"hash mismatch for {dataset_prefix(name)}/{entry.path}")
            for sample in read_shard(local):
                if source is None or sample.source == source:
                    yield sample
            local.unlink()


def load_samples(
    store: Store, name: str, split: Split, limit: int | None = None, source: str | None = None
) -> list[Sample]:
    """The first ``limit`` samples (all when None) of a split, as a list."""
    out: list[Sample] = []
    for sample in iter_samples(store, name, split, source=source):
        if limit is not None and len(out) >= limit:
            break
        out.append(sample)
    return out
