"""Peak GPU memory of the 7B recipe's training steps, old path vs new, at ZeRO-3 world size 8.

Traces (see :mod:`bench.memory_trace`) one RL actor micro-step and one critic micro-step at each
response-length stage of ``recipes/ovr-7b.yaml`` (24k, 32k, 48k, after a 2k prompt; one row per
micro-batch) and one SFT step on a 64k packed row, on the published Qwen2.5-VL-7B architecture
in bf16 with fake tensors. The model is traced at two decoder depths (2 and 4 layers) and the
per-layer cost extrapolated linearly to 28 layers. To the traced activations it adds, per GPU,
the ZeRO-3 shards (bf16 parameters; fp32 master weights, Adam m and v and fp32 gradient
accumulation of the trainable ones; each over the world size; in RL both actor and critic are
resident) and the gathered-parameter working set (DeepSpeed's ``stage3_max_live_parameters`` and
the largest module, in bf16, plus a bf16 reduce bucket).

Old path: full ``[B, L, V]`` logits upcast to fp32 + ``log_softmax``, entropy under autograd, no
activation checkpointing in RL (SFT already checkpointed). New path: ovr's log-probs from the
response hidden states with a chunked LM head, HF gradient checkpointing on the decoder layers,
sequence-tiled decoder MLPs, entropy as a detached metric.

    PYTHONPATH=. .venv/bin/python -m bench.memory --out bench/results/memory.md
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory_trace import FULL_LAYERS, fake_models, trace_step

GB = 1e9
FITS_GB = 80.0


@dataclass(frozen=True)
class Stage:
    """One row of the table: a traced step at one length."""

    name: str
    step: str  # key of bench.memory_trace.STEPS
    prompt: int  # prompt tokens before the response (RL) or 0 (SFT)
    tokens: int  # response tokens (RL) or packed tokens (SFT)

    @property
    def label(self) -> str:
        return f"{self.prompt} + {self.tokens}" if self.prompt else str(self.tokens)


@dataclass(frozen=True)
class ZeroSetup:
    """ZeRO-3 memory per GPU (bytes per parameter are those of DeepSpeed's bf16 + fp32-master mode)."""

    world: int = 8
    param_bytes: int = 2  # bf16 weights (partitioned)
    state_bytes: int = 4 + 4 + 4 + 4  # fp32 master, Adam m, Adam v, fp32 gradient accumulation (trainable only)
    max_live_parameters: int = 1_000_000_000  # DeepSpeed default (and ovr's SFT config)
    reduce_bucket: int = 500_000_000  # DeepSpeed's default reduce_bucket_size (elements)

    def shards(self, params: int, trainable: int) -> float:
        return (self.param_bytes * params + self.state_bytes * trainable) / self.world

    def working_set(self, largest_module: int) -> float:
        return 2 * (self.max_live_parameters + largest_module) + 2 * self.reduce_bucket


@dataclass
class Model7B:
    """Parameter counts of the full-depth model, from the traced depths (exactly linear)."""

    params: int
    trainable: int
    largest_module: int


def default_stages(rl_tokens: list[int], sft_tokens: list[int], prompt: int) -> list[Stage]:
    rows = [Stage("RL actor", "actor", prompt, n) for n in rl_tokens]
    rows += [Stage("RL critic", "critic", prompt, n) for n in rl_tokens]
    return rows + [Stage("SFT", "sft", 0, n) for n in sft_tokens]


def extrapolate(a: float, b: float, la: int, lb: int, to: int = FULL_LAYERS) -> tuple[float, float]:
    """Value at ``to`` layers from values at ``la`` and ``lb`` layers; also the per-layer slope."""
    slope = (b - a) / (lb - la)
    return a + (to - la) * slope, slope


def _counts(model, frozen_prefix: str | None) -> tuple[int, int, int]:
    params = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for n, p in model.named_parameters() if frozen_prefix and n.startswith(frozen_prefix))
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return params, params - frozen, largest


def full_depth_counts(models: dict[int, dict], kind: str, frozen_prefix: str | None) -> Model7B:
    (la, ma), (lb, mb) = sorted(models.items())[:2]
    a, b = _counts(ma[kind], frozen_prefix), _counts(mb[kind], frozen_prefix)
    full = [round(extrapolate(x, y, la, lb)[0]) for x, y in zip(a, b)]
    return Model7B(params=full[0], trainable=full[1], largest_module=max(a[2], b[2]))


def trace_stages(stages: list[Stage], layers: tuple[int, int], tile_tokens: int, base: dict | None = None) -> dict:
    """``traces``: ``{(stage, path): {layers: Trace}}``; ``models``: the fake models per depth;
    ``kernels``: the attention kernels that ran. ``base``: a config dict other than the published 7B."""
    from ovr.models.tiling import tile_mlps, untile_mlps

    models, traces = {}, {}
    for n in layers:
        models[n] = fake_models(n, base)
        for stage in stages:
            kind = "critic" if stage.step == "critic" else "policy"
            for path in ("old", "new"):
                model = models[n][kind]
                with models[n]["mode"]:
                    untile_mlps(model)
                    if path == "new" and tile_tokens:
                        tile_mlps(model, tile_tokens)
                    traces.setdefault((stage, path), {})[n] = trace_step(
                        model, stage.step, stage.prompt, stage.tokens, path == "new"
                    )
    kernels = sorted({k for t in traces.values() for tr in t.values() for k in tr.attention_kernels})
    return {"models": models, "traces": traces, "kernels": kernels}


