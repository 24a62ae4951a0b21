"""The streaming build keeps, drops, mixes and shuffles exactly what the in-memory build did.

The reference below is the build as it was before it streamed (every split a list of Samples, the
list filters of :mod:`ovr.data.filters`, :mod:`ovr.data.mix`), run on small sources with planted
exact and near duplicates (within and across sources), eval leaks (shared n-gram, same item, shared
image), unverifiable answers, pass rates outside the band, weights below and above 1.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_layouts import png

from ovr.config import RunConfig
from ovr.data import filters, mix, synthetic
from ovr.data.build import Report, build_dataset, load_source
from ovr.data.reader import iter_samples
from ovr.data.shards import to_row
from ovr.store import Store

WORDS = "a rectangular garden is twice as long as it is wide and its perimeter is sixty metres while a path".split()
LEAK = "one metre wide runs all around the outside of the garden and the gardener wants to know its area today"


def question(i: int, tail: str = "today") -> str:
    """A distinct 41-word question (no shingle or 13-gram in common with another ``i``)."""
    return " ".join(f"{w}{i}" if k % 3 == 0 else w for k, w in enumerate(WORDS * 2)) + f" {tail}?"


def cot(i: int, boxed: str = "12", **row) -> dict:
    """A MATH-layout row whose solution ends in ``\\boxed{boxed}``."""
    return {"problem": question(i), "solution": f"Step one. Step two gives $\\boxed{{{boxed}}}$.", **row}


def write_sources(tmp):
    """JSONL / parquet sources with planted items; returns the data config's sources."""
    a = [cot(i) for i in range(10)]
    a.append({"problem": "  " + question(1).upper(), "solution": "So $\\boxed{12}$."})  # exact dup of a[1]
    a.append(cot(2, problem=question(2, "tomorrow")))  # near dup of a[2]
    a.append(cot(90, problem=f"Warm-up first. {LEAK} in square metres?"))  # shares a 13-gram with the eval set
    a.append(cot(91, "8", answer="7"))  # the trace's answer is not the reference
    a.append(cot(92, "See the proof above"))  # prose reference
    a.append({"problem": question(93), "solution": "No final answer here."})  # dropped by the adapter
    b = [cot(3), cot(94, "42", problem="What is the value of $6 \\cdot 7$ exactly?")]  # a[3] again; an eval item
    b += [cot(i) for i in range(20, 24)]
    charts = [
        {"image": {"bytes": png(i), "path": None}, "query": f"Value of bar {i}?", "label": [str(i)], "pass_rate": p}
        for i, p in enumerate([0.5, 0.0, None, 0.95, 0.4, 0.6, 0.3, 0.2])
    ]
    charts[5]["image"] = {"bytes": png(77), "path": None}  # the eval chart's image
    evals = [{"problem": f"Before. {LEAK}?", "answer": "3"}, {"problem": b[1]["problem"], "answer": "42"}]
    for name, rows in (("a", a), ("b", b), ("evals", evals)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(charts), tmp / "charts.parquet")
    eval_chart = [{"image": {"bytes": png(77), "path": None}, "query": "Value of the bar?", "label": ["5"]}]
    pq.write_table(pa.Table.from_pylist(eval_chart), tmp / "eval_charts.parquet")
    return [
        {"adapter": "math", "name": "cot_a", "path": str(tmp / "a.jsonl"), "split": "sft", "weight": 0.5},
        {"adapter": "math500", "name": "bench", "path": str(tmp / "evals.jsonl"), "split": "eval"},
        {"adapter": "math", "name": "cot_b", "path": str(tmp / "b.jsonl"), "split": "sft"},
        {"adapter": "chartqa", "name": "charts", "path": str(tmp / "charts.parquet"), "weight": 2.5},
        {"adapter": "chartqa", "name": "chart_bench", "path": str(tmp / "eval_charts.parquet"), "split": "eval"},
    ]


def config(tmp, store: str, **data) -> RunConfig:
    data = {
        "name": "planted",
        "seed": 5,
        "shard_size": 4,
        "pass_rate_band": [0.1, 0.9],
        "sources": write_sources(tmp),
        "synthetic": {"text_samples": 6, "visual_samples": 4, "eval_samples": 2},
        **data,
    }
    return RunConfig.model_validate({"store": {"uri": str(tmp / store)}, "data": data})


