"""Memory of one training micro-step of the real Qwen2.5-VL-7B architecture, traced on a CPU.

The model is transformers' own ``Qwen2_5_VLForConditionalGeneration`` built from the published
7B config (:data:`QWEN25_VL_7B`) with fewer decoder layers, in bf16, on torch's fake tensors
(``FakeTensorMode``: shapes and dtypes, no data), with ovr's padding-free attention
(:mod:`ovr.models.attention`: PyTorch's varlen kernel, O(N) memory, as on a GPU) for the decoder
and the vision tower. One forward+backward runs under
``torch.distributed._tools.mem_tracker.MemTracker``, which accounts every tensor the step allocates,
with the trainer's own code on a micro-batch the trainer's own batching built
(:mod:`bench.memory_mixes`): :func:`ovr.rl.forward.policy_logprobs` / ``critic_values`` (chunked
LM head, value head on response positions), :func:`ovr.sft.loss.step_loss`, HF gradient
checkpointing, token-tiled MLPs, entropy as a detached metric.

The micro-batch is built with real tensors, then handed to the fake model as fake tensors that
keep their values (FakeTensor "constants"), so the model's data-dependent bookkeeping (image
token counts, per-image splits) runs as it does for real. :class:`StepTracker` records which
attention kernels ran so the bench can refuse a trace that fell back to an ``[L, L]`` kernel.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker, _MemRefType

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
MATH_ATTENTION = "_scaled_dot_product_attention_math"


def qwen_config(layers: int, base: dict | None = None):
    """The published config (or ``base``) with ``layers`` decoder layers and ovr's padding-free
    attention (decoder and vision tower), as the trainer loads it (``model.attn_implementation: varlen``)."""
    from transformers import Qwen2_5_VLConfig

    from ovr.models.attention import resolve

    d = dict(base or QWEN25_VL_7B, num_hidden_layers=layers, max_window_layers=layers)
    config = Qwen2_5_VLConfig(**d)
    config._attn_implementation = resolve("varlen")
    return config


def build_model(config, kind: str):
    """``kind`` "policy" (``Qwen2_5_VLForConditionalGeneration``) or "critic" (ovr's Critic on its
    backbone), randomly initialised in bf16, wherever the caller's mode puts tensors (fake tensors
    for the trace, a device for a real run), its vision tower on the same attention as the trainer's
    (:func:`ovr.models.attention.attach`, after construction as after loading)."""
    import copy

    from transformers import Qwen2_5_VLForConditionalGeneration

    from ovr.models.attention import attach
    from ovr.models.critic import Critic

    config = copy.deepcopy(config)  # attach() edits it
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # `.to(bfloat16)` fails on fake Conv3d weights
    try:
        policy = Qwen2_5_VLForConditionalGeneration(config)
        model = policy if kind == "policy" else Critic(policy.model, config.text_config.hidden_size)
    finally:
        torch.set_default_dtype(previous)
    return attach(model).train()


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
def actor_step(model, batch) -> tuple:
    """PPO actor micro-step on a packed micro-batch: response log-probs (entropy as a metric) and
    a surrogate loss."""
    from ovr.rl.forward import policy_logprobs

    logp, entropy = policy_logprobs(model, batch, with_entropy=True)
    # the entropy metric lives past the backward, as in the update loop
    return -(logp * batch.response_mask).sum(), (entropy * batch.response_mask).sum()


def critic_step(model, batch) -> tuple:
    """Critic micro-step on a packed micro-batch: values of the response positions, squared error."""
    from ovr.rl.forward import critic_values

    values = critic_values(model, batch)
    return (((values - 1.0) ** 2 * batch.response_mask).sum(),)


def sft_step(model, batch: dict) -> tuple:
    """SFT micro-step on a collated batch (:class:`ovr.sft.packing.PackedCollator`), inputs prepared
    as :class:`ovr.sft.callbacks.PackedTrainer` prepares them, the Trainer's loss."""
    from ovr.models.lm_head import capture_head_input
    from ovr.sft.loss import step_loss

    inputs = {k: v for k, v in batch.items() if k not in ("labels", "row_ids", "real_tokens")}
    inputs["position_ids"] = inputs["position_ids"].permute(1, 0, 2)
    with capture_head_input(model):
        out = model(**inputs, use_cache=False)
    return (step_loss(out, batch["labels"]),)


