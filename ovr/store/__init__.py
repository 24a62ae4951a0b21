"""Datasets and checkpoints on S3-compatible storage (MinIO) or a local folder, one interface.

Layout under the store root (this module is its only owner: everything else asks
:func:`step_prefix`, :func:`dataset_prefix` and :class:`Kind`)::

    runs/<name>/<run id>/<kind>/step-00000042/<files...>    kind: a Kind (sft, sft-export, rl, rl-export)
    runs/<name>/<run id>/<kind>/step-00000042/manifest.json written LAST
    datasets/<name>/<files...> + manifest.json
    sources/hub/<org>/<name>/<config>/<split>@<revision>/...   a hub source, mirrored once

A commit uploads every file, then writes ``manifest.json`` (file list, sizes, sha256, step,
metadata). Readers only trust prefixes that have a manifest, so a checkpoint interrupted before its
manifest is invisible to :meth:`Store.latest`. Downloads verify each file's sha256. S3 calls are
retried with exponential backoff and fail with a clear :class:`StoreError` after the bound.
Credentials come from env vars or a mounted secret folder and are never logged.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from ovr.config import StoreConfig
from ovr.schema import CheckpointManifest, FileEntry
from ovr.store.backends import LocalBackend, S3Backend, StoreError

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class Kind(StrEnum):
    """What a committed step prefix holds."""

    SFT = "sft"  # SFT Trainer checkpoints (resume)
    SFT_EXPORT = "sft-export"  # the cold-start model (save_pretrained + processor)
    RL = "rl"  # RL checkpoints: actor, critic, optimisers, state (resume)
    RL_EXPORT = "rl-export"  # the final RL policy (average of the last checkpoints)


EXPORT_KINDS = {"sft": Kind.SFT_EXPORT, "rl": Kind.RL_EXPORT}  # stage -> the kind of its exported model


def step_prefix(run: str, step: int, kind: str = "checkpoint") -> str:
    """``runs/<run>/<kind>/step-<8 digits>``."""
    return f"runs/{run}/{_kind(kind)}/step-{step:08d}"


def export_prefix(run: str, stage: str, step: int) -> str:
    """Store prefix of the model a stage (``sft`` or ``rl``) exported at ``step``."""
    return step_prefix(run, step, EXPORT_KINDS[stage])


def dataset_prefix(name: str) -> str:
    """``datasets/<name>``: a built dataset's shards, card and manifest."""
    return f"datasets/{name}"


def mirror_prefix(repo_id: str, config: str | None, split: str | None, revision: str | None) -> str:
    """``sources/hub/<org>/<name>/<config>/<split>@<revision>``: a hub dataset mirrored into the store."""
    return f"sources/hub/{repo_id}/{config or 'default'}/{split or 'all'}@{revision or 'default'}"


def _kind(kind: str) -> str:
    return str(kind)  # a Kind or its value


