"""Checkpoints written by several ranks (DeepSpeed ZeRO partitions, per-rank RNG states).

A file named for a rank (``zero_pp_rank_3_...``, ``bf16_zero_pp_rank_3_...``, ``rng_state_3.pth``)
belongs to that rank; every other file is shared and belongs to the main rank. Each rank uploads
the files it owns from its own folder (which may be private to it, or shared by the ranks of a
node), the main rank gathers every rank's file list and writes the manifest last, so a checkpoint
is visible only once every partition is in the store. On resume each rank downloads the shared
files and its own partitions, nothing of the others'.

>>> file_owner("actor_optim/ds/zero_pp_rank_1_mp_rank_00_optim_states.pt"), file_owner("state.json")
(1, None)
"""

from __future__ import annotations

import re
from pathlib import Path

from ovr.distributed import Dist
from ovr.schema import CheckpointManifest
from ovr.store import Store

_RANK_FILE = re.compile(r"(?:^|/)(?:\w*_)?zero_pp_rank_(\d+)_|(?:^|/)rng_state_(\d+)\.pth$")


def file_owner(rel_path: str) -> int | None:
    """The data-parallel rank a checkpoint file belongs to; None for a shared file."""
    m = _RANK_FILE.search(rel_path)
    if m is None:
        return None
    return int(m.group(1) or m.group(2))


def commit_sharded(
    store: Store, dist: Dist, prefix: str, folder: Path, *, run: str, step: int, kind: str, metadata: dict | None = None
) -> CheckpointManifest | None:
    """Every rank uploads its files of ``folder``; the main rank then writes the manifest (call on
    every rank; returns the manifest on the main rank)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "manifest.json")
    mine = [p for p in files if (file_owner(p.relative_to(folder).as_posix()) or 0) == dist.rank]
    entries = store.upload(prefix, folder, mine)
    everyone = dist.all_gather([e.model_dump() for e in entries])
    manifest = None
    if dist.is_main:
        from ovr.schema import FileEntry

        merged = {e["path"]: FileEntry.model_validate(e) for rank_entries in everyone for e in rank_entries}
        manifest = store.write_manifest(prefix, list(merged.values()), run=run, step=step, kind=kind, metadata=metadata)
    dist.barrier()
    return manifest


def ranks_in(manifest: CheckpointManifest) -> int | None:
    """How many ranks wrote the checkpoint's partitions (None when it holds no per-rank file)."""
    owners = {file_owner(f.path) for f in manifest.files} - {None}
    return max(owners) + 1 if owners else None


def download_for_rank(store: Store, prefix: str, dest: Path, rank: int, shared: bool = True) -> Path:
    """The shared files (unless ``shared`` is False: another rank of this folder fetches them) and
    ``rank``'s own files of a committed checkpoint."""

    def select(path: str) -> bool:
        owner = file_owner(path)
        return owner == rank or (owner is None and shared)

    return store.download(prefix, dest, select)
