"""Datasets and checkpoints on S3-compatible storage (MinIO) or a local folder, one interface.

Layout under the store root (this module is its only owner: everything else asks
:func:`step_prefix`, :func:`dataset_prefix` and :class:`Kind`)::

    runs/<run>/<kind>/step-00000042/<files...>        kind: a Kind (sft, sft-export, rl, rl-export)
    runs/<run>/<kind>/step-00000042/manifest.json     written LAST
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
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from ovr.config import StoreConfig
from ovr.schema import CheckpointManifest, FileEntry

MANIFEST = "manifest.json"
T = TypeVar("T")


class StoreError(RuntimeError):
    """A store operation failed (unreachable endpoint after retries, missing object, bad hash)."""


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


# --------------------------------------------------------------------------- backends
class LocalBackend:
    """A folder; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StoreError(f"key escapes the store root: {key!r}")
        return path

    def put_file(self, key: str, src: Path) -> None:
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def get_file(self, key: str, dst: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise StoreError(f"no such object: {key}")
        shutil.copyfile(src, dst)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Backend:
    """A bucket (and optional key prefix) through the ``minio`` SDK."""

    def __init__(self, cfg: StoreConfig):
        import urllib3
        from minio import Minio

        bucket, _, prefix = cfg.uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"store uri {cfg.uri!r} names no bucket")
        if not cfg.endpoint:
            raise StoreError("store.endpoint is required for an s3:// store")
        access, secret = _credentials(cfg)
        self.cfg = cfg
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Our own retry loop (below) is the only one, so the bound is exact and errors are clear.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5.0, read=120.0), retries=False, maxsize=16)
        self.client = Minio(
            cfg.endpoint,
            access_key=access,
            secret_key=secret,
            secure=cfg.secure,
            region=cfg.region,
            http_client=http,
        )
        try:
            self._retry(lambda: self.client.bucket_exists(bucket) or self.client.make_bucket(bucket))
        except ValueError as err:  # minio validates names locally
            raise StoreError(f"invalid S3 bucket in store uri {cfg.uri!r}: {err}") from err

    def describe(self) -> str:
        scheme = "https" if self.cfg.secure else "http"
        return f"s3://{self.bucket}/{self.prefix} at {scheme}://{self.cfg.endpoint}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _retry(self, fn: Callable[[], T]) -> T:
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError as Urllib3Error

        retryable_codes = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"}
        for attempt in range(self.cfg.retries + 1):
            try:
                return fn()
            except S3Error as err:
                if err.code not in retryable_codes or attempt == self.cfg.retries:
                    raise StoreError(f"S3 error on {self.describe()}: {err.code}: {err.message}") from err
            except (Urllib3Error, OSError) as err:
                if attempt == self.cfg.retries:
                    raise StoreError(
                        f"S3 endpoint {self.describe()} unreachable after {attempt + 1} attempts: "
                        f"{type(err).__name__}: {err}"
                    ) from err
            time.sleep(self.cfg.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def put_file(self, key: str, src: Path) -> None:
        part = self.cfg.part_size_mb * 1024 * 1024
        self._retry(lambda: self.client.fput_object(self.bucket, self._key(key), str(src), part_size=part))

    def get_file(self, key: str, dst: Path) -> None:
        from minio.error import S3Error

        try:
            self._retry(lambda: self.client.fget_object(self.bucket, self._key(key), str(dst)))
        except StoreError as err:
            if isinstance(err.__cause__, S3Error) and err.__cause__.code == "NoSuchKey":
                raise StoreError(f"no such object: {key}") from err
            raise

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self._retry(lambda: self.client.stat_object(self.bucket, self._key(key)))
            return True
        except StoreError as err:
            if isinstance(err.__cause__, S3Error) and err.__cause__.code in {"NoSuchKey", "NoSuchObject"}:
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        objs = self._retry(lambda: list(self.client.list_objects(self.bucket, prefix=full, recursive=True)))
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(o.object_name[cut:] for o in objs)

    def delete(self, key: str) -> None:
        self._retry(lambda: self.client.remove_object(self.bucket, self._key(key)))


def _credentials(cfg: StoreConfig) -> tuple[str | None, str | None]:
    access, secret = os.environ.get(cfg.access_key_env), os.environ.get(cfg.secret_key_env)
    if (access is None or secret is None) and cfg.credentials_file:
        folder = Path(cfg.credentials_file)
        try:
            access = (folder / "access_key").read_text().strip()
            secret = (folder / "secret_key").read_text().strip()
        except OSError as err:
            raise StoreError(f"cannot read S3 credentials from {folder}: {err.strerror}") from err
    return access, secret


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
