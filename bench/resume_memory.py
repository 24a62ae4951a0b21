"""Peak host memory of an RL resume at 2 ranks on this CPU (``torchrun``, gloo, DeepSpeed ZeRO-3):
today's code against the code of ``--baseline-rev`` (the resume before it was bounded), on the same
checkpoint, plus the same code paths' expected figures per 8-GPU node at 7B (a model, not a run).

The model is Qwen2.5-VL at the 7B's width (hidden 3584, 28 heads, 4 KV heads) with ``--layers``
decoder layers of ``--intermediate`` MLP width, a small vision tower and the tiny tokenizer's
vocabulary, random bf16 weights; the run is PPO (actor + critic). One ``torchrun`` saves a
checkpoint (today's code: the format is the same); then each code path resumes it while this
process samples the ranks' ``RssAnon`` and ``VmRSS`` every few milliseconds and sums them over the
node (from the first rank entering ``setup_rl`` to the last leaving it). "Growth" is that peak
minus the ranks' memory just before the resume (libraries and the process group already loaded).

On this CPU the engines' own state (bf16 partitions, float32 masters, Adam moments) lives in host
memory too; on a GPU node it is device memory, so the 7B table counts only what the resume puts
in host memory: the models it reads (old: each rank builds the critic on the host, initialised,
fills it from a map of its file, and maps the actor's file; new: no rank reads either, ZeRO
restores them) and DeepSpeed's partition files (old: read into anonymous memory; new: mapped, so
their pages are reclaimable page cache).

    PYTHONPATH=. .venv/bin/python -m bench.resume_memory --out bench/results/resume_memory.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
BASELINE_REV = "d527bfb"  # the last commit whose resume read every model in full on every rank
GB = 1e9


def build_model(out: Path, layers: int, intermediate: int) -> Path:
    """A random bf16 Qwen2.5-VL at the 7B's width (small vision tower, the tiny tokenizer) in ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from ovr.models.tiny import TinySpec, build_config, build_processor, build_tokenizer

    if (out / "config.json").is_file():
        return out
    spec = TinySpec(
        hidden_size=3584,
        intermediate_size=intermediate,
        num_layers=layers,
        num_heads=28,
        num_kv_heads=4,
        mrope_section=(16, 24, 24),
    )
    tokenizer = build_tokenizer(spec, 0)
    config = build_config(tokenizer, spec)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=config.text_config.eos_token_id, do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    build_processor(tokenizer, spec).save_pretrained(out)
    return out


class NodeMemory(threading.Thread):
    """Sums ``RssAnon`` and ``VmRSS`` over the ranks every ``every_s`` while a resume runs (the ranks
    write ``start-<r>`` with their pid before it and ``end-<r>`` after it) and keeps the peaks."""

    def __init__(self, root: Path, nproc: int, every_s: float = 0.005):
        super().__init__(daemon=True)
        self.root, self.nproc, self.every_s = root, nproc, every_s
        self.peak = {"RssAnon": 0, "VmRSS": 0}
        self.samples = 0
        self.stop = threading.Event()

    def _sum(self, pids: list[int]) -> dict[str, int]:
        total = {"RssAnon": 0, "VmRSS": 0}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        key, _, rest = line.partition(":")
                        if key in total:
                            total[key] += int(rest.split()[0]) * 1024
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    def run(self) -> None:
        starts = [self.root / f"start-{r}" for r in range(self.nproc)]
        ends = [self.root / f"end-{r}" for r in range(self.nproc)]
        while not self.stop.is_set():
            started = [int(p.read_text()) for p in starts if p.is_file() and p.read_text()]
            if started and not all(p.is_file() for p in ends):
                now = self._sum(started)
                self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
                self.samples += 1
            time.sleep(self.every_s)


