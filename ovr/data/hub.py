"""Hub sources: ``hf://datasets/ORG/NAME`` read through ``datasets.load_dataset`` once, then mirrored
into the store, so every later build (on any machine that shares the store) reads the mirror and
never downloads again.

The mirror is a ``save_to_disk`` folder committed manifest-last under
``sources/hub/<ORG>/<NAME>/<config>/<split>@<revision>``; a local copy under ``DataConfig.cache_dir``
is reused while it matches the mirror's manifest. Authentication (``HF_TOKEN``), endpoints, the
download cache (``HF_DATASETS_CACHE``) and offline mode (``HF_HUB_OFFLINE=1``: read what that cache
holds) are the ``datasets`` library's own settings.

>>> HubSource.parse("hf://datasets/AI4Math/MathVerse", config="testmini", split="testmini").store_prefix()
'sources/hub/AI4Math/MathVerse/testmini/testmini@default'
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ovr.store import MANIFEST, Store

log = logging.getLogger("ovr.data")
SCHEME = "hf://datasets/"
_REPO_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")


def is_hub(path: str) -> bool:
    """Whether a source path names a Hugging Face Hub dataset."""
    return path.startswith(SCHEME)


@dataclass(frozen=True)
class HubSource:
    """One hub dataset as ``datasets.load_dataset`` takes it."""

    repo_id: str
    config: str | None = None
    split: str | None = None
    revision: str | None = None

    @classmethod
    def parse(
        cls, uri: str, config: str | None = None, split: str | None = None, revision: str | None = None
    ) -> HubSource:
        """``hf://datasets/ORG/NAME`` (+ options) -> HubSource; ``ValueError`` for anything else."""
        repo_id = uri.removeprefix(SCHEME).strip("/")
        if not is_hub(uri) or not _REPO_ID.fullmatch(repo_id):
            raise ValueError(f"hub source {uri!r} must look like {SCHEME}ORG/NAME")
        return cls(repo_id, config, split, revision)

    def store_prefix(self) -> str:
        """Where the mirror lives in the store."""
        from ovr.store import mirror_prefix

        return mirror_prefix(self.repo_id, self.config, self.split, self.revision)


def download(src: HubSource, dest: Path) -> dict:
    """``datasets.load_dataset`` the source (into the library's own cache, ``HF_DATASETS_CACHE``) and
    ``save_to_disk`` it into ``dest``; returns what was loaded."""
    from datasets import load_dataset

    log.info(
        "loading %s%s (config %s, split %s, revision %s) through datasets.load_dataset",
        SCHEME,
        src.repo_id,
        src.config,
        src.split,
        src.revision,
    )
    ds = load_dataset(src.repo_id, name=src.config, split=src.split, revision=src.revision)
    ds.save_to_disk(str(dest))
    rows = {src.split: ds.num_rows} if src.split else dict(ds.num_rows)
    return {"repo_id": src.repo_id, "config": src.config, "split": src.split, "revision": src.revision, "rows": rows}


def _local_copy_matches(local: Path, manifest_json: str) -> bool:
    mark = local / MANIFEST
    if not mark.is_file():
        return False
    return json.loads(mark.read_text())["files"] == json.loads(manifest_json)["files"]


def mirror(src: HubSource, store: Store, cache_dir: Path) -> Path:
    """A local ``save_to_disk`` folder of ``src``: from the store's mirror when there is one, else
    loaded from the hub once and committed to the store first."""
    prefix = src.store_prefix()
    manifest = store.read_manifest(prefix)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        with tempfile.TemporaryDirectory(prefix="ovr-hub-", dir=cache_dir) as tmp:
            data = Path(tmp) / "data"
            loaded = download(src, data)
            manifest = store.commit(prefix, data, run="hub-mirror", kind="source", metadata=loaded)
        log.info("mirrored %s%s into %s/%s", SCHEME, src.repo_id, store, prefix)
    local = cache_dir / "hub" / hashlib.sha256(prefix.encode()).hexdigest()[:16]
    if not _local_copy_matches(local, manifest.model_dump_json()):
        shutil.rmtree(local, ignore_errors=True)
        store.download(prefix, local)
    return local
