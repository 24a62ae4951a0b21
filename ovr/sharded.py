"""Checkpoints written by several ranks (DeepSpeed ZeRO partitions, per-rank RNG states).

A file named for a rank (``zero_pp_rank_3_...``, ``bf16_zero_pp_rank_3_...``, ``rng_state_3.pth``)
belongs to that rank; every other file is shared and belongs to the main rank. Each rank uploads
the files it owns from its own folder (which may be private to it, or shared by the ranks of a
node), the main rank gathers every rank's file list and writes the manifest last, so a checkpoint
is visible only once every partition is in the store. On resume each rank downloads the shared
files and its own partitions, nothing of the others'.

:class:`ShardedCommit` commits a folder while it is being written: each ``push`` uploads the files
this rank wrote since the last one and, for a checkpoint that should not stay on local disk, deletes
them at once; so a node's disk holds one part of a checkpoint at a time, not every checkpoint.

>>> file_owner("actor_optim/ds/zero_pp_rank_1_mp_rank_00_optim_states.pt"), file_owner("state.json")
(1, None)
"""

from __future__ import annotations

import contextlib
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


class ShardedCommit:
    """This rank's side of one checkpoint commit (see the module doc); call ``push`` after each part
    is written and ``finish`` on every rank at the end (``finish`` pushes what is left)."""

    def __init__(self, store: Store, dist: Dist, prefix: str, folder: Path, *, delete_local: bool):
        self.store, self.dist, self.prefix, self.folder = store, dist, prefix, Path(folder)
        self.delete_local = delete_local
        self.entries: list = []
        self._sent: set[str] = set()

    def mine(self) -> list[Path]:
        """The files of the folder this rank owns and has not uploaded yet."""
        files = sorted(p for p in self.folder.rglob("*") if p.is_file() and p.name != "manifest.json")
        rel = {p: p.relative_to(self.folder).as_posix() for p in files}
        return [p for p in files if rel[p] not in self._sent and (file_owner(rel[p]) or 0) == self.dist.rank]

    def push(self) -> None:
        """Upload this rank's new files (deleting them locally when asked)."""
        files = self.mine()
        self.entries += self.store.upload(self.prefix, self.folder, files)
        self._sent |= {p.relative_to(self.folder).as_posix() for p in files}
        if self.delete_local:
            for p in files:
                p.unlink()

    def finish(self, *, run: str, step: int, kind: str, metadata: dict | None = None) -> CheckpointManifest | None:
        """Push the rest, then the main rank writes the manifest once every rank uploaded; with
        ``delete_local`` the emptied folder goes too. Returns the manifest on the main rank."""
        self.push()
        everyone = self.dist.all_gather([e.model_dump() for e in self.entries])
        manifest = None
        if self.dist.is_main:
            from ovr.schema import FileEntry

            merged = {e["path"]: FileEntry.model_validate(e) for rank_entries in everyone for e in rank_entries}
            manifest = self.store.write_manifest(
                self.prefix, list(merged.values()), run=run, step=step, kind=kind, metadata=metadata
            )
        self.dist.barrier()
        if self.delete_local:
            prune_empty_dirs(self.folder)
        return manifest


def commit_sharded(
    store: Store, dist: Dist, prefix: str, folder: Path, *, run: str, step: int, kind: str, metadata: dict | None = None
) -> CheckpointManifest | None:
    """Every rank uploads its files of ``folder`` (which stays on disk); the main rank then writes
    the manifest (call on every rank; returns the manifest on the main rank)."""
    commit = ShardedCommit(store, dist, prefix, folder, delete_local=False)
    return commit.finish(run=run, step=step, kind=kind, metadata=metadata)


def delete_own_files(folder: Path, rank: int) -> None:
    """Delete the files of ``folder`` that ``rank`` owns (its partitions; the shared files for rank
    0), then the directories left empty: each rank frees what it wrote, on whichever node it runs."""
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        if p.is_file() and (file_owner(p.relative_to(folder).as_posix()) or 0) == rank:
            p.unlink(missing_ok=True)
    prune_empty_dirs(folder)


def prune_empty_dirs(folder: Path) -> None:
    """Remove ``folder``'s empty directories, deepest first, and ``folder`` itself when empty (other
    ranks may be pruning the same tree: what vanished or filled meanwhile is left alone)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


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