def in_memory_build(cfg: RunConfig):
    """The pre-streaming build on lists: splits in stored order and every dropped row, in its order."""
    dc, report = cfg.data, Report()
    groups, weights = {}, {}
    for src in dc.sources:
        groups[(src.split, src.name)] = load_source(src, dc, cfg.store, report, progress=False)
        weights[src.name] = src.weight
    sc, seed, eval_seed = dc.synthetic, dc.seed, dc.seed + 1_000_003
    generated = {
        "sft": synthetic.text_samples(sc.text_samples, seed, sc.difficulty, behaviours=sc.behaviours),
        "rl": synthetic.visual_samples(sc.visual_samples, seed, sc.tasks, sc.difficulty, sc.image_size),
        "eval": synthetic.visual_samples(sc.eval_samples, eval_seed, sc.tasks, sc.difficulty, sc.image_size, "eval")
        + synthetic.text_samples(sc.eval_samples, eval_seed, sc.difficulty, split="eval"),
    }
    for split, samples in generated.items():
        for s in samples:
            groups.setdefault((split, s.source), []).append(s)
            report.read[s.source] += 1
    for key in groups:
        groups[key], dropped = filters.drop_unverifiable(groups[key], cfg.reward.name)
        report.drop_all(dropped)
    evals = [s for (split, _), items in groups.items() if split == "eval" for s in items]
    for split in ("sft", "rl"):
        keys = [k for k in groups if k[0] == split]
        pool = [s for k in keys for s in groups[k]]
        band = dc.pass_rate_band if split == "rl" else None
        for dropped_now in (
            filters.drop_exact_duplicates,
            lambda p: filters.drop_near_duplicates(p, dc.near_dup_threshold),
            lambda p: filters.decontaminate(p, evals, dc.decontaminate_ngram),
            lambda p, band=band: filters.pass_rate_band(p, band),
        ):
            pool, dropped = dropped_now(pool)
            report.drop_all(dropped)
        for k in keys:
            groups[k] = [s for s in pool if s.source == k[1]]
    splits = {"sft": [], "rl": [], "eval": []}
    for (split, name), items in groups.items():
        splits[split] += mix.apply_weight(items, weights.get(name, 1.0), seed=f"{dc.seed}:{split}:{name}")
    return {s: mix.shuffled(items, seed=f"{dc.seed}:{s}") for s, items in splits.items()}, report


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    cfg = config(tmp, "unused", workers=1)
    return tmp, in_memory_build(cfg)


def test_reference_drops_what_was_planted(reference):
    _, (splits, report) = reference
    assert report.dropped["cot_a"] == {
        "exact duplicate": 1,
        "near duplicate": 1,
        "eval contamination: shared 13-gram": 1,
        "trace's final answer does not match the reference": 1,
        "prose reference (no closed-form answer)": 1,
        "no \\boxed{} answer in the solution": 1,
    }
    assert report.dropped["cot_b"] == {"exact duplicate": 1, "eval contamination: same item": 1}
    assert report.dropped["charts"] == {
        "eval contamination: shared image": 1,
        "pass rate 0.000 outside [0.1, 0.9]": 1,
        "pass rate 0.950 outside [0.1, 0.9]": 1,
    }
    assert len(splits["rl"]) == round(2.5 * 5) + 4  # 5 charts kept, weighted; the procedural ones
    assert len(splits["sft"]) == round(0.5 * 10) + 4 + 6 and len(splits["eval"]) == 2 + 1 + 4


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "worker-processes"])
def test_streaming_build_equals_in_memory_build(reference, workers, monkeypatch):
    tmp, (splits, report) = reference
    monkeypatch.setattr("ovr.data.workers.START_AFTER", 0)  # workers from the first item on
    cfg = config(tmp, f"store-{workers}", workers=workers)
    store = Store.from_config(cfg.store)
    meta = build_dataset(cfg, store, progress=False)["metadata"]
    assert meta["workers"] == workers
    for split, expected in splits.items():
        got = [to_row(s) for s in iter_samples(store, cfg.data.dataset_id, split)]
        assert got == [to_row(s) for s in expected], split
        assert meta["splits"][split]["count"] == len(expected)
    assert meta["dropped"] == report.as_dict()["dropped"] and meta["read"] == report.as_dict()["read"]
    dropped = store.get_bytes(f"datasets/{cfg.data.dataset_id}/dropped.jsonl").decode()
    assert dropped == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.rows)
    assert meta["examples"] == report.examples
