"""Build throughput (samples/s) for text and image items, end to end (read -> adapt -> verify -> filter
-> shards -> commit to a local store), against a baseline measured in the same run: reading the same
source file with pyarrow alone (the I/O floor every build pays).

    .venv/bin/python bench/data_build.py [--text 4000] [--images 1500] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ovr.config import RunConfig
from ovr.data.build import build_dataset
from ovr.data.synthetic import png_bytes
from ovr.data.visual_tasks import VISUAL_TASKS
from ovr.store import Store


def write_math_source(path: Path, n: int) -> None:
    """MATH layout (problem, level, type, solution with \\boxed{})."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b, c = rng.randint(2, 999), rng.randint(2, 999), rng.randint(2, 99)
        rows.append(
            {
                "problem": f"Problem {i}: compute ${a} \\cdot {b} + \\frac{{{c}}}{{{c + 1}}}$ and simplify.",
                "level": f"Level {1 + i % 5}",
                "type": "Algebra",
                "solution": f"We have ${a} \\cdot {b} = {a * b}$, so the value is "
                f"$\\boxed{{{a * b} + \\frac{{{c}}}{{{c + 1}}}}}$.",
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_chart_source(path: Path, n: int, size: int = 224) -> None:
    """ChartQA layout (image {bytes, path}, query, label) with real drawn charts."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        task = VISUAL_TASKS["bar_chart"](rng, 4, size)
        rows.append(
            {
                "image": {"bytes": png_bytes(task.image), "path": f"{i}.png"},
                "query": f"Chart {i}: {task.question}",
                "label": [task.answer],
                "human_or_machine": 0,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)


def baseline_read(path: Path, repeats: int = 3) -> float:
    """Rows/s of ``pyarrow`` reading the file into Python dicts (best of ``repeats``, warm cache)."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        rows = pq.read_table(path).to_pylist()
        best = max(best, len(rows) / (time.perf_counter() - t))
    return best


def timed_build(root: Path, name: str, data: dict) -> tuple[float, dict]:
    cfg = RunConfig.model_validate({"store": {"uri": str(root / "store")}, "data": {"name": name, **data}})
    t = time.perf_counter()
    manifest = build_dataset(cfg, Store.from_config(cfg.store), progress=False)
    dt = time.perf_counter() - t
    meta = manifest["metadata"]
    return sum(s["count"] for s in meta["splits"].values()) / dt, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", type=int, default=4000, help="Rows of the text source / procedural text items.")
    ap.add_argument("--images", type=int, default=1500, help="Rows of the image source / procedural image items.")
    ap.add_argument("--workers", type=int, default=2, help="Verification processes of the second text build.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_math_source(root / "math.parquet", args.text)
        write_chart_source(root / "charts.parquet", args.images)
        none = {"text_samples": 0, "visual_samples": 0, "eval_samples": 0}
        rows = []
        for label, src, data in [
            (
                "text  (MATH layout)",
                root / "math.parquet",
                {
                    "sources": [{"adapter": "math", "path": str(root / "math.parquet"), "split": "sft"}],
                    "synthetic": none,
                },
            ),
            (
                f"text  (MATH, {args.workers} workers)",
                root / "math.parquet",
                {
                    "sources": [{"adapter": "math", "path": str(root / "math.parquet"), "split": "sft"}],
                    "synthetic": none,
                    "workers": args.workers,
                },
            ),
            (
                "image (ChartQA layout)",
                root / "charts.parquet",
                {"sources": [{"adapter": "chartqa", "path": str(root / "charts.parquet")}], "synthetic": none},
            ),
        ]:
            base = baseline_read(src)
            rate, meta = timed_build(root, "b" + str(len(rows)), data)
            rows.append((label, rate, base, meta["seconds"]))
        for label, data in [
            ("text  (procedural)", {"synthetic": {**none, "text_samples": args.text}}),
            ("image (procedural)", {"synthetic": {**none, "visual_samples": args.images}}),
        ]:
            rate, meta = timed_build(root, "p" + label.split()[0], data)
            rows.append((label, rate, None, meta["seconds"]))
    print(f"{'items':24s} {'build/s':>9s} {'pyarrow read/s':>15s} {'ratio':>7s}  phases (s)")
    for label, rate, base, phases in rows:
        ratio = f"{rate / base:7.4f}" if base else "      -"
        base_s = f"{base:15.0f}" if base else f"{'-':>15s}"
        print(f"{label:24s} {rate:9.0f} {base_s} {ratio}  {phases}")


if __name__ == "__main__":
    main()
