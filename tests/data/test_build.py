"""Whole builds: real-layout sources + procedural sets -> shards, manifest and card in the store."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_layouts import png

from ovr.config import RunConfig, load_config
from ovr.data.build import build_dataset
from ovr.data.reader import iter_samples, load_samples
from ovr.store import Store, StoreError


def make_cfg(source_files, store_uri, seed=0, **data) -> RunConfig:
    leaky = next(iter(source_files.values())).path.parent / "leaky.jsonl"
    leaky.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"problem": "Compute $\\dbinom{5}{2}$.", "answer": "10"},  # a MATH500 item: leak
                {"problem": "Evaluate $6 \\cdot 7$ exactly.", "answer": "42"},
                {"problem": "evaluate $6 \\cdot 7$  exactly.", "answer": "42"},  # exact duplicate
            ]
        )
    )
    sources = [layout.source(name) for name, layout in source_files.items()]
    sources.append({"adapter": "math500", "name": "leaky", "path": str(leaky), "split": "rl"})
    return RunConfig.model_validate(
        {
            "store": {"uri": str(store_uri)},
            "data": {
                "name": "mix",
                "seed": seed,
                "sources": sources,
                "shard_size": 8,
                "synthetic": {"text_samples": 20, "visual_samples": 12, "eval_samples": 4},
                **data,
            },
        }
    )


@pytest.fixture(scope="module")
def built(source_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    cfg = make_cfg(source_files, tmp / "store")
    store = Store.from_config(cfg.store)
    return cfg, store, build_dataset(cfg, store, progress=False)


def test_build_counts_mix_and_drop_reasons(built):
    _, _store, manifest = built
    meta = manifest["metadata"]
    assert manifest["kind"] == "dataset"
    assert meta["splits"]["sft"]["sources"] == {
        "math": 2,
        "math500_layout": 2,
        "numina_math": 2,
        "openr1_math": 2,
        "synthetic_text": 20,
    }
    assert meta["splits"]["rl"]["sources"] == {
        "chartqa": 3,
        "chartqa_raw": 3,
        "geometry3k": 2,
        "geometry3k_raw": 3,
        "leaky": 1,
        "scienceqa": 2,
        "scienceqa_raw": 2,
        "synthetic_visual": 12,
    }
    assert meta["splits"]["eval"]["sources"] == {
        "aime": 2,
        "aime25": 3,
        "amc": 3,
        "dynamath": 3,
        "gsm8k": 2,
        "logicvista": 2,
        "math500": 2,
        "mathverse": 7,
        "mathverse_text_only": 3,
        "mathvision": 4,
        "mathvista": 2,
        "synthetic_text": 4,
        "synthetic_visual": 4,
        "wemath": 2,
    }
    assert meta["dropped"]["leaky"] == {"eval contamination: same item": 1, "exact duplicate": 1}
    # rejected rows are reported with a reason per row and did not stop the build
    assert meta["dropped"]["scienceqa"] == {"corrupt row: answer index outside the choices": 1}
    assert meta["dropped"]["scienceqa_raw"] == {"corrupt row: image unreadable": 1, "split not in ['test']": 1}
    assert meta["dropped"]["math500"] == {"corrupt row: unreadable": 1}
    assert any(e["source"] == "mathvision" and "not found" in e["detail"] for e in meta["examples"])
    assert meta["splits"]["rl"]["shards"] == [f"rl/rl-0000{i}-of-00004.parquet" for i in range(4)]


def test_manifest_lists_every_dropped_row_with_its_reason(built):
    cfg, store, manifest = built
    meta = manifest["metadata"]
    assert meta["dropped_rows"] == "dropped.jsonl" and "dropped.jsonl" in {f["path"] for f in manifest["files"]}
    rows = [
        json.loads(line)
        for line in store.get_bytes(f"datasets/{cfg.data.dataset_id}/dropped.jsonl").decode().splitlines()
    ]
    assert len(rows) == sum(n for reasons in meta["dropped"].values() for n in reasons.values())
    by_source = {(r["source"], r["row"]): r for r in rows}
    assert by_source[("gsm8k", 2)]["reason"] == "corrupt row: no '#### <number>' final answer"
    assert by_source[("geometry3k_raw", 3)]["detail"] == "'E' (options ['1', '2', '3', '4'])"
    assert by_source[("amc", 3)] == {
        "source": "amc",
        "row": 3,
        "reason": "corrupt row: answer is not a number",
        "detail": "'nan'",
    }
    assert all(r["reason"] != "corrupt row: ValueError" for r in rows)  # every reason says what was wrong
    assert {(e["source"], e["reason"]) for e in meta["examples"]} == {(r["source"], r["reason"]) for r in rows}


def test_reader_streams_every_shard_and_card_is_stored(built):
    cfg, store, manifest = built
    mix = cfg.data.dataset_id
    rl = list(iter_samples(store, mix, "rl"))
    assert len(rl) == manifest["metadata"]["splits"]["rl"]["count"] == 28
    assert len({s.id for s in rl}) == 28
    assert {s.modality for s in rl} == {"image", "text"}
    visual_eval = load_samples(store, mix, "eval", source="synthetic_visual")
    assert len(visual_eval) == 4 and all(s.images[0].data for s in visual_eval)
    assert len(load_samples(store, mix, "sft", limit=5)) == 5
    card = store.get_bytes(f"datasets/{mix}/README.md").decode()
    assert "| rl | chartqa | 3 |" in card and "eval contamination" in card


def test_same_seed_gives_byte_identical_shards(built, source_files, tmp_path):
    cfg, _, first = built
    again = build_dataset(
        make_cfg(source_files, tmp_path / "store2"),
        Store.from_config(cfg.store.model_copy(update={"uri": str(tmp_path / "store2")})),
        progress=False,
    )
    digest = lambda m: {f["path"]: f["sha256"] for f in m["files"]}  # noqa: E731
    assert digest(again) == digest(first)
    other = build_dataset(
        make_cfg(source_files, tmp_path / "store3", seed=1),
        Store.from_config(cfg.store.model_copy(update={"uri": str(tmp_path / "store3")})),
        progress=False,
    )
    assert digest(other)["rl/rl-00000-of-00004.parquet"] != digest(first)["rl/rl-00000-of-00004.parquet"]


def test_weights_and_pass_rate_band(tmp_path):
    rows = [
        {
            "image": {"bytes": png(i), "path": None},
            "query": f"Value of bar {i}?",
            "label": [str(i)],
            "human_or_machine": 0,
            "pass_rate": p,
        }
        for i, p in enumerate([0.0, 0.25, 0.5, 1.0])
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "charts.parquet")
    cfg = RunConfig.model_validate(
        {
            "store": {"uri": str(tmp_path / "s")},
            "data": {
                "name": "w",
                "pass_rate_band": [0.1, 0.9],
                "sources": [{"adapter": "chartqa", "path": str(tmp_path / "charts.parquet"), "weight": 3.0}],
            },
        }
    )
    meta = build_dataset(cfg, Store.from_config(cfg.store), progress=False)["metadata"]
    assert meta["splits"]["rl"]["count"] == 6  # 2 kept by the band, x3
    assert sum(meta["dropped"]["chartqa"].values()) == 2


def test_missing_dataset_and_bad_source_are_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="dataset 'nope' not found"):
        list(iter_samples(Store.from_config(RunConfig().store.model_copy(update={"uri": str(tmp_path)})), "nope", "rl"))
    cfg = RunConfig.model_validate(
        {"store": {"uri": str(tmp_path)}, "data": {"sources": [{"adapter": "chartqa", "path": str(tmp_path / "none")}]}}
    )
    with pytest.raises(FileNotFoundError, match="source not found"):
        build_dataset(cfg, Store.from_config(cfg.store), progress=False)


def test_cli_builds_the_tiny_recipe(repo_root, tmp_path):
    store = tmp_path / "store"
    args = [
        "--set",
        f"store.uri={store}",
        "--set",
        "data.synthetic.text_samples=60",
        "--set",
        "data.synthetic.visual_samples=40",
        "--set",
        "data.synthetic.eval_samples=8",
    ]
    ovr = repo_root / ".venv/bin/ovr"
    out = subprocess.run(
        [str(ovr), "data", "build", "--recipe", str(repo_root / "recipes/tiny-cpu.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "rl          40 samples" in out.stdout and "verify answers" in out.stderr
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", args[1::2])  # the command's own settings
    s, tiny = Store.from_config(cfg.store), cfg.data.dataset_id
    assert {x.modality for x in load_samples(s, tiny, "sft")} == {"text"}
    assert {x.modality for x in load_samples(s, tiny, "rl")} == {"image"}
    assert cfg.eval.benchmarks == ["synthetic_visual", "synthetic_text"]
    assert len(load_samples(s, tiny, "eval", source="synthetic_visual")) == 8
    assert len(load_samples(s, tiny, "eval", source="synthetic_text")) == 8
    rates = s.read_manifest(f"datasets/{tiny}").metadata["splits"]["sft"]["behaviours"]  # the recipe's mix, detected
    sft = len(load_samples(s, tiny, "sft"))  # 60 drawn, a few exact duplicates dropped
    assert rates["responses"] == sft > 50 and rates["reflection"] > 0.1 and rates["verification"] > 0.1
    assert sum(rates["trace_kinds"].values()) == sft and set(rates["trace_kinds"]) == {"reflect", "verify", "direct"}
    assert "## Behaviours in the cold-start traces" in s.get_bytes(f"datasets/{tiny}/README.md").decode()


def test_s3_source_into_s3_store(source_files, s3_cfg, tmp_path):
    """Sources and the store both on an S3 server (moto): the cluster's MinIO path."""
    raw = Store.from_config(s3_cfg.model_copy(update={"uri": "s3://raw-sources"}))
    path, expected = source_files["geometry3k"].path, source_files["geometry3k"].expected
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        raw.put_file(f"geometry3k/{file.relative_to(path)}", file)
    cfg = RunConfig.model_validate(
        {
            "store": s3_cfg.model_dump(),
            "data": {
                "name": "s3mix",
                "cache_dir": str(tmp_path / "cache"),
                "synthetic": {"visual_samples": 4},
                "sources": [{"adapter": "geometry3k", "path": "s3://raw-sources/geometry3k/"}],
            },
        }
    )
    store = Store.from_config(cfg.store)
    meta = build_dataset(cfg, store, progress=False)["metadata"]
    assert meta["splits"]["rl"]["sources"] == {"geometry3k": expected, "synthetic_visual": 4}
    assert sorted(s.source for s in iter_samples(store, cfg.data.dataset_id, "rl")).count("geometry3k") == expected