# --------------------------------------------------------------------------- the store
class Store:
    """Files, datasets and manifest-last checkpoints on one backend."""

    def __init__(self, backend: LocalBackend | S3Backend):
        self.backend = backend

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> Store:
        if cfg.uri.startswith("s3://"):
            return cls(S3Backend(cfg))
        return cls(LocalBackend(cfg.uri.removeprefix("file://")))

    def __repr__(self) -> str:
        return f"Store({self.backend.describe()})"

    # plain objects
    def put_file(self, key: str, src: str | Path) -> None:
        self.backend.put_file(key, Path(src))

    def get_file(self, key: str, dst: str | Path) -> Path:
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        self.backend.get_file(key, dst)
        return dst

    def put_bytes(self, key: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            self.backend.put_file(key, Path(tmp.name))

    def get_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            return self.get_file(key, Path(d) / "obj").read_bytes()

    def exists(self, key: str) -> bool:
        return self.backend.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        return self.backend.list(prefix)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; the manifest first, so readers stop trusting it."""
        keys = self.list(prefix.rstrip("/") + "/")
        keys.sort(key=lambda k: not k.endswith("/" + MANIFEST))
        for key in keys:
            self.backend.delete(key)
        return len(keys)

    # manifest-last commits
    def upload(
        self,
        prefix: str,
        local_dir: str | Path,
        files: list[Path] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> list[FileEntry]:
        """Upload ``files`` (default: every file) of ``local_dir`` under ``prefix``; no manifest."""
        root = Path(local_dir)
        if files is None:
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
        entries = []
        for path in files:
            rel = path.relative_to(root).as_posix()
            entries.append(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
            self.backend.put_file(f"{prefix}/{rel}", path)
            if progress:
                progress(rel)
        return entries

    def write_manifest(
        self,
        prefix: str,
        entries: list[FileEntry],
        *,
        run: str,
        step: int = 0,
        kind: str = "checkpoint",
        metadata: dict | None = None,
    ) -> CheckpointManifest:
        """Make ``prefix`` visible: the manifest of files already uploaded (by one or several writers)."""
        if not entries:
            raise StoreError(f"nothing to commit under {prefix}")
        manifest = CheckpointManifest(
            run=run,
            step=step,
            kind=_kind(kind),
            files=sorted(entries, key=lambda e: e.path),
            metadata=metadata or {},
            created=time.time(),
        )
        self.put_bytes(f"{prefix}/{MANIFEST}", manifest.model_dump_json(indent=1).encode())
        return manifest

    def commit(
        self,
        prefix: str,
        local_dir: str | Path,
        *,
        run: str,
        step: int = 0,
        kind: str = "checkpoint",
        metadata: dict | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> CheckpointManifest:
        """Upload every file of ``local_dir`` under ``prefix``, then the manifest."""
        entries = self.upload(prefix, local_dir, progress=progress)
        if not entries:
            raise StoreError(f"nothing to commit in {local_dir}")
        return self.write_manifest(prefix, entries, run=run, step=step, kind=kind, metadata=metadata)

    def commit_checkpoint(
        self, run: str, step: int, local_dir: str | Path, kind: str = "checkpoint", metadata: dict | None = None
    ) -> CheckpointManifest:
        return self.commit(step_prefix(run, step, kind), local_dir, run=run, step=step, kind=kind, metadata=metadata)

    def read_manifest(self, prefix: str) -> CheckpointManifest | None:
        key = f"{prefix}/{MANIFEST}"
        if not self.backend.exists(key):
            return None
        return CheckpointManifest.model_validate_json(self.get_bytes(key))

    def checkpoints(self, run: str, kind: str = "checkpoint") -> list[CheckpointManifest]:
        """Complete checkpoints of a run (those with a manifest), oldest first."""
        base = f"runs/{run}/{_kind(kind)}/"
        prefixes = {k[: -len(MANIFEST) - 1] for k in self.list(base) if k.endswith("/" + MANIFEST)}
        found = [m for p in prefixes if (m := self.read_manifest(p)) is not None]
        return sorted(found, key=lambda m: m.step)

    def runs(self, name: str) -> list[str]:
        """Ids of the runs of ``name`` with anything in the store, oldest first (ids sort by start)."""
        return sorted({key.split("/")[2] for key in self.list(f"runs/{name}/") if key.count("/") >= 3})

    def latest(self, run: str, kind: str = "checkpoint") -> CheckpointManifest | None:
        done = self.checkpoints(run, kind)
        return done[-1] if done else None

    def download(self, prefix: str, dest: str | Path, select: Callable[[str], bool] | None = None) -> Path:
        """Download a committed prefix into ``dest`` (only the files ``select`` accepts, if given)
        and verify every file's sha256."""
        manifest = self.read_manifest(prefix)
        if manifest is None:
            raise StoreError(f"{prefix} has no manifest: not a complete commit")
        dest = Path(dest)
        for entry in manifest.files:
            if select is not None and not select(entry.path):
                continue
            target = dest / entry.path
            self.get_file(f"{prefix}/{entry.path}", target)
            digest = sha256_file(target)
            if digest != entry.sha256:
                target.unlink(missing_ok=True)
                raise StoreError(f"hash mismatch for {prefix}/{entry.path}: {digest} != {entry.sha256}")
        (dest / MANIFEST).write_text(manifest.model_dump_json(indent=1))
        return dest

    def download_checkpoint(
        self,
        run: str,
        step: int,
        dest: str | Path,
        kind: str = "checkpoint",
        select: Callable[[str], bool] | None = None,
    ) -> Path:
        return self.download(step_prefix(run, step, kind), dest, select)
