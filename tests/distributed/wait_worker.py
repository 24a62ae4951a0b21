"""Polled waits at 2 ranks under ``torchrun`` (gloo, no model): a scatter, a gather, a barrier, then
rank 0 announces a phase and never posts rank 1's share, so rank 1's wait must give up in time.

Writes ``<out>/rank<r>.json``: what each rank received, and for rank 1 the error and how long it took.

    torchrun --nproc-per-node 2 tests/distributed/wait_worker.py --out DIR --timeout 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()

    from ovr.distributed import Dist, RankTimeout

    dist = Dist.from_env(timeout_s=60, wait_timeout_s=args.timeout, poll_s=0.1)
    report: dict = {"rank": dist.rank}
    shares = [{"rows": list(range(r * 3, r * 3 + 3))} for r in range(dist.world)] if dist.is_main else None
    report["share"] = dist.scatter(shares, "share")
    report["gathered"] = dist.all_gather(dist.rank * 10, "gather")
    dist.barrier("first barrier")
    if dist.is_main:
        dist.announce("step 7: rollout")
        time.sleep(args.timeout + 2)  # "sampling": never posts rank 1's share of step 7
    else:
        start = time.monotonic()
        try:
            dist.scatter(None, "step 7: share")
            report["error"] = None
        except RankTimeout as e:
            report["error"] = str(e)
        report["waited_s"] = time.monotonic() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{dist.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
