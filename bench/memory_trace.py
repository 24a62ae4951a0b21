"""Memory of one training micro-step of the real Qwen2.5-VL-7B architecture, traced on a CPU.

The model is transformers' own ``Qwen2_5_VLForConditionalGeneration`` built from the published
7B config (:data:`QWEN25_VL_7B`) with fewer decoder layers, in bf16, on torch's fake tensors
(``FakeTensorMode``: shapes and dtypes, no data), and one forward+backward runs under
``torch.distributed._tools.mem_tracker.MemTracker``, which accounts every tensor the step allocates.
Each step has an **old** variant (full ``[B, L, V]`` logits upcast to fp32, ``log_softmax``,
entropy under autograd, no activation checkpointing in RL) and a **new** one (ovr's chunked
log-probs from hidden states, HF gradient checkpointing on the decoder layers, detached entropy).

Attention runs through PyTorch's SDPA, which on these (CPU) fake tensors dispatches to its flash
kernel: memory O(L) (output + log-sum-exp), as flash-attention is on a GPU. :class:`StepTracker`
records which attention kernels ran so the bench can refuse a trace that fell back to the
``[L, L]`` math kernel.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

# Qwen/Qwen2.5-VL-7B-Instruct config.json, as published
QWEN25_VL_7B: dict = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 128000,
    "max_window_layers": 28,
    "model_type": "qwen2_5_vl",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32,
        "hidden_act": "silu",
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 152064,
}
FULL_LAYERS = QWEN25_VL_7B["num_hidden_layers"]
MATH_ATTENTION = "_scaled_dot_product_attention_math"


def qwen_config(layers: int, base: dict | None = None):
    """The published config (or ``base``) with ``layers`` decoder layers, SDPA attention."""
    from transformers import Qwen2_5_VLConfig

    d = dict(base or QWEN25_VL_7B, num_hidden_layers=layers, max_window_layers=layers)
    config = Qwen2_5_VLConfig(**d)
    config._attn_implementation = "sdpa"
    return config


def build_model(config, kind: str):
    """``kind`` "policy" (``Qwen2_5_VLForConditionalGeneration``) or "critic" (ovr's Critic on its
    backbone), randomly initialised in bf16, wherever the caller's mode puts tensors (fake tensors
    for the trace, a device for a real run)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ovr.models.critic import Critic

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # `.to(bfloat16)` fails on fake Conv3d weights
    try:
        policy = Qwen2_5_VLForConditionalGeneration(config)
        model = policy if kind == "policy" else Critic(policy.model, config.text_config.hidden_size)
    finally:
        torch.set_default_dtype(previous)
    return model.train()


def set_checkpointing(model, on: bool) -> None:
    """HF gradient checkpointing (non-reentrant) on the decoder layers, as the trainers enable it."""
    target = getattr(model, "backbone", model)
    if hasattr(target, "activation_checkpointing_enable"):  # newer transformers; older ones: gradient_*
        enable, disable, key = (
            target.activation_checkpointing_enable,
            target.activation_checkpointing_disable,
            "activation",
        )
    else:
        enable, disable, key = target.gradient_checkpointing_enable, target.gradient_checkpointing_disable, "gradient"
    if on:
        enable(**{f"{key}_checkpointing_kwargs": {"use_reentrant": False}})
    else:
        disable()


def free_grads_on_accumulate(model) -> list:
    """Drop each gradient once accumulated, as ZeRO-3 does after reduce-scattering it: only the
    sharded copy (counted separately) outlives the backward."""
    hook = lambda p: setattr(p, "grad", None)  # noqa: E731
    return [p.register_post_accumulate_grad_hook(hook) for p in model.parameters() if p.requires_grad]


# --------------------------------------------------------------------------- steps
def rl_batch(prompt_tokens: int, response_tokens: int):
    """One row: a text prompt and a response of the given lengths (micro-batch of one row)."""
    from ovr.rl.forward import EncodedPrompt, build_batch

    prompt = EncodedPrompt([10 + i % 500 for i in range(prompt_tokens)], None, None)  # ids inside any vocab
    return build_batch([prompt], [[11] * response_tokens], pad_id=0, image_token_id=151655)


def actor_step(model, prompt: int, response: int, new: bool) -> tuple:
    """PPO actor micro-step: log-probs of the response and a surrogate loss."""
    from ovr.rl.forward import policy_logprobs, policy_logprobs_full

    batch = rl_batch(prompt, response)
    if new:
        logp, entropy = policy_logprobs(model, batch, with_entropy=True)
    else:
        logp, entropy = policy_logprobs_full(model, batch, with_entropy=True)
    loss = -(logp * batch.response_mask).sum()
    return loss, (
        entropy * batch.response_mask
    ).sum()  # the entropy metric lives past the backward, as in the update loop