def torchrun(args: list[str], pythonpath: Path, nproc: int, log: Path) -> None:
    """``torchrun --nproc-per-node nproc`` of ``args`` with ``pythonpath`` first on the path."""
    from ovr.serving import free_port

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env |= {"PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--master-port={free_port()}"]
    with open(log, "w") as out:
        proc = subprocess.run([*cmd, *args], cwd=pythonpath, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun {' '.join(args[:3])} failed ({proc.returncode}); its log: {log}")


def resume(worker: Path, model: Path, root: Path, code: Path, nproc: int, check: bool, sets: list[str]) -> dict:
    """One resume of the checkpoint in ``root/store`` by the ovr in ``code``: node peaks, growth and
    the ranks' reports."""
    for f in [*root.glob("start-*"), *root.glob("end-*"), *root.glob("rank*.json")]:
        f.unlink()
    args = [str(worker), "--phase", "resume", "--model", str(model), "--root", str(root)]
    args += ["--check"] * check + [a for s in sets for a in ("--set", s)]
    sampler = NodeMemory(root, nproc)
    sampler.start()
    try:
        torchrun(args, code, nproc, root / f"resume-{code.name}.log")
    finally:
        sampler.stop.set()
        sampler.join()
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(nproc)]
    before = {k: sum(r["before"][k] for r in ranks) for k in ("RssAnon", "VmRSS")}
    phase = {  # the largest rank's growth in each phase
        name: {k: max(r["phases"].get(name, {}).get(k, 0) for r in ranks) for k in ("RssAnon", "VmRSS")}
        for name in ("build", "engine", "load")
    }
    host = {  # what a GPU node's host holds: models built + partition files read, summed over the ranks
        k: sum(max(r["phases"].get(n, {}).get(k, 0) for n in ("build", "load")) for r in ranks)
        for k in ("RssAnon", "VmRSS")
    }
    return {
        "peak": sampler.peak,
        "growth": {k: sampler.peak[k] - before[k] for k in before},
        "phase": phase,
        "host": host,
        "samples": sampler.samples,
        "ranks": ranks,
    }


def baseline_tree(rev: str, dest: Path) -> Path:
    """The repository at ``rev`` (``git archive``), where the old resume runs."""
    archive = dest / "src.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "old", filter="data")
    return dest / "old"


