"""One rank of :mod:`bench.resume_memory` (and of tests/distributed/test_resume_memory.py), under
``torchrun``: save an RL checkpoint of a run, or resume it and report this rank's memory.

``--phase resume`` writes ``<root>/start-<rank>`` (its pid) just before ``setup_rl`` and
``<root>/end-<rank>`` right after it, so the launcher samples the node's memory over the resume
alone; ``<root>/rank<r>.json`` holds this rank's RSS before and after the resume, its growth in
each phase (:class:`Phases`), its models' parameter counts and dtypes, and with ``--check`` whether the
resumed weights equal the checkpoint's (gathered over ZeRO-3 on every rank, compared on rank 0).
It uses only what ovr's resume has always offered (``setup_rl``, ``save_checkpoint``), so the
bench runs it against an older copy of ovr too.

    torchrun --nproc-per-node 2 bench/resume_worker.py --phase save --model DIR --root DIR [--set k=v]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading
import time
from pathlib import Path

RUN_ID = "m1"


def status() -> dict[str, int]:
    """This process's memory figures from /proc/self/status, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class Phases(threading.Thread):
    """This rank's memory growth in each phase of a resume, sampled every ``every_s``: "build"
    (download, models, state), "engine" (``make_engine``: DeepSpeed partitions the models and
    allocates its state) and "load" (``load_optim``: DeepSpeed reads its partition files). A phase
    may recur; each occurrence's growth is its peak minus the figure when it began, and the largest
    one is kept. On a GPU node "build" and "load" happen in host memory, "engine" on the devices.
    The resident peak (VmRSS) of each occurrence is exact: the kernel's VmHWM, restarted as it
    begins; the anonymous one is sampled (the sampler runs when the rank releases the GIL, so a
    short spike inside a call that holds it may be missed)."""

    KEYS = ("RssAnon", "VmRSS")

    def __init__(self, every_s: float = 0.002):
        super().__init__(daemon=True)
        self.every_s, self.lock, self.done = every_s, threading.Lock(), threading.Event()
        self.growth: dict[str, dict[str, int]] = {}
        self.current, self.base, self.peak = None, {}, {}

    def _close(self, now: dict) -> None:
        if self.current is None:
            return
        peak = {k: max(self.peak[k], now[k]) for k in self.KEYS}
        peak["VmRSS"] = max(peak["VmRSS"], now["VmHWM"])  # VmHWM restarted when the phase began
        kept = self.growth.setdefault(self.current, dict.fromkeys(self.KEYS, 0))
        for k in self.KEYS:
            kept[k] = max(kept[k], peak[k] - self.base[k])

    def enter(self, name: str | None) -> None:
        """End the current phase and begin ``name`` (None: stop measuring)."""
        with self.lock:
            self._close(status())
            restart_peak()
            now = status()
            self.current, self.base, self.peak = name, now, dict(now)

    def run(self) -> None:
        while not self.done.is_set():
            with self.lock:
                if self.current is not None:
                    now = status()
                    self.peak = {k: max(self.peak[k], now[k]) for k in self.KEYS}
            time.sleep(self.every_s)


def watch_phases(phases: Phases) -> None:
    """Mark the engine and load phases around ovr's own calls (present in every version of ovr)."""
    import ovr.rl.engine as engines

    def around(fn, name):
        def call(*args, **kwargs):
            phases.enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                phases.enter("build")

        return call

    engines.make_engine = around(engines.make_engine, "engine")
    engines.DeepSpeedEngine.load_optim = around(engines.DeepSpeedEngine.load_optim, "load")


def train_once(run) -> None:
    """One optimiser step of the actor and the critic, so the checkpoint holds Adam's moments."""
    import torch

    ids = torch.randint(0, 500, (1, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    logits = run.actor_engine.module(input_ids=ids, attention_mask=mask).logits
    run.actor_engine.backward(logits.float().pow(2).mean())
    run.actor_engine.step()
    if run.critic is not None:
        run.critic_engine.backward(run.critic_engine.module(ids, mask).float().pow(2).mean())
        run.critic_engine.step()


def restart_peak() -> None:
    """Restart this process's VmHWM at its current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _norm(weights: dict) -> dict:
    """Tensors keyed without the wrapper prefix (the saved layout differs from the module's)."""
    return {k.replace("model.language_model.", "model.").removeprefix("model."): v for k, v in weights.items()}


def check(run, cfg, root: Path) -> dict:
    """Whether the resumed actor and critic (gathered) equal the checkpoint's weights in the store."""
    import torch

    from ovr.rl.averaging import load_weights
    from ovr.store import Kind, Store

    got = {"actor": run.actor_engine.weights(run.actor)}
    if run.critic is not None:
        got["critic"] = run.critic_engine.weights(run.critic)
    if not run.dist.is_main:
        for weights in got.values():
            weights.drain()
        return {}
    store = Store.from_config(cfg.store)
    folder = store.download_checkpoint(f"{cfg.name}/{RUN_ID}", run.resumed_from, root / "saved", Kind.RL)
    out = {}
    for sub, weights in got.items():
        have, want = _norm(weights.state_dict()), _norm(load_weights(folder / sub))
        out[sub] = have.keys() == want.keys() and all(torch.equal(have[k], want[k]) for k in want)
    return {"exact": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=["save", "resume"], required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--check", action="store_true", help="compare the resumed weights with the checkpoint's")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()

    # imported before the baseline (the libraries, and the model code transformers loads lazily on
    # first use, are not the resume's memory)
    import deepspeed  # noqa: F401
    import torch.distributed as tdist
    import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl
    import transformers.models.qwen2_5_vl.processing_qwen2_5_vl  # noqa: F401
    from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: F401

    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.data.synthetic import visual_samples
    from ovr.models.critic import Critic  # noqa: F401
    from ovr.rl.checkpoint import save_checkpoint
    from ovr.rl.setup import setup_rl

    cfg = load_config(
        None,
        [
            "name=resume-memory",
            f"model.path={args.model}",
            f"store.uri={args.root / 'store'}",
            "tracking.enabled=false",
            "rl.algorithm=ppo",
            "rl.zero_stage=3",
            "rl.warmup_steps=0",
            *args.sets,
        ],
        use_env=False,
    )
    ctx, samples = RunContext.for_config(cfg, RUN_ID), visual_samples(4, seed=0)
    tdist.init_process_group("gloo")
    rank = tdist.get_rank()
    if args.phase == "save":
        run = setup_rl(cfg, ctx, samples, resume="never")
        train_once(run)
        run.state.step = 1
        save_checkpoint(run, {})
        return
    phases = Phases()
    watch_phases(phases)
    phases.start()
    gc.collect()
    tdist.barrier()
    before = status()
    (args.root / f"start-{rank}").write_text(str(os.getpid()))
    phases.enter("build")
    run = setup_rl(cfg, ctx, samples, resume="auto")
    phases.enter(None)
    (args.root / f"end-{rank}").write_text(str(os.getpid()))
    phases.done.set()
    gc.collect()
    after = status()
    models = {"actor": run.actor, "critic": run.critic}
    report = {
        "rank": rank,
        "resumed_from": run.resumed_from,
        "before": before,
        "after": after,
        "phases": phases.growth,
        "params": {k: sum(getattr(p, "ds_numel", p.numel()) for p in m.parameters()) for k, m in models.items() if m},
        "dtypes": {k: sorted({str(p.dtype) for p in m.parameters()}) for k, m in models.items() if m},
    }
    tdist.barrier()
    if args.check:
        report |= check(run, cfg, args.root)
    (args.root / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
