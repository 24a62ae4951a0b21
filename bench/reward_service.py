"""Reward service throughput and latency vs. the same reward functions called in-process.

Starts the service (uvicorn, ``--workers`` verifier processes) on 127.0.0.1 and, at 1, 16 and 64
concurrent clients each sending batches of ``--batch`` items, measures items/s and p50/p99 request
latency. The baseline, measured in the same run on the same cores, calls ``ovr.rewards.score_items``
in a ``ProcessPoolExecutor`` with as many processes as the service has workers, with the same
number of concurrent callers and the same batches (plus a single-process serial figure).

    .venv/bin/python bench/reward_service.py --items 1200 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import httpx
from tqdm import tqdm

from ovr.rewards import score_items
from ovr.schema import ScoreItem, ScoreRequest
from services.reward.server import local_server

FILLER = "Let me think step by step. Wait, let me recheck the computation. " * 30  # ~2 KB of reasoning


def workload(n: int, seed: int = 0) -> list[ScoreItem]:
    """A reproducible mix of math/number/choice/string items, about 2/3 correct."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind, right = i % 4, rng.random() < 0.66
        a, b = rng.randint(1, 50), rng.randint(2, 60)
        if kind == 0:
            ref, ans = rf"\frac{{{a}}}{{{b}}}", f"{a / b:.6f}" if right else f"{(a + 1) / b:.6f}"
            items.append(ScoreItem(response=FILLER + rf"\boxed{{{ans}}}", reference=ref))
        elif kind == 1:
            ref, ans = f"x={a}", (str(a) if right else str(a + 1))
            items.append(ScoreItem(response=FILLER + rf"\boxed{{x = {ans}}}", reference=ref))
        elif kind == 2:
            letter = "ABCD"[a % 4] if right else "ABCD"[(a + 1) % 4]
            items.append(
                ScoreItem(
                    response=FILLER + rf"\boxed{{({letter})}}",
                    reference="ABCD"[a % 4],
                    answer_type="choice",
                    choices=["1", "2", "3", "4"],
                )
            )
        else:
            ans = f"{a * 1000 + b:,}" if right else str(a)
            items.append(
                ScoreItem(response=FILLER + rf"\boxed{{{ans}}}", reference=str(a * 1000 + b), answer_type="number")
            )
    return items


def batches(items: list[ScoreItem], size: int) -> list[list[ScoreItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def drive(call, work: list[list[ScoreItem]], concurrency: int) -> tuple[float, list[float]]:
    """Run ``call(batch)`` over ``work`` with ``concurrency`` callers; (wall seconds, latencies)."""
    todo, latencies = list(work), []

    async def caller():
        while todo:
            batch = todo.pop()
            t0 = time.perf_counter()
            await call(batch)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


def summarize(n_items: int, wall: float, lat: list[float]) -> dict:
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {"items_s": n_items / wall, "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98]}


async def bench_service(url: str, work, concurrency: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def call(batch):
            r = await client.post(
                "/v1/score",
                content=ScoreRequest(items=batch).model_dump_json(),
                headers={"content-type": "application/json"},
            )
            r.raise_for_status()

        wall, lat = await drive(call, work, concurrency)
    return summarize(sum(map(len, work)), wall, lat)


async def bench_in_process(pool: ProcessPoolExecutor, work, concurrency: int) -> dict:
    loop = asyncio.get_running_loop()

    async def call(batch):
        await loop.run_in_executor(pool, score_items, batch)

    wall, lat = await drive(call, work, concurrency)
    return summarize(sum(map(len, work)), wall, lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1200, help="Items per measurement.")
    ap.add_argument("--batch", type=int, default=16, help="Items per request.")
    ap.add_argument("--workers", type=int, default=2, help="Service workers = baseline processes.")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = ap.parse_args()

    items = workload(args.items)
    work = batches(items, args.batch)
    t0 = time.perf_counter()
    score_items(items[:200])  # warm this process's caches
    t0 = time.perf_counter()
    score_items(items)
    serial = len(items) / (time.perf_counter() - t0)
    print(f"in-process, 1 process, serial: {serial:.0f} items/s")

    rows = []
    with ProcessPoolExecutor(args.workers) as pool, local_server(workers=args.workers) as srv:
        asyncio.run(bench_in_process(pool, work, args.workers))  # warm both sides
        asyncio.run(bench_service(srv.url, work, args.workers))
        for c in tqdm(args.concurrency, desc="concurrency levels"):
            base = asyncio.run(bench_in_process(pool, work, c))
            svc = asyncio.run(bench_service(srv.url, work, c))
            rows.append((c, svc, base))

    print(f"\n{len(items)} items, batches of {args.batch}, {args.workers} workers/processes each side")
    print("| clients | service items/s | p50 ms | p99 ms | in-process items/s | p50 ms | p99 ms | ratio |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for c, svc, base in rows:
        print(
            f"| {c} | {svc['items_s']:.0f} | {svc['p50_ms']:.0f} | {svc['p99_ms']:.0f} | "
            f"{base['items_s']:.0f} | {base['p50_ms']:.0f} | {base['p99_ms']:.0f} | "
            f"{svc['items_s'] / base['items_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
