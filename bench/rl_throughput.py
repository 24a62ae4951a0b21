"""RL throughput, synchronous vs async (``rl.max_staleness``), in one invocation on the same prompts.

The tiny recipe's RL stage (recipes/tiny-cpu.yaml, with the workload below) runs twice against the
same vLLM replica and reward service: ``max_staleness: 0`` (sample, score, train, push in turn) and
``max_staleness: 1`` (one-step-off: the producer generates step t+1 while the trainer trains step t).
The rollout server and the reward service are pinned to one core (``taskset``) and the trainer to the
other (``os.sched_setaffinity``), in both modes, as on a cluster where the replicas and the trainers
are separate hardware. The workload is fixed so that generation and training take comparable time
(as at the recipe's 24k+ responses): GRPO, 8 prompts x 8 responses, every response forced to
``--tokens`` tokens (``rollout.min_tokens``). The shape is chosen for that balance: the CPU engine
decodes a batch of 64 for little more than a batch of 16, the trainer pays per token, so more
sequences per step move work to the trainer (4 x 4 x 160: rollout 59 %, ideal 1.65; 8 x 8 x 112:
rollout 49 %, train 41 %, ideal ~1.98). Printed: the settings, steps/s and generated tokens/s of each mode, the
synchronous phase shares and their ideal overlap ``(P + C) / max(P, C)`` (P = rollout + reward on the
server core, C = train + push + the rest on the trainer core), the ratio async/sync and its share of
the ideal, and the idle fractions of the server (no request in flight) and of the trainer (waiting
for rollouts). Step 0 (warm-up; async fills its pipeline) is left out of every figure.

    .venv/bin/python bench/rl_throughput.py                      # ~3 min on 2 quiet cores
    .venv/bin/python bench/rl_throughput.py --repeat 3           # the pair three times (~6 min)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class Mode:
    name: str
    steps: int  # measured steps (step 0 excluded)
    wall_s: float
    tokens: float
    rollout_s: float  # per step, means
    reward_s: float
    train_s: float
    sync_s: float
    step_s: float
    wait_s: float  # trainer waiting for the producer (async)
    busy_s: float  # the replica had a request in flight
    pause_s: float  # pushes kept the replica paused (requests frozen in flight)
    staleness: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s

    @property
    def server_idle(self) -> float:
        return max(0.0, 1.0 - (self.busy_s - self.pause_s) / self.wall_s)

    @property
    def trainer_idle(self) -> float:
        if self.name == "sync":  # the trainer waits for the rollout and the scores
            return (self.rollout_s + self.reward_s) / self.step_s
        return self.wait_s / self.step_s


def summarise(name: str, history: list[dict]) -> Mode:
    """Figures of steps 1.. of one run (step 0 warms up, async fills its pipeline there)."""
    hs = history[1:]
    n = len(hs)
    mean = lambda key: sum(h.get(key, 0.0) for h in hs) / n  # noqa: E731
    wall = sum(h["step_seconds"] for h in hs)
    tokens = sum(h["tokens_per_s"] * h["step_seconds"] for h in hs)
    busy = history[-1]["rollout_busy_seconds"] - history[0]["rollout_busy_seconds"]
    return Mode(
        name=name,
        steps=n,
        wall_s=wall,
        tokens=tokens,
        rollout_s=mean("rollout_seconds"),
        reward_s=mean("reward_seconds"),
        train_s=mean("train_seconds"),
        sync_s=mean("sync_seconds"),
        step_s=mean("step_seconds"),
        wait_s=mean("async/wait_seconds"),
        busy_s=busy,
        pause_s=sum(h.get("sync_pause_seconds", 0.0) for h in hs) if name != "sync" else 0.0,
        staleness=mean("staleness_mean"),
    )


def ideal(sync: Mode) -> tuple[float, float, float]:
    """(P, C, ideal): the server core's and the trainer core's seconds per synchronous step."""
    p = sync.rollout_s + sync.reward_s
    c = sync.step_s - p
    return p, c, (p + c) / max(p, c)


def report(sync: Mode, asyn: Mode, settings: str, load: tuple[float, float, float]) -> str:
    p, c, best = ideal(sync)
    ratio = asyn.steps_per_s / sync.steps_per_s
    lines = [
        f"workload: {settings}",
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)",
        "",
        "| mode | steps/s | tokens/s | step (s) | server idle | trainer idle | staleness |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in (sync, asyn):
        lines.append(
            f"| {m.name} | {m.steps_per_s:.4f} | {m.tokens / m.wall_s:.1f} | {m.wall_s / m.steps:.2f} | "
            f"{100 * m.server_idle:.0f} % | {100 * m.trainer_idle:.0f} % | {m.staleness:.2f} |"
        )
    total = sync.step_s
    shares = {
        "rollout": sync.rollout_s,
        "reward": sync.reward_s,
        "train": sync.train_s,
        "weight sync": sync.sync_s,
        "other": total - sync.rollout_s - sync.reward_s - sync.train_s - sync.sync_s,
    }
    lines += [
        "",
        "sync phase shares: " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in shares.items()),
        f"sync ideal (P + C) / max(P, C) = ({p:.2f} + {c:.2f}) / {max(p, c):.2f} = {best:.2f}",
        f"ratio async/sync = {ratio:.2f} (goal >= 1.5), {100 * ratio / best:.0f} % of the ideal (goal >= 85 %)",
    ]
    return "\n".join(lines)


def pin_command(server, core: int) -> None:
    """Run ``server`` (a ManagedServer, not started) on ``core`` only, vLLM's OpenMP threads included."""
    server.cmd = ["taskset", "-c", str(core), *server.cmd]
    server.env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
    server.env["OMP_NUM_THREADS"] = "1"