@dataclass
class Row:
    stage: Stage
    old_gb: float
    new_gb: float
    new_act_gb: float
    slope_gb: float
    shards_gb: float
    working_gb: float

    @property
    def ratio(self) -> float:
        return self.old_gb / self.new_gb


def activation_at(traced: dict, stage: Stage, path: str, layers: int = FULL_LAYERS) -> tuple[float, float]:
    """Traced peak bytes (all but parameters and buffers) of ``stage`` at ``layers`` decoder layers,
    extrapolated from the two traced depths; also the per-layer slope."""
    (la, ta), (lb, tb) = sorted(traced["traces"][(stage, path)].items())[:2]
    return extrapolate(ta.peak_bytes, tb.peak_bytes, la, lb, to=layers)


def build_rows(stages: list[Stage], traced: dict, zero: ZeroSetup) -> list[Row]:
    models = traced["models"]
    policy = full_depth_counts(models, "policy", None)
    sft_policy = full_depth_counts(models, "policy", "model.visual")  # SFT trains the LLM only
    critic = full_depth_counts(models, "critic", None)
    rl_resident = zero.shards(policy.params, policy.trainable) + zero.shards(critic.params, critic.trainable)
    working = zero.working_set(policy.largest_module)
    rows = []
    for stage in stages:
        shards = zero.shards(sft_policy.params, sft_policy.trainable) if stage.step == "sft" else rl_resident
        (old, _), (new, slope) = activation_at(traced, stage, "old"), activation_at(traced, stage, "new")
        rows.append(
            Row(
                stage,
                (old + shards + working) / GB,
                (new + shards + working) / GB,
                new / GB,
                slope / GB,
                shards / GB,
                working / GB,
            )
        )
    return rows


def markdown(rows: list[Row], notes: list[str], limit_gb: float) -> str:
    lines = [
        "| stage | tokens | old peak GB/GPU | new peak GB/GPU | ratio old/new | fits 80GB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        fits = "yes" if r.new_gb <= FITS_GB else "no"
        lines.append(f"| {r.stage.name} | {r.stage.label} | {r.old_gb:.1f} | {r.new_gb:.1f} | {r.ratio:.1f} | {fits} |")
    lines += [
        "",
        "New path, per GPU:",
        "",
        "| stage | tokens | activations (28 layers) | per layer | ZeRO-3 shards | gathered working set |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.stage.name} | {r.stage.label} | {r.new_act_gb:.1f} | {r.slope_gb:.2f} | "
            f"{r.shards_gb:.1f} | {r.working_gb:.1f} |"
        )
    worst = max(rows, key=lambda r: r.new_gb)
    ok = all(r.new_gb <= limit_gb for r in rows)
    lines += [
        "",
        f"New path within {limit_gb:.0f} GB per GPU at every stage: {'yes' if ok else 'no'} "
        f"(highest: {worst.stage.name} {worst.stage.label} at {worst.new_gb:.1f} GB).",
    ]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rl-tokens", type=int, nargs="+", default=[24576, 32768, 49152], help="response lengths")
    p.add_argument("--sft-tokens", type=int, nargs="+", default=[65536], help="packed row lengths")
    p.add_argument("--prompt-tokens", type=int, default=2048, help="prompt length before each response")
    p.add_argument("--layers", type=int, nargs=2, default=[2, 4], help="the two traced decoder depths")
    p.add_argument(
        "--tile-tokens", type=int, default=None, help="MLP tile of the new path (default: ovr's; 0: no tiling)"
    )
    p.add_argument("--world", type=int, default=8, help="ZeRO-3 world size")
    p.add_argument("--limit-gb", type=float, default=70.0, help="exit 1 if the new path exceeds this anywhere")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = p.parse_args(argv)

    from ovr.models.lm_head import DEFAULT_CHUNK
    from ovr.models.tiling import DEFAULT_TILE

    if args.layers[0] >= args.layers[1]:
        p.error("--layers needs two increasing depths")
    tile = DEFAULT_TILE if args.tile_tokens is None else args.tile_tokens
    stages = default_stages(args.rl_tokens, args.sft_tokens, args.prompt_tokens)
    t = time.perf_counter()
    traced = trace_stages(stages, tuple(args.layers), tile)
    rows = build_rows(stages, traced, ZeroSetup(world=args.world))
    notes = [
        f"Qwen2.5-VL-7B (published config), bf16, traced on fake tensors at {args.layers[0]} and {args.layers[1]} "
        f"decoder layers; the per-layer cost (slope) is extrapolated linearly to {FULL_LAYERS} layers.",
        "One row per micro-batch, text only (an image adds its vision-tower activations).",
        f"Attention kernels traced: {', '.join(traced['kernels'])} - SDPA's flash kernel, memory O(L) as "
        "flash-attention on a GPU (the [L, L] math kernel would have stopped the bench).",
        f"New path: LM head chunks of {DEFAULT_CHUNK} tokens, "
        + (f"MLP tiles of {tile} tokens" if tile else "no MLP tiling")
        + ", HF gradient checkpointing. "
        "Old path: full logits; no checkpointing in RL, the recipe's checkpointing in SFT.",
        f"ZeRO-3 at world size {args.world}: 2 B/param bf16 + 16 B/trainable param (fp32 master, Adam m, v, fp32 "
        "grad accumulation) / world; RL counts actor and critic resident together; SFT trains the LLM only.",
        "Not counted: CUDA context, NCCL buffers, allocator fragmentation (the 70 GB bar leaves 10 GB for them).",
        f"Traced in {time.perf_counter() - t:.1f} s.",
    ]
    text = markdown(rows, notes, args.limit_gb)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if all(r.new_gb <= args.limit_gb for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