def model_params(config) -> tuple[int, int]:
    """(actor, critic) parameter counts of a Qwen2.5-VL config (built on the meta device: no data)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        actor = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    n = sum(p.numel() for p in actor.parameters())
    head = actor.lm_head.weight.numel()
    return n, n - head + config.text_config.hidden_size  # the critic: no LM head, a value head


def host_model(pa: int, pc: int, world: int) -> dict[str, dict[str, float]]:
    """Host bytes of one rank's resume at ZeRO-3 over ``world`` ranks on GPUs (bf16 models, AdamW),
    by code path: the largest simultaneous anonymous and total (anonymous + mapped file) figures.

    old: the actor is mapped from its file and copied to the GPU (2 pa of file pages); the critic is
    built on the host in its config's dtype (bf16) and initialised (2 pc anonymous), then filled
    from a map of its file (2 pc of file pages; transformers 5.25 builds in the config's dtype, so
    not the float32 copy an older transformers made); later DeepSpeed reads each partition file
    (float32 master + Adam m, v: 12 p / world) into anonymous memory, one model at a time.
    new: actor and critic are built on the GPU and never read; the partition files are mapped
    (their pages count in RSS while read, and are page cache the kernel can reclaim)."""
    optim_a, optim_c = 12 * pa / world, 12 * pc / world
    return {
        "old": {"anon": max(2 * pc, optim_a, optim_c), "total": max(4 * pc, 2 * pa, optim_a, optim_c)},
        "new": {"anon": 0.0, "total": max(optim_a, optim_c)},
    }


def ratio(new: dict, old: dict) -> str:
    """``anon x / all x`` of two growth figures."""
    return " / ".join(f"{new[k] / old[k]:.2f}x" if old[k] > 0 else "-" for k in ("RssAnon", "VmRSS"))


def markdown(measured: dict, sizes: dict, model7b: dict, world: int, command: str) -> str:
    """The tables: measured at 2 ranks on this CPU (old vs new), and the 7B model per node."""
    lines = [
        "# Host memory of an RL resume (PPO: actor + critic, ZeRO-3)",
        "",
        f"`{command}`",
        "",
        f"Model: Qwen2.5-VL at 7B width, {sizes['layers']} decoder layers (MLP {sizes['intermediate']}), "
        f"actor {sizes['actor'] / 1e6:.0f}M + critic {sizes['critic'] / 1e6:.0f}M parameters = "
        f"{sizes['bf16'] / GB:.2f} GB in bf16; 2 ranks on this CPU (gloo).",
        "",
        "Growth over the resume, anonymous / all resident (anonymous + mapped file pages) memory. "
        "*models* and *partition files*: the largest rank's growth while it builds the models and while "
        "DeepSpeed reads its files (host memory on a GPU node too); *host, node*: the two summed over the "
        "ranks; *node, whole resume*: the ranks' summed memory sampled over the whole resume (the engines' "
        "state included: device memory on GPUs).",
        "",
        "| code | models | partition files | host, node | node, whole resume | node peak |",
        "|---|---|---|---|---|---|",
    ]

    def pair(d: dict) -> str:
        return f"{d['RssAnon'] / GB:.2f} / {d['VmRSS'] / GB:.2f} GB"

    for name, m in measured.items():
        lines.append(
            f"| {name} | {pair(m['phase']['build'])} | {pair(m['phase']['load'])} | {pair(m['host'])} | "
            f"{pair(m['growth'])} | {pair(m['peak'])} |"
        )
    if {"old", "new"} <= set(measured):
        old, new = measured["old"], measured["new"]
        lines += [
            "",
            f"new / old: host, node {ratio(new['host'], old['host'])}; node, whole resume "
            f"{ratio(new['growth'], old['growth'])}.",
        ]
    pa, pc = model7b["params"]
    lines += [
        "",
        f"## Expected host memory at 7B (a model from parameter counts, not a measurement): actor {pa / 1e9:.2f}B, "
        f"critic {pc / 1e9:.2f}B parameters, bf16, ZeRO-3 over {world} GPUs per node",
        "",
        "| code | per rank anon | per rank total | per node anon | per node total |",
        "|---|---|---|---|---|",
    ]
    for name, m in model7b["host"].items():
        lines.append(
            f"| {name} | {m['anon'] / GB:.1f} GB | {m['total'] / GB:.1f} GB | {world * m['anon'] / GB:.0f} GB | "
            f"{world * m['total'] / GB:.0f} GB |"
        )
    lines += [
        "",
        "On this CPU the engines' own state (bf16 partitions, float32 masters, Adam moments: about "
        f"{sizes['engine'] / GB:.2f} GB per node here) is host memory; on GPUs it is device memory, and "
        "the 7B rows count only what the resume itself puts in host memory.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the 7B-wide model")
    parser.add_argument("--intermediate", type=int, default=1024, help="its MLP width (the 7B's: 18944)")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old resume")
    parser.add_argument("--no-baseline", action="store_true", help="measure today's code only")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    from transformers import AutoConfig

    from bench.memory_trace import qwen_config

    work = args.work or Path(tempfile.mkdtemp(prefix="ovr-resume-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    worker = REPO / "bench/resume_worker.py"
    sets = ["model.dtype=bfloat16"]
    model = build_model(work / "model", args.layers, args.intermediate)
    pa, pc = model_params(AutoConfig.from_pretrained(str(model)))
    print(f"model: actor {pa / 1e6:.0f}M, critic {pc / 1e6:.0f}M parameters; saving a checkpoint at {args.nproc} ranks")
    save = [str(worker), "--phase", "save", "--model", str(model), "--root", str(work)]
    torchrun([*save, *[a for s in sets for a in ("--set", s)]], REPO, args.nproc, work / "save.log")
    codes = {"new": REPO} if args.no_baseline else {"old": baseline_tree(args.baseline_rev, work), "new": REPO}
    measured = {}
    for name, code in codes.items():
        print(f"resuming with the {name} code ({code})")
        measured[name] = resume(worker, model, work, code, args.nproc, check=False, sets=sets)
    sizes = {
        "layers": args.layers,
        "intermediate": args.intermediate,
        "actor": pa,
        "critic": pc,
        "bf16": 2 * (pa + pc),
        "engine": 14 * (pa + pc),
    }
    p7a, p7c = model_params(qwen_config(28))
    model7b = {"params": (p7a, p7c), "host": host_model(p7a, p7c, 8)}
    command = "PYTHONPATH=. .venv/bin/python -m bench.resume_memory " + " ".join(argv or sys.argv[1:])
    text = markdown(measured, sizes, model7b, 8, command.strip())
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