def overrides(a, endpoint: str, reward_url: str, weights: Path, store: Path, staleness: int) -> list[str]:
    return [
        f"model.path={a.model}",
        f"store.uri={store}",
        "tracking.enabled=false",
        f"rollout.endpoints=[{endpoint}]",
        f"rollout.weights_dir={weights}",
        f"rollout.min_tokens={a.tokens}",
        "rollout.poll_interval_s=1.0",
        f"reward.url={reward_url}",
        f"rl.algorithm={a.algorithm}",
        f"rl.prompts_per_step={a.prompts}",
        f"rl.samples_per_prompt={a.n}",
        f"rl.max_steps={a.steps + 1}",
        f"rl.save_every={a.steps + 1}",
        "rl.average_last=1",
        "rl.warmup_steps=0",
        f"rl.max_response_len_schedule=[{{from_step: 0, max_tokens: {a.tokens}}}]",
        f"rl.max_staleness={staleness}",
    ]


def run_mode(a, name: str, staleness: int, endpoint: str, reward_url: str, samples, work: Path) -> list[dict]:
    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.rl.trainer import run_rl

    sets = overrides(a, endpoint, reward_url, work / "weights", work / f"store-{name}", staleness)
    cfg = load_config(REPO / "recipes" / "tiny-cpu.yaml", sets + list(a.sets), use_env=False)
    print(f"{name}: max_staleness={staleness}, {a.steps + 1} steps ...", flush=True)
    t0 = time.perf_counter()
    res = run_rl(cfg, RunContext.for_config(cfg, f"bench-{name}"), samples=samples, progress=False)
    print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return res.history


def servers(a, work: Path):
    from ovr.config import load_config
    from services.reward.server import local_server as reward_server
    from services.rollout.launch import local_server as rollout_server

    cfg = load_config(REPO / "recipes" / "tiny-cpu.yaml", [f"rollout.local_server.max_model_len={a.max_model_len}"])
    vllm = rollout_server(a.model, cfg.rollout, weights_dir=work / "weights")
    reward = reward_server(workers=1)
    pin_command(vllm, a.server_core)
    pin_command(reward, a.server_core)
    return vllm, reward


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / ".ovr" / "models" / "tiny"), help="Policy (built if missing).")
    p.add_argument("--algorithm", default="grpo")
    p.add_argument("--prompts", type=int, default=8, help="Prompts per step.")
    p.add_argument("--n", type=int, default=8, help="Responses per prompt.")
    p.add_argument("--tokens", type=int, default=112, help="Every response's length (min_tokens = max_tokens).")
    p.add_argument("--steps", type=int, default=6, help="Measured steps per mode (plus one warm-up step).")
    p.add_argument("--repeat", type=int, default=1, help="Run the sync/async pair this many times.")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--trainer-core", type=int, default=1)
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--set", dest="sets", action="append", default=[], help="More recipe overrides.")
    a = p.parse_args()

    os.sched_setaffinity(0, {a.trainer_core})
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from ovr.data.synthetic import visual_samples
    from ovr.models.tiny import make_tiny

    if not (Path(a.model) / "config.json").exists():
        make_tiny(a.model, seed=0)
    work = Path(tempfile.mkdtemp(prefix="ovr-rl-bench-"))
    (work / "weights").mkdir()
    samples = visual_samples(max(64, a.prompts * (a.steps + 3)), seed=0, tasks=["shape_colour", "count_shapes"])
    settings = (
        f"{a.algorithm}, {a.prompts} prompts x {a.n} responses x {a.tokens} tokens per step, {a.steps} measured "
        f"steps (+1 warm-up), server+reward on core {a.server_core}, trainer on core {a.trainer_core}, model {a.model}"
    )
    vllm, reward = servers(a, work)
    started = [threading.Thread(target=s.start) for s in (vllm, reward)]
    [t.start() for t in started]
    [t.join() for t in started]
    ratios = []
    try:
        for r in range(a.repeat):
            sync = summarise("sync", run_mode(a, f"sync{r}", 0, vllm.url, reward.url, samples, work))
            asyn = summarise("async", run_mode(a, f"async{r}", 1, vllm.url, reward.url, samples, work))
            print(report(sync, asyn, settings, os.getloadavg()), flush=True)
            ratios.append(asyn.steps_per_s / sync.steps_per_s)
    finally:
        vllm.stop()
        reward.stop()
    if len(ratios) > 1:
        print(f"\nratio async/sync over {len(ratios)} runs: " + ", ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
