"""``recipes/eval-suite.yaml``: it validates (``ovr config show``), names registered adapters and
every benchmark of the 7B recipe, and builds from copies laid out as users download them (hub
folders with their README configurations, JSONL/parquet files, LogicVista's release)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ovr.config import load_config
from ovr.data.build import build_dataset
from ovr.data.registry import get_adapter
from ovr.store import Store

EXPECTED = {
    "math500": 2,
    "aime24": 2,
    "aime25": 3,
    "amc": 3,
    "gsm8k": 2,
    "mathvision": 4,
    "mathverse_vision_only": 2,
    "mathvista": 2,
    "wemath": 2,
    **{f"dynamath_v{i}": 3 for i in range(1, 11)},
    "logicvista": 2,
}
BENCHMARKS = [name for name in EXPECTED if not name.startswith("dynamath_v")]
BENCHMARKS.insert(BENCHMARKS.index("logicvista"), "dynamath")


@pytest.fixture(scope="module")
def suite(repo_root):
    return load_config(repo_root / "recipes/eval-suite.yaml", use_env=False)


def test_config_show_prints_the_suite(repo_root):
    from typer.testing import CliRunner

    from ovr.cli import app

    res = CliRunner().invoke(app, ["config", "show", str(repo_root / "recipes/eval-suite.yaml")])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert [s["name"] for s in shown["data"]["sources"]] == list(EXPECTED)
    assert shown["eval"]["benchmarks"] == BENCHMARKS
    assert shown["eval"]["benchmark_ids"] == {f"dynamath_v{i}": "dynamath" for i in range(1, 11)}


def test_suite_uses_registered_adapters_and_covers_the_7b_benchmarks(suite, repo_root):
    assert all(get_adapter(s.adapter) and s.split == "eval" for s in suite.data.sources)
    paper = load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False).eval.benchmarks
    assert set(paper) <= set(suite.eval.benchmarks)


def _readme(folder: Path, configs: dict[str, dict[str, str]]) -> None:
    """A hub dataset card declaring ``config -> split -> file``."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("\n".join(lines + ["---", "# card", ""]))


def _parquet_of(saved: Path, split: str, dest: Path) -> None:
    from datasets import load_from_disk

    dest.parent.mkdir(parents=True, exist_ok=True)
    ds = load_from_disk(str(saved))
    (ds[split] if split else ds).to_parquet(str(dest))


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)


def download_benchmarks(source_files, root: Path) -> None:
    """``benchmarks/`` as the recipe expects it, from the real-layout fixtures."""
    b = root / "benchmarks"
    _copy(source_files["math500"].path, b / "MATH-500" / "test.jsonl")
    _copy(source_files["aime"].path, b / "aime_2024" / "data" / "train-00000-of-00001.parquet")
    _copy(source_files["aime25"].path, b / "AIME2025" / "aime2025-I.jsonl")
    _copy(source_files["amc"].path.parent, b / "aimo-validation-amc" / "data")
    _readme(b / "gsm8k", {"main": {"test": "main/test-*.parquet"}, "socratic": {"test": "socratic/test-*.parquet"}})
    _copy(source_files["gsm8k"].path, b / "gsm8k" / "main" / "test-00000-of-00001.parquet")
    _copy(source_files["gsm8k"].path, b / "gsm8k" / "socratic" / "test-00000-of-00001.parquet")
    vision = source_files["mathvision"].path.parent
    _readme(b / "MathVision", {"default": {"test": "data/test.jsonl"}})
    _copy(vision / "test.jsonl", b / "MathVision" / "data" / "test.jsonl")
    _copy(vision / "images", b / "MathVision" / "images")
    _readme(
        b / "MathVerse",
        {
            "testmini": {"testmini": "testmini.parquet"},
            "testmini_text_only": {"testmini": "testmini_text_only.parquet"},
        },
    )
    _parquet_of(source_files["mathverse"].path, "testmini", b / "MathVerse" / "testmini.parquet")
    _parquet_of(source_files["mathverse_text_only"].path, "testmini", b / "MathVerse" / "testmini_text_only.parquet")
    _readme(b / "MathVista", {"default": {"testmini": "data/testmini-*.parquet"}})
    _parquet_of(source_files["mathvista"].path, "", b / "MathVista" / "data" / "testmini-00000-of-00001.parquet")
    _readme(b / "We-Math", {"default": {"testmini": "testmini.parquet"}})
    _copy(source_files["wemath"].path, b / "We-Math" / "testmini.parquet")
    variants = range(1, 11)
    _readme(b / "DynaMath_Sample", {"default": {f"sample_variant{i}": f"data/sample{i}-*.parquet" for i in variants}})
    for i in variants:  # the fixture's first variant stands for all ten
        _parquet_of(
            source_files["dynamath"].path,
            "sample_variant1",
            b / "DynaMath_Sample" / "data" / f"sample{i}-00000-of-00001.parquet",
        )
    _copy(source_files["logicvista"].path.parent, b / "LogicVista" / "data")


def test_suite_builds_from_downloaded_copies(source_files, repo_root, tmp_path, monkeypatch):
    download_benchmarks(source_files, tmp_path)
    monkeypatch.chdir(tmp_path)  # the recipe's paths are relative, as a user's checkout would have them
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    cfg = load_config(repo_root / "recipes/eval-suite.yaml", use_env=False)
    meta = build_dataset(cfg, Store.from_config(cfg.store), progress=False)["metadata"]
    assert meta["splits"]["eval"]["sources"] == EXPECTED
    assert meta["benchmarks"] == sorted(EXPECTED)

    from typer.testing import CliRunner

    from ovr.cli import app

    res = CliRunner().invoke(app, ["grading", "--recipe", str(repo_root / "recipes/eval-suite.yaml")])
    assert res.exit_code == 0, res.output
    print(res.output)  # the grading paths per benchmark (pytest -s shows them)
    rows = {line.split(" | ")[0].strip("| "): line for line in res.output.splitlines() if line.startswith("| ")}
    assert rows["dynamath"] == "| dynamath | 20 | 10 | 0 | 0 | 30 / 5010 (not the published set) |"  # 'red' by string
    assert (
        rows["mathverse_vision_only"] == "| mathverse_vision_only | 2 | 0 | 0 | 0 | 2 / 788 (not the published set) |"
    )
    assert rows["amc"] == "| amc | 3 | 0 | 0 | 0 | 3 / unknown |"
    assert set(rows) == {"benchmark", *BENCHMARKS}