def critic_step(model, prompt: int, response: int, new: bool) -> tuple:
    """Critic micro-step: values of the response positions and their squared error."""
    from ovr.rl.forward import critic_values

    batch = rl_batch(prompt, response)
    if new:
        values = critic_values(model, batch)
    else:
        every = model(**batch.model_inputs(model))
        values = torch.gather(every, 1, batch.positions) * batch.response_mask
    return (((values - 1.0) ** 2 * batch.response_mask).sum(),)


def sft_step(model, prompt: int, tokens: int, new: bool) -> tuple:
    """SFT micro-step: one packed row of ``tokens``, every next token labelled, the mean loss."""
    from ovr.models.lm_head import capture_head_input
    from ovr.sft.loss import hidden_token_losses, token_losses

    ids = torch.full((1, tokens), 11, dtype=torch.long)
    position_ids = torch.arange(tokens).view(1, 1, -1).expand(4, 1, -1)
    inputs = {"input_ids": ids, "position_ids": position_ids, "use_cache": False}
    if new:
        with capture_head_input(model):
            out = model(**inputs)
        index = torch.stack([torch.zeros(tokens - 1, dtype=torch.long), torch.arange(tokens - 1)])
        losses = hidden_token_losses(out["head_input"], ids, index=index)
    else:
        losses = token_losses(model(**inputs).logits, ids)
    return (losses.sum() / (tokens - 1),)


@dataclass(frozen=True)
class StepKind:
    """A traced micro-step: which model it trains and how."""

    model: str  # "policy" or "critic"
    run: Callable  # (model, prompt tokens, main tokens, new) -> (loss, *kept alive through the backward)
    old_checkpointing: bool  # whether the old path already checkpointed activations


STEPS: dict[str, StepKind] = {
    "actor": StepKind("policy", actor_step, old_checkpointing=False),
    "critic": StepKind("critic", critic_step, old_checkpointing=False),
    "sft": StepKind("policy", sft_step, old_checkpointing=True),  # the SFT recipe checkpoints already
}


# --------------------------------------------------------------------------- tracing
class StepTracker(MemTracker):
    """``MemTracker`` that also records the attention kernels dispatched."""

    def __init__(self):
        super().__init__()
        self.attention_kernels: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "scaled_dot_product" in name:
            self.attention_kernels.add(name.split(".")[1] if "." in name else name)
        return super().__torch_dispatch__(func, types, args, kwargs)


class _Step(torch.nn.Module):
    """The step as one root module: MemTracker refuses a module called again from the top level
    (the chunked LM head is), not a submodule reused within one root's forward."""

    def __init__(self, model, run: Callable, args: tuple):
        super().__init__()
        self.model, self.run, self.args = model, run, args

    def forward(self):
        return self.run(self.model, *self.args)


@dataclass
class Trace:
    """One traced micro-step."""

    peak_bytes: int  # at the step's peak: everything but parameters and buffers (activations, temps, grads in flight)
    params: int  # parameters of the traced model
    trainable: int  # of which trainable
    seconds: float
    breakdown: dict[str, int] = field(default_factory=dict)  # peak snapshot by category
    attention_kernels: set[str] = field(default_factory=set)


def trace_step(model, step: str, prompt: int, tokens: int, new: bool) -> Trace:
    """Run ``STEPS[step]`` once on ``model`` under a fresh :class:`StepTracker`."""
    kind = STEPS[step]
    set_checkpointing(model, new or kind.old_checkpointing)
    hooks = free_grads_on_accumulate(model)
    tracker = StepTracker()
    tracker.track_external(model)
    step_module = _Step(model, kind.run, (prompt, tokens, new))
    t = time.perf_counter()
    try:
        with tracker, warnings.catch_warnings():
            # MemTracker warns about None among module inputs/outputs (no tensor to account)
            warnings.filterwarnings("ignore", message="Expected a tensor or a traceable", category=UserWarning)
            loss, *alive = step_module()
            loss.backward()
            del alive
    finally:
        for h in hooks:
            h.remove()
    seconds = time.perf_counter() - t
    (snap,) = tracker.get_tracker_snapshot("peak").values()
    resident = snap.get(_MemRefType.PARAM, 0) + snap.get(_MemRefType.BUFFER, 0)
    if any(MATH_ATTENTION in k for k in tracker.attention_kernels):
        raise RuntimeError(f"attention fell back to the [L, L] math kernel: {tracker.attention_kernels}")
    return Trace(
        peak_bytes=snap["Total"] - resident,
        params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        seconds=seconds,
        breakdown={getattr(k, "value", str(k)): v for k, v in snap.items()},
        attention_kernels=set(tracker.attention_kernels),
    )


def fake_models(layers: int, base: dict | None = None) -> dict[str, object]:
    """A fake policy and critic of ``layers`` decoder layers of the published config (or ``base``),
    and the ``mode`` to run them in."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    config = qwen_config(layers, base)
    with mode:
        return {"mode": mode, "policy": build_model(config, "policy"), "critic": build_model(config, "critic")}
