"""Eval throughput (questions/s) of `ovr.eval.runner.evaluate` on the tiny model served by vLLM.

Measures, in one run against one vLLM server: the baseline (the rollout client sending one request
at a time, ``rollout.max_concurrency=1``) and eval as configured (concurrent requests), on the same
procedural image + text questions, and prints the ratio. Both include scoring and keyword analysis.

    .venv/bin/python bench/eval_throughput.py --questions 32 --k 4 --max-tokens 64
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32, help="Questions (half image, half text).")
    parser.add_argument("--k", type=int, default=4, help="Samples per question.")
    parser.add_argument("--max-tokens", type=int, default=64, help="Max response tokens.")
    parser.add_argument("--concurrency", type=int, default=64, help="In-flight requests of the measured run.")
    parser.add_argument("--model", type=Path, default=None, help="Model folder (default: build the tiny model).")
    parser.add_argument("--endpoint", default=None, help="Use this running server instead of starting vLLM.")
    args = parser.parse_args()

    import contextlib

    from ovr.config import load_config
    from ovr.data.synthetic import text_samples, visual_samples
    from ovr.eval.runner import evaluate

    half = args.questions // 2
    samples = visual_samples(half, seed=7, split="eval") + text_samples(args.questions - half, seed=7, split="eval")
    benches = sorted({s.source for s in samples})

    def cfg(concurrency: int):
        return load_config(
            REPO / "recipes/tiny-cpu.yaml",
            [
                "tracking.enabled=false",
                f"eval.k={args.k}",
                f"eval.max_tokens={args.max_tokens}",
                f"eval.benchmarks={benches}",
                f"rollout.max_concurrency={concurrency}",
                *([f"rollout.endpoints=[{endpoint}]"] if endpoint else []),
            ],
            use_env=False,
        )

    with tempfile.TemporaryDirectory(prefix="ovr-bench-eval-") as tmp, contextlib.ExitStack() as stack:
        endpoint = args.endpoint
        if endpoint is None:
            from ovr.models.tiny import make_tiny
            from services.rollout.launch import local_server

            model = args.model or make_tiny(Path(tmp) / "tiny", seed=0)
            endpoint = stack.enter_context(local_server(model, cfg(1).rollout)).url
        # warm-up (first requests compile/allocate)
        evaluate(cfg(4), samples[:2] + samples[-2:], out_dir=Path(tmp) / "warm", progress=False)
        runs = {}
        for name, conc in (
            ("baseline: 1 request at a time", 1),
            (f"eval: {args.concurrency} in flight", args.concurrency),
        ):
            r = evaluate(cfg(conc), samples, out_dir=Path(tmp) / f"c{conc}", progress=False)
            runs[name] = r
            tokens = sum(s.mean_length * s.responses for s in r.benchmarks)
            truncated = sum(s.truncation_rate * s.responses for s in r.benchmarks)
            print(
                f"{name:32s} {r.questions} questions x k={r.k} in {r.wall_s:6.2f} s: "
                f"{r.questions_per_s:6.2f} questions/s, {r.responses / r.wall_s:7.1f} responses/s, "
                f"{tokens / r.wall_s:8.1f} tokens/s, truncated {100 * truncated / r.responses:.0f}% "
                f"({', '.join(f'{k} {v:.2f}' for k, v in r.timings.items())})"
            )
    base, best = runs.values()
    print(f"ratio (eval / baseline): {best.questions_per_s / base.questions_per_s:.2f}x")


if __name__ == "__main__":
    main()
