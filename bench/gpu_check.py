"""The memory bench's padding-free micro-steps for real on one GPU: measured peak next to the traced one.

A random-init Qwen2.5-VL at 7B width (the published config in :mod:`bench.memory_trace`, bf16,
``--layers`` decoder layers, the full vision tower; built on the device: nothing is downloaded)
runs the micro-batches of ``bench/memory.py`` at the recipe's token budget (by default the longest
RL stage's row mixes, text and image rows, and the packed SFT rows), each built by the trainer's
own batching and run through the trainer's own step code with ovr's padding-free attention. Each
runs three times: for its peak (``torch.cuda.max_memory_allocated`` minus the resident weights;
gradients are dropped once accumulated, as ZeRO-3 does after its reduce-scatter and as the trace
does), for its time, and under the profiler, which names the attention kernels that actually ran
(ovr's own count per kernel and the device kernels). The trace is the fake-tensor figure
traced at the same depth. The critic shares the policy's backbone (one set of weights).

    bash bench/gpu_check.sh                                    # on the GPU machine
    python -m bench.gpu_check --device cpu --toy --out x.md    # toy sizes on a CPU (the test)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.memory import GB, REPO, TOY_RECIPE, TOY_SIZES, Case, Recipe, activation_bytes, build_cases, trace_cases
from bench.memory_mixes import largest_image_grid, rl_micro_batch, sft_micro_batch
from bench.memory_trace import STEPS, TOY, build_model, free_grads_on_accumulate, qwen_config
from bench.memory_trace import set_checkpointing as checkpointing

DEVICE_KERNEL_WORDS = ("flash", "attention", "attn", "fmha", "sdpa")


@dataclass
class Check:
    """One measured micro-step."""

    case: Case
    tokens: int
    traced_gb: float
    measured_gb: float | None  # None off CUDA
    seconds: float
    ovr_kernels: dict[str, int] = field(default_factory=dict)  # ovr.models.attention.CALLS during one step
    device_kernels: list[str] = field(default_factory=list)  # attention kernels the profiler saw
    error: str = ""


def _to_device(batch, device: str):
    """A micro-batch on ``device`` (the vision tower computes its own grid-derived inputs there)."""
    from ovr.rl.forward import to_device

    if isinstance(batch, dict):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    batch.vision_kwargs = {}
    return to_device(batch, device, torch.bfloat16)


def _step(model, case: Case, batch) -> None:
    loss, *alive = STEPS[case.step][1](model, batch)
    loss.backward()
    del loss, alive


def _profiled(model, case: Case, batch, device: str) -> tuple[dict[str, int], list[str]]:
    """ovr's kernel counts and the profiler's attention kernels over one step."""
    from torch.profiler import ProfilerActivity, profile

    from ovr.models import attention

    before = dict(attention.CALLS)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        _step(model, case, batch)
    ran = {k: v - before.get(k, 0) for k, v in attention.CALLS.items() if v > before.get(k, 0)}
    names = {e.key for e in prof.key_averages() if any(w in e.key.lower() for w in DEVICE_KERNEL_WORDS)}
    return ran, sorted(names)


def measure(model, case: Case, batch, device: str, tile: int | None) -> tuple[float | None, float, dict, list]:
    """(peak bytes above the resident weights or None off CUDA, seconds of the second run, kernels)."""
    from ovr.models.tiling import tile_mlps, untile_mlps

    untile_mlps(model)
    if tile:
        tile_mlps(model, tile)
    checkpointing(model, True)
    hooks = free_grads_on_accumulate(model)
    cuda = device.startswith("cuda")
    peak, seconds = None, 0.0
    try:
        for run in range(2):  # the first for the peak, the second (warm) for the time
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            t = time.perf_counter()
            _step(model, case, batch)
            if cuda:
                torch.cuda.synchronize()
                if run == 0:
                    peak = torch.cuda.max_memory_allocated() - base
            seconds = time.perf_counter() - t
        ran, names = _profiled(model, case, batch, device)
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    return peak, seconds, ran, names


def run_checks(cases: list[Case], recipe: Recipe, layers: int, device: str, base: dict | None):
    """Trace (fake tensors, on the CPU) and measure (real tensors, on ``device``) every case."""
    from ovr.models.critic import Critic

    traced = trace_cases(cases, recipe, (layers,), base)  # at the measured depth: no extrapolation
    config = qwen_config(layers, base)
    with torch.device(device):
        policy = build_model(config, "policy")
    critic = Critic(policy.model, config.text_config.hidden_size)
    critic.value_head.to(device=device, dtype=torch.bfloat16)
    info = {"weights_gb": sum(p.numel() * p.element_size() for p in policy.parameters()) / GB, "layers": layers}
    grid = largest_image_grid(recipe.max_pixels)
    checks = []
    for case in cases:
        if case.step == "sft":
            batch, *_, tokens = sft_micro_batch(case.mix, recipe.sft_len, recipe.sft_rows)
        else:
            batch, *_, tokens = rl_micro_batch(
                case.mix, policy.config, recipe.budget, grid, policy.model.get_rope_index
            )
        model = critic.train() if case.step == "critic" else policy.train()
        traced_gb = activation_bytes(traced, case, layers) / GB
        tile = recipe.sft_tile if case.step == "sft" else recipe.rl_tile
        try:
            peak, seconds, ran, names = measure(model, case, _to_device(batch, device), device, tile)
            checks.append(Check(case, tokens, traced_gb, None if peak is None else peak / GB, seconds, ran, names))
        except Exception as e:  # out of memory, an older torch without varlen_attn, ...: report, go on
            checks.append(Check(case, tokens, traced_gb, None, 0.0, error=f"{type(e).__name__}: {str(e)[:100]}"))
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return checks, info


def markdown(checks: list[Check], info: dict, device: str) -> str:
    lines = [
        f"Random-init Qwen2.5-VL-7B architecture, {info['layers']} decoder layers (the full vision tower), "
        f"bf16, on {device}: weights {info['weights_gb']:.1f} GB resident.",
        "",
        "| stage | mix | step | tokens | traced GB | measured GB | measured/traced | s/step | ovr attention calls |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        measured = "n/a" if c.measured_gb is None else f"{c.measured_gb:.1f}"
        ratio = "n/a" if c.measured_gb is None else f"{c.measured_gb / c.traced_gb:.2f}"
        calls = ", ".join(f"{k} x{v}" for k, v in sorted(c.ovr_kernels.items())) or "-"
        tail = f"{c.seconds:.2f} | {calls}" if not c.error else f"{c.error} | -"
        lines.append(
            f"| {c.case.stage} | {c.case.mix.name} | {c.case.step} | {c.tokens} | {c.traced_gb:.3g} | "
            f"{measured} | {ratio} | {tail} |"
        )
    kernels = sorted({k for c in checks for k in c.device_kernels})
    lines += [
        "",
        f"Attention kernels the profiler saw: {', '.join(kernels) or 'none'}.",
        "GB = 1e9 bytes above the resident weights (activations, temporaries, gradients in flight); one "
        "micro-batch per row, packed padding-free at the recipe's token budget; ovr attention calls: one "
        "step's calls per kernel (decoder/vision; forward and the checkpointed recompute).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--layers", type=int, default=4, help="decoder layers of the real model")
    p.add_argument("--toy", action="store_true", help="toy-sized architecture and lengths (CPU test)")
    p.add_argument("--recipe", type=Path, default=REPO / "recipes/ovr-7b.yaml", help="the recipe's budget/tiles")
    p.add_argument("--all-stages", action="store_true", help="every RL length stage, not only the longest")
    p.add_argument("--mixes", default=None, help="comma-separated mix names to run (default: every mix)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device: use --device cpu (toy sizes)")
    recipe, sizes = (TOY_RECIPE, TOY_SIZES) if args.toy else (Recipe.load(args.recipe), {})
    cases = build_cases(recipe, **sizes)
    longest = f"RL {max(recipe.rl_tokens)}"
    cases = [c for c in cases if args.all_stages or c.stage == longest or c.step == "sft"]
    if args.mixes:
        cases = [c for c in cases if c.mix.name in args.mixes.split(",")]
    checks, info = run_checks(cases, recipe, args.layers, args.device, TOY if args.toy else None)
    text = markdown(checks, info, args.device)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if not any(c.error for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
