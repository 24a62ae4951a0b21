"""Hub sources (``hf://datasets/ORG/NAME``) through the real ``datasets.load_dataset``, offline.

Nothing can be downloaded here, so the datasets cache is given what an earlier online
``load_dataset`` leaves in it (written by the datasets library's own parquet builder, in the cache
layout ``ORG___name/<config>/<version>/<hash>``) and the library runs in its offline mode, which
reads that cache. The build must mirror the dataset into the store once and read the mirror on
every later run, even when the datasets cache is gone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ovr.config import RunConfig
from ovr.data.build import build_dataset
from ovr.data.hub import HubSource
from ovr.data.reader import load_samples
from ovr.store import Store


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch) -> Path:
    """The datasets cache, in offline mode (``HF_HUB_OFFLINE``: no call leaves this machine)."""
    import datasets.config

    cache = tmp_path / "hf-datasets"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def cache_as_downloaded(cache: Path, repo_id: str, config: str, splits: dict[str, Path]) -> None:
    """Put parquet files in the datasets cache as ``load_dataset(repo_id, config)`` online would."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo_id.split("/")
    name = camelcase_to_snakecase(name)
    builder = Parquet(
        cache_dir=str(cache.parent / "builder"),
        dataset_name=name,
        config_name=config,
        data_files={split: str(path) for split, path in splits.items()},
    )
    builder.download_and_prepare(output_dir=str(cache / f"{namespace}___{name}" / config / "0.0.0" / "c0ffee"))


def hub_cfg(tmp_path: Path, name: str, **source) -> RunConfig:
    return RunConfig.model_validate(
        {
            "store": {"uri": str(tmp_path / "store")},
            "data": {"name": name, "cache_dir": str(tmp_path / "sources-cache"), "sources": [source]},
        }
    )


def test_hub_source_is_mirrored_once_then_read_from_the_store(source_files, hf_cache, tmp_path):
    cache_as_downloaded(hf_cache, "openai/gsm8k", "main", {"test": source_files["gsm8k"].path})
    source = {
        "adapter": "gsm8k",
        "path": "hf://datasets/openai/gsm8k",
        "hf_config": "main",
        "hf_split": "test",
        "split": "eval",
    }
    cfg = hub_cfg(tmp_path, "gsm", **source)
    store = Store.from_config(cfg.store)
    meta = build_dataset(cfg, store, progress=False)["metadata"]
    assert meta["splits"]["eval"]["sources"] == {"gsm8k": 2}
    mirror = store.read_manifest("sources/hub/openai/gsm8k/main/test@default")
    assert mirror is not None and mirror.kind == "source" and mirror.metadata["rows"] == {"test": 3}

    # the datasets cache and the local copy are gone (a fresh pod): the store's mirror is read, no download
    shutil.rmtree(hf_cache)
    shutil.rmtree(tmp_path / "sources-cache")
    again_cfg = hub_cfg(tmp_path, "gsm-again", **source)
    again = build_dataset(again_cfg, store, progress=False)["metadata"]
    assert again["splits"]["eval"]["sources"] == {"gsm8k": 2}
    assert [s.answer for s in load_samples(store, again_cfg.data.dataset_id, "eval")] in (
        ["72", "123400"],
        ["123400", "72"],
    )

    # a split that was never mirrored needs the hub, which offline mode refuses
    with pytest.raises(ConnectionError, match="openai/gsm8k"):
        build_dataset(hub_cfg(tmp_path, "gsm-train", **{**source, "hf_split": "train"}), store, progress=False)


def test_hub_config_with_images_and_a_pinned_revision(source_files, hf_cache, tmp_path):
    from datasets import load_from_disk

    parquet = tmp_path / "testmini.parquet"
    load_from_disk(str(source_files["mathverse"].path))["testmini"].to_parquet(str(parquet))
    cache_as_downloaded(hf_cache, "AI4Math/MathVerse", "testmini", {"testmini": parquet})
    cfg = hub_cfg(
        tmp_path,
        "verse",
        adapter="mathverse",
        path="hf://datasets/AI4Math/MathVerse",
        hf_config="testmini",
        hf_split="testmini",
        revision="c0ffee",
        split="eval",
    )
    store = Store.from_config(cfg.store)
    meta = build_dataset(cfg, store, progress=False)["metadata"]
    assert meta["splits"]["eval"]["sources"] == {"mathverse": 7}
    assert store.read_manifest("sources/hub/AI4Math/MathVerse/testmini/testmini@c0ffee") is not None
    samples = load_samples(store, cfg.data.dataset_id, "eval")
    assert all(s.images and s.images[0].data[:4] == b"\x89PNG" for s in samples)


SNAPSHOT_README = """---
configs:
- config_name: testmini
  data_files:
  - split: testmini
    path: testmini.parquet
- config_name: testmini_text_only
  data_files:
  - split: testmini
    path: testmini_text_only.parquet
---
# a hub dataset card
"""


def test_downloaded_hub_folder_read_by_config_and_split(source_files, hf_cache, tmp_path):
    """A folder as ``huggingface-cli download --local-dir`` leaves it: README configurations + files."""
    from datasets import load_from_disk

    folder = tmp_path / "MathVerse"
    folder.mkdir()
    (folder / "README.md").write_text(SNAPSHOT_README)
    load_from_disk(str(source_files["mathverse"].path))["testmini"].to_parquet(str(folder / "testmini.parquet"))
    load_from_disk(str(source_files["mathverse_text_only"].path))["testmini"].to_parquet(
        str(folder / "testmini_text_only.parquet")
    )
    base = {"adapter": "mathverse", "path": str(folder), "hf_split": "testmini", "split": "eval"}
    cfg = RunConfig.model_validate(
        {
            "store": {"uri": str(tmp_path / "store")},
            "data": {
                "name": "snap",
                "sources": [
                    {**base, "name": "vision", "hf_config": "testmini", "options": {"versions": ["Vision Only"]}},
                    {**base, "name": "text", "hf_config": "testmini_text_only"},
                ],
            },
        }
    )
    meta = build_dataset(cfg, Store.from_config(cfg.store), progress=False)["metadata"]
    assert meta["splits"]["eval"]["sources"] == {"text": 3, "vision": 2}
    assert meta["splits"]["eval"]["modalities"] == {"image": 2, "text": 3}


@pytest.mark.parametrize("uri", ["hf://datasets/", "hf://datasets/a/b/c", "hf://models/org/name", "org/name"])
def test_bad_hub_ids_are_clear_errors(uri):
    with pytest.raises(ValueError, match="must look like hf://datasets/ORG/NAME"):
        HubSource.parse(uri)