STEPS: dict[str, tuple[str, Callable]] = {  # step -> (model kind, run(model, batch) -> (loss, *alive))
    "actor": ("policy", actor_step),
    "critic": ("critic", critic_step),
    "sft": ("policy", sft_step),
}


# --------------------------------------------------------------------------- tracing
class StepTracker(MemTracker):
    """``MemTracker`` that also records the attention kernels dispatched, and keeps the step's peak
    only (MemTracker also keeps every module's own peak, checking each module at every op: minutes
    for the 32-block vision tower)."""

    def __init__(self):
        super().__init__()
        self.attention_kernels: set[str] = set()

    def _update_peak_stats(self, peak_state) -> None:
        for dev, snap in self._curr_mem_snap.items():
            if self._peak_mem.get(dev, 0) < snap[_TOTAL_KEY]:
                self._peak_mem[dev] = snap[_TOTAL_KEY]
                self._peak_mem_snap[dev] = dict(snap)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "scaled_dot_product" in name or "attn" in name or "attention" in name:
            self.attention_kernels.add(name.removesuffix(".default").split("::")[-1])
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


@contextmanager
def constant_fakes(limit: int = 1 << 24):
    """Let fake tensors of up to ``limit`` elements keep their values through ops whose inputs all
    do (torch propagates FakeTensor constants of one element only by default)."""
    from torch._subclasses import fake_tensor

    previous = fake_tensor.CONSTANT_NUMEL_LIMIT
    fake_tensor.CONSTANT_NUMEL_LIMIT = limit
    try:
        yield
    finally:
        fake_tensor.CONSTANT_NUMEL_LIMIT = previous


def to_fake(mode, batch, keep_values: tuple[str, ...] = ()):
    """``batch`` (a SeqBatch or a dict of tensors, built with real tensors) with fake tensors: those
    named in ``keep_values`` are plain fakes; every other tensor keeps its values (a constant)."""
    from dataclasses import fields, is_dataclass, replace

    def convert(name, t):
        if isinstance(t, dict):
            return {k: convert(k, v) for k, v in t.items()}
        if not isinstance(t, torch.Tensor):
            return t
        return mode.fake_tensor_converter.from_real_tensor(mode, t, make_constant=name not in keep_values)

    if is_dataclass(batch):
        return replace(batch, **{f.name: convert(f.name, getattr(batch, f.name)) for f in fields(batch)})
    return {k: convert(k, v) for k, v in batch.items()}


def trace_step(model, step: str, batch, mode) -> Trace:
    """Run ``STEPS[step]`` once on ``model`` over ``batch`` (real tensors, made fake here) under a
    fresh :class:`StepTracker`, with the trainer's gradient checkpointing."""
    run = STEPS[step][1]
    set_checkpointing(model, True)
    hooks = free_grads_on_accumulate(model)
    tracker = StepTracker()
    tracker.track_external(model)
    t = time.perf_counter()
    try:
        with constant_fakes(), mode, tracker, warnings.catch_warnings():
            # MemTracker warns about None among module inputs/outputs (no tensor to account)
            warnings.filterwarnings("ignore", message="Expected a tensor or a traceable", category=UserWarning)
            # ...and about modules it cannot place in the backward (checkpointed blocks recomputed)
            warnings.filterwarnings("ignore", message="Module is None", category=UserWarning)
            warnings.filterwarnings("ignore", message="The module hierarchy tracking", category=UserWarning)
            loss, *alive = _Step(model, run, (to_fake(mode, batch, keep_values=("pixel_values",)),))()
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
