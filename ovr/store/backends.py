"""Where the store's bytes live: a local folder (:class:`LocalBackend`) or an S3 bucket through the
``minio`` SDK (:class:`S3Backend`). Both answer the same calls (put/get a file, exists, list,
delete); :class:`ovr.store.Store` adds commits, manifests and hash checks on top."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ovr.config import StoreConfig
from ovr.retry import retry_call

T = TypeVar("T")


class StoreError(RuntimeError):
    """A store operation failed (unreachable endpoint after retries, missing object, bad hash)."""


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

        def transient(err: BaseException) -> bool:
            if isinstance(err, S3Error):
                return err.code in {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"}
            return isinstance(err, (Urllib3Error, OSError))

        try:
            return retry_call(fn, retries=self.cfg.retries, backoff_s=self.cfg.backoff_s, retry_on=transient)
        except S3Error as err:
            raise StoreError(f"S3 error on {self.describe()}: {err.code}: {err.message}") from err
        except (Urllib3Error, OSError) as err:
            raise StoreError(
                f"S3 endpoint {self.describe()} unreachable after {self.cfg.retries + 1} attempts: "
                f"{type(err).__name__}: {err}"
            ) from err

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
