"""The memory bench's micro-steps for real on one GPU: measured peak next to the traced one, tokens/s.

A random-init Qwen2.5-VL-7B (the published config in :mod:`bench.memory_trace`, bf16, built on
the device: nothing is downloaded) runs each step of ``bench/memory.py`` once for its peak and once
for its time: plain forward + backward, no optimiser, no DeepSpeed. Gradients are dropped once
accumulated, as ZeRO-3 does after its reduce-scatter and as the trace does, so both figures are
"everything but the weights": ``torch.cuda.max_memory_allocated`` minus the resident weights,
next to the fake-tensor trace extrapolated to the same depth. The critic shares the policy's
backbone (one set of weights on the device). The new path runs at every stage; the old one at
one short length (its long stages need hundreds of GB).

    bash bench/gpu_check.sh                                    # on the GPU machine
    python -m bench.gpu_check --device cpu --toy --out x.md    # toy sizes on a CPU (the test)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.memory import GB, Stage, activation_at, default_stages, trace_stages
from bench.memory_trace import (
    FULL_LAYERS,
    QWEN25_VL_7B,
    STEPS,
    build_model,
    free_grads_on_accumulate,
    qwen_config,
    set_checkpointing,
)

# the same architecture, toy-sized (head_dim 32: mrope_section sums to 16)
TOY: dict = dict(
    QWEN25_VL_7B,
    hidden_size=128,
    intermediate_size=256,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1024,
    rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
    bos_token_id=1000,
    eos_token_id=1001,
    vision_start_token_id=1002,
    vision_end_token_id=1003,
    vision_token_id=1004,
    image_token_id=1005,
    video_token_id=1006,
    vision_config=dict(
        QWEN25_VL_7B["vision_config"],
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=128,
        fullatt_block_indexes=[1],
    ),
)
SDP_BACKENDS = ["MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "OVERRIDEABLE"]


@dataclass
class Check:
    """One measured step."""

    stage: Stage
    path: str
    traced_gb: float
    measured_gb: float | None  # None off CUDA
    seconds: float
    error: str = ""

    @property
    def tokens_per_s(self) -> float:
        return (self.stage.prompt + self.stage.tokens) / self.seconds if self.seconds else 0.0


def sdp_backend(config, device: str, tokens: int = 4096) -> str:
    """The SDPA kernel PyTorch picks for this model's causal attention (GQA) at ``tokens``."""
    t = config.text_config
    head_dim = t.hidden_size // t.num_attention_heads
    q = torch.empty(1, t.num_attention_heads, tokens, head_dim, device=device, dtype=torch.bfloat16)
    kv = torch.empty(1, t.num_key_value_heads, tokens, head_dim, device=device, dtype=torch.bfloat16)
    choice = int(torch._fused_sdp_choice(q, kv, kv, None, 0.0, True, scale=None, enable_gqa=True))
    return SDP_BACKENDS[choice] if 0 <= choice < len(SDP_BACKENDS) else str(choice)


def measure(model, stage: Stage, path: str, device: str) -> tuple[float | None, float]:
    """(peak bytes above the resident weights or None off CUDA, seconds of the second run)."""
    from ovr.models.tiling import tile_mlps, untile_mlps

    new = path == "new"
    untile_mlps(model)
    if new:
        tile_mlps(model)
    set_checkpointing(model, new or STEPS[stage.step].old_checkpointing)
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
            with torch.device(device):
                loss, *alive = STEPS[stage.step].run(model, stage.prompt, stage.tokens, new)
                loss.backward()
            del loss, alive
            if cuda:
                torch.cuda.synchronize()
                if run == 0:
                    peak = torch.cuda.max_memory_allocated() - base
            seconds = time.perf_counter() - t
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    return peak, seconds


