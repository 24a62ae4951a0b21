"""Memory and throughput of the data build on long rows: does resident memory stay flat as rows grow?

Writes synthetic cold-start sources in the MATH layout (a unique problem, a ~20 KB chain-of-thought
solution ending in ``\\boxed{}``; ~1 % exact and ~1 % near duplicates planted) plus a 500-item
MATH500-layout eval set into a temp folder, then builds each size in a fresh subprocess and prints
the RSS growth during the build (peak minus the process's RSS before reading), for the build process
alone and for its whole process tree (the verification workers included), the ratio
growth(largest)/growth(smallest) (goal <= 1.5) and rows/s per worker. The baseline, in the same run:
the in-memory build the data stage used before it streamed (every row of a split held as a Sample;
the same filters, mixing and shards), at the sizes ``--old-sizes`` names.

    .venv/bin/python bench/data_build.py [--sizes 10000 100000] [--old-sizes 10000] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

WORDS = (
    "we note that the sum of both sides gives a term which we can simplify further since each factor divides "
    "the product so the claim follows by induction on n hence consider the case where the remainder is zero"
).split()


def problem(rng: random.Random, i: int) -> str:
    return f"Problem {i}: let $a = {rng.randint(2, 999)}$. " + " ".join(rng.choices(WORDS, k=24)) + f". Find {i}."


def sentences(rng: random.Random, count: int = 4000) -> list[str]:
    """A pool of reasoning sentences (words and inline maths; one in ten a reflection)."""
    out = []
    for _ in range(count):
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        s = " ".join(rng.choices(WORDS, k=14)) + f", so $x = {a} \\cdot {b} = {a * b}$"
        out.append(s + (". Wait, let me recheck that.\n" if rng.random() < 0.1 else ".\n"))
    return out


def solution(rng: random.Random, pool: list[str], i: int, count: int) -> str:
    """A long trace of ``count`` sentences drawn from ``pool``, ending in a boxed answer."""
    body = "".join(rng.choices(pool, k=count))
    return f"Let $n = {i}$.\n{body}Therefore the answer is $\\boxed{{{i % 997 + 3}}}$."


def write_source(path: Path, rows: int, size: int, batch: int = 500) -> None:
    """``rows`` MATH-layout rows, written a batch at a time (the generator holds one batch)."""
    rng = random.Random(rows)
    pool = sentences(rng)
    count = max(1, round(size * len(pool) / sum(map(len, pool))))  # sentences per solution
    with pq.ParquetWriter(path, pa.schema([(c, pa.string()) for c in ("problem", "level", "type", "solution")])) as w:
        texts: dict[int, str] = {}
        for start in range(0, rows, batch):
            out = []
            for i in range(start, min(rows, start + batch)):
                text = texts[i] = problem(rng, i)
                if i % 100 == 50:  # an exact duplicate of row i - 50 (case and spacing changed)
                    text = texts[i - 50].upper().replace(" ", "  ")
                elif i % 100 == 70:  # a near duplicate of row i - 30: a word added
                    text = texts[i - 30] + " Explain."
                texts.pop(i - 60, None)
                out.append({"problem": text, "level": f"Level {1 + i % 5}", "type": "Algebra"})
                out[-1]["solution"] = solution(rng, pool, i, count)
            w.write_table(pa.Table.from_pylist(out, schema=w.schema))


def write_eval(path: Path, rows: int = 500) -> None:
    rng = random.Random(7)
    items = [{"problem": f"Eval {i}: " + " ".join(rng.choices(WORDS, k=30)), "answer": str(i)} for i in range(rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in items))


# --------------------------------------------------------------------------- the child: one build, measured
class TreeRss:
    """Peak resident memory of this process and of it plus its children, sampled every ``every_s``."""

    def __init__(self, every_s: float = 0.05):
        self.me, self.every_s = psutil.Process(), every_s
        self.peak_self = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            own = self.me.memory_info().rss
            tree = own
            for child in self.me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    tree += child.memory_info().rss
            self.peak_self, self.peak_tree = max(self.peak_self, own), max(self.peak_tree, tree)
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def old_style_build(cfg, store) -> dict:
    """The build as it was before it streamed: every split a list of Samples in memory."""
    from ovr.data import filters, mix
    from ovr.data.build import Report, load_source
    from ovr.data.shards import write_split
    from ovr.data.workers import resolve_workers
    from ovr.rewards.detectors import text_rates

    dc, report = cfg.data, Report()
    workers = resolve_workers(dc.workers)
    groups = {(s.split, s.name or s.adapter): load_source(s, dc, cfg.store, report, False) for s in dc.sources}
    for key in groups:
        groups[key], _ = filters.drop_unverifiable(groups[key], cfg.reward.name, workers)
    evals = [s for (split, _), items in groups.items() if split == "eval" for s in items]
    pool = [s for (split, _), items in groups.items() if split == "sft" for s in items]
    pool, _ = filters.drop_exact_duplicates(pool, dc.prompt_template)
    pool, _ = filters.drop_near_duplicates(pool, dc.near_dup_threshold, dc.prompt_template)
    pool, _ = filters.decontaminate(pool, evals, dc.decontaminate_ngram, dc.prompt_template)
    splits = {"sft": mix.shuffled(pool, f"{dc.seed}:sft"), "eval": mix.shuffled(evals, f"{dc.seed}:eval")}
    with tempfile.TemporaryDirectory() as tmp:
        for split, items in splits.items():
            write_split(items, split, Path(tmp), dc.shard_size)
        text_rates(m.content for s in splits["sft"][:20_000] for m in s.messages if m.role == "assistant")
    return {"splits": {k: {"count": len(v)} for k, v in splits.items()}, "workers": workers}


def child(args: argparse.Namespace) -> None:
    """One build of ``args.source`` (+ the eval set) into a fresh store; prints a JSON line."""
    from ovr.config import RunConfig
    from ovr.data.build import build_dataset
    from ovr.store import Store

    data = {
        "name": "bench",
        "workers": args.workers,
        "synthetic": {"text_samples": 0, "visual_samples": 0, "eval_samples": 0},
        "sources": [
            {"adapter": "math", "path": args.source, "split": "sft"},
            {"adapter": "math500", "path": args.eval, "split": "eval"},
        ],
    }
    cfg = RunConfig.model_validate({"store": {"uri": args.store}, "data": data})
    store = Store.from_config(cfg.store)
    before = psutil.Process().memory_info().rss
    cpu0 = sum(t for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for t in resource.getrusage(who)[:2])
    t0 = time.perf_counter()
    with TreeRss() as rss:
        meta = old_style_build(cfg, store) if args.old else build_dataset(cfg, store, progress=False)["metadata"]
    seconds = time.perf_counter() - t0
    cpu = sum(t for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for t in resource.getrusage(who)[:2])
    out = {"rows": args.rows, "seconds": seconds, "cpu": cpu - cpu0, "before": before}
    out |= {"self": rss.peak_self, "tree": rss.peak_tree}
    workers = meta.get("workers", args.workers or 1)  # a build before streaming names none
    print(json.dumps(out | {"sft": meta["splits"]["sft"]["count"], "workers": workers}))


# --------------------------------------------------------------------------- the parent
def run_child(script: Path, source: Path, evals: Path, rows: int, workers: int | None, old: bool, root: Path) -> dict:
    cmd = [sys.executable, str(script), "--child", "--source", str(source), "--eval", str(evals)]
    cmd += ["--rows", str(rows), "--store", str(root / f"store-{rows}-{int(old)}")]
    cmd += (["--workers", str(workers)] if workers else []) + (["--old"] if old else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"build of {rows} rows failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="Rows of each streaming build.")
    ap.add_argument("--old-sizes", type=int, nargs="*", default=[10_000], help="Rows of each in-memory baseline.")
    ap.add_argument("--row-kb", type=int, default=20, help="Length of each solution in KB.")
    ap.add_argument("--workers", type=int, default=None, help="data.workers (default: the CPUs this process may use).")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    for name in ("--source", "--eval", "--store"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    results = []
    with tempfile.TemporaryDirectory(prefix="ovr-bench-data-") as tmp:
        root = Path(tmp)
        write_eval(root / "eval.jsonl")
        for rows in sorted(set(args.sizes) | set(args.old_sizes)):
            t = time.perf_counter()
            write_source(root / f"math-{rows}.parquet", rows, args.row_kb * 1024)
            print(f"wrote {rows} rows ({args.row_kb} KB solutions) in {time.perf_counter() - t:.0f}s", flush=True)
            for old in (False, True):
                if rows in (args.old_sizes if old else args.sizes):
                    r = run_child(Path(__file__), root / f"math-{rows}.parquet", root / "eval.jsonl", rows,
                                  args.workers, old, root)  # fmt: skip
                    results.append(r | {"mode": "in-memory (before)" if old else "streaming"})
                    print(json.dumps(results[-1]), flush=True)
            (root / f"math-{rows}.parquet").unlink()
    report(results)


def report(results: list[dict]) -> None:
    mb = 1e6
    print(f"\n{'build':20s} {'rows':>7s} {'kept':>7s} {'s':>7s} {'rows/s':>7s} {'wkrs':>4s} {'rows/s/wkr':>10s} "
          f"{'rows/cpu-s':>10s} {'growth MB':>9s} {'tree MB':>8s}")  # fmt: skip
    for r in results:
        rate = r["rows"] / r["seconds"]
        r["growth"], r["growth_tree"] = (r["self"] - r["before"]) / mb, (r["tree"] - r["before"]) / mb
        per_cpu = r["rows"] / r["cpu"]
        print(f"{r['mode']:20s} {r['rows']:7d} {r['sft']:7d} {r['seconds']:7.1f} {rate:7.1f} {r['workers']:4d} "
              f"{rate / r['workers']:10.1f} {per_cpu:10.1f} {r['growth']:9.0f} {r['growth_tree']:8.0f}")  # fmt: skip
    for mode in ("streaming", "in-memory (before)"):
        runs = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["rows"])
        if len(runs) >= 2:
            lo, hi = runs[0], runs[-1]
            print(f"{mode}: growth({hi['rows']})/growth({lo['rows']}) = {hi['growth'] / lo['growth']:.2f} "
                  f"(process), {hi['growth_tree'] / lo['growth_tree']:.2f} (process tree); goal <= 1.5")  # fmt: skip
    new = {r["rows"]: r for r in results if r["mode"] == "streaming"}
    for r in (r for r in results if r["mode"] != "streaming" and r["rows"] in new):
        s = new[r["rows"]]
        growth, tree = s["growth"] / r["growth"], s["growth_tree"] / r["growth_tree"]
        print(f"at {r['rows']} rows, streaming / in-memory: growth {growth:.2f}x, tree {tree:.2f}x, "
              f"rows/s {r['seconds'] / s['seconds']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