def run_checks(
    stages: list[Stage], old_stage: Stage, layers: int, device: str, base: dict | None
) -> tuple[list[Check], dict]:
    """Trace (fake tensors, on the CPU) and measure (real tensors, on ``device``) every stage."""
    from ovr.models.tiling import DEFAULT_TILE

    traced = trace_stages([*stages, old_stage], (2, 4), DEFAULT_TILE, base)
    config = qwen_config(layers, base)
    with torch.device(device):
        policy = build_model(config, "policy")
    critic = build_model_critic(policy, config, device)
    info = {
        "weights_gb": sum(p.numel() * p.element_size() for p in policy.parameters()) / GB,
        "attention": sdp_backend(config, device),
        "layers": layers,
    }
    checks = []
    for stage, path in [*((s, "new") for s in stages), (old_stage, "old")]:
        model = critic if stage.step == "critic" else policy
        traced_gb = activation_at(traced, stage, path, layers)[0] / GB
        try:
            peak, seconds = measure(model, stage, path, device)
            checks.append(Check(stage, path, traced_gb, None if peak is None else peak / GB, seconds))
        except Exception as e:  # out of memory, an older transformers, ...: report, go on
            checks.append(Check(stage, path, traced_gb, None, 0.0, error=f"{type(e).__name__}: {str(e)[:100]}"))
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return checks, info


def build_model_critic(policy, config, device: str):
    """ovr's Critic on the policy's own backbone (no second copy of the weights)."""
    from ovr.models.critic import Critic

    critic = Critic(policy.model, config.text_config.hidden_size)
    critic.value_head.to(device=device, dtype=torch.bfloat16)
    return critic.train()


def markdown(checks: list[Check], info: dict, device: str) -> str:
    lines = [
        f"Random-init Qwen2.5-VL-7B architecture, {info['layers']} decoder layers, bf16, on {device}: "
        f"weights {info['weights_gb']:.1f} GB resident; SDPA kernel: {info['attention']}.",
        "",
        "| stage | path | tokens | traced GB | measured GB | measured/traced | s/step | tokens/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        measured = "n/a" if c.measured_gb is None else f"{c.measured_gb:.1f}"
        ratio = "n/a" if c.measured_gb is None else f"{c.measured_gb / c.traced_gb:.2f}"
        tail = f"{c.seconds:.2f} | {c.tokens_per_s:.0f}" if not c.error else f"{c.error} | -"
        lines.append(
            f"| {c.stage.name} | {c.path} | {c.stage.label} | {c.traced_gb:.1f} | {measured} | {ratio} | {tail} |"
        )
    lines += [
        "",
        "GB = 1e9 bytes above the resident weights (activations, temporaries, gradients in flight); "
        "tokens/s = (prompt + response) tokens per forward+backward, one row.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--layers", type=int, default=FULL_LAYERS, help="decoder layers of the real model")
    p.add_argument("--toy", action="store_true", help="toy-sized architecture and lengths (CPU test)")
    p.add_argument("--rl-tokens", type=int, nargs="+", default=None, help="response lengths")
    p.add_argument("--sft-tokens", type=int, nargs="+", default=None, help="packed row lengths")
    p.add_argument("--prompt-tokens", type=int, default=None, help="prompt length")
    p.add_argument("--old-tokens", type=int, default=None, help="response length of the old-path check")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device: use --device cpu (toy sizes)")
    small = args.toy
    rl = args.rl_tokens or ([64, 96] if small else [24576, 32768, 49152])
    sft = args.sft_tokens or ([128] if small else [65536])
    prompt = args.prompt_tokens or (16 if small else 2048)
    import importlib.util

    if importlib.util.find_spec("pydantic") is None:  # ovr.sft imports the schema (pydantic)
        print("SFT stages skipped: pydantic is not installed here")
        sft = []
    stages = default_stages(rl, sft, prompt)
    old_stage = Stage("RL actor", "actor", prompt, args.old_tokens or (32 if small else 4096))
    checks, info = run_checks(stages, old_stage, args.layers, args.device, TOY if small else None)
    text = markdown(checks, info, args.device)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if not any(c.error for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
