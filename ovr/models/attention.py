"""Padding-free ("varlen") attention for packed micro-batches: no ``[L, L]`` mask, ever.

A packed micro-batch is one sequence ``[1, N]`` holding several rows (RL prompt+response rows, SFT
documents) back to back, each with its own positions starting at 0. transformers would turn the
restarting positions into a dense block-diagonal ``[1, 1, N, N]`` mask for ``sdpa``/``eager``
(SDPA then leaves its flash kernel), and it refuses ``flex_attention`` for Qwen2.5-VL. Here an
attention function is registered with transformers (``AttentionInterface``) under
:data:`NAME`, together with a mask function that builds no mask for packed input, and the
attention runs each row (segment) causally on its own:

* CUDA in bf16/fp16, and fake tensors (the memory trace): ``torch.nn.attention.varlen.varlen_attn``
  over the segments' ``cu_seqlens`` (PyTorch's own flash-attention varlen kernel, forward and
  backward; no ``flash-attn`` package);
* CPU (and fp32 on CUDA): causal SDPA per segment (exact, backward included) - PyTorch has no
  varlen kernel on CPU.

The segments come from the caller as keyword arguments of the model's forward (:func:`segment_kwargs`:
``ovr_cu_seqlens``, ``ovr_max_seqlen``; transformers hands unknown keywords down to the attention
call), or, failing that, from the restarts of the text position ids transformers passes along. The
vision tower runs the same function under :data:`VISION_NAME` (:func:`attach`): its images and
windows are segments too, attended without the causal mask. Calls that are neither (a padded batch
with a 2-D mask, a batch of several rows) go to transformers' own SDPA attention unchanged.

>>> model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation=resolve("varlen"))  # doctest: +SKIP
>>> attach(model)  # the vision tower too                                                               # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import torch

NAME = "ovr_varlen"  # the name registered with transformers
# the vision tower's name for the same function: transformers' Qwen2.5-VL vision attention passes its
# cu_seqlens (one call per layer) only to implementations whose name contains "flash"
VISION_NAME = "ovr_flash_varlen_vision"
CONFIG_NAME = "varlen"  # the value of model.attn_implementation that selects it
VARLEN_KERNEL = "varlen_attn"
SEGMENT_KERNEL = "sdpa_per_segment"
FALLBACK_KERNEL = "sdpa"

# "decoder/<kernel>", "vision/<kernel>" or FALLBACK_KERNEL -> calls since the process started
# (bench/gpu_check.py reports which kernels ran)
CALLS: Counter = Counter()


def segment_kwargs(lengths: list[int], device: torch.device | str | None = None) -> dict:
    """Keyword arguments of a packed forward whose segments have ``lengths`` tokens each.

    >>> segment_kwargs([3, 2])["ovr_cu_seqlens"].tolist(), segment_kwargs([3, 2])["ovr_max_seqlen"]
    ([0, 3, 5], 3)
    """
    if not lengths or min(lengths) < 1:
        raise ValueError(f"segments need at least one token each, got {lengths}")
    cu = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
    return {"ovr_cu_seqlens": cu.to(device) if device is not None else cu, "ovr_max_seqlen": max(lengths)}


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


def uses_varlen_kernel(t: torch.Tensor) -> bool:
    """Whether ``t`` runs PyTorch's varlen kernel: on CUDA in half precision (flash attention's
    dtypes), or in a fake-tensor trace; else per-segment SDPA."""
    return (t.is_cuda and t.dtype in (torch.float16, torch.bfloat16)) or _is_fake(t)


def _segments(position_ids: torch.Tensor | None, n: int, cu, max_len) -> tuple[torch.Tensor, int]:
    """``(cu_seqlens, longest)`` of a packed sequence of ``n`` tokens."""
    if cu is not None:
        if max_len is None:
            max_len = int((cu[1:] - cu[:-1]).max())
        return cu, int(max_len)
    if position_ids is None:
        return torch.tensor([0, n], dtype=torch.int32), n
    if _is_fake(position_ids):
        raise ValueError(
            "a traced packed forward needs ovr_cu_seqlens/ovr_max_seqlen (ovr.models.attention.segment_kwargs)"
        )
    pos = position_ids.reshape(-1)
    starts = torch.cat(
        [torch.zeros(1, dtype=torch.long, device=pos.device), (pos[1:] != pos[:-1] + 1).nonzero()[:, 0] + 1]
    )
    cu = torch.cat([starts, torch.tensor([n], device=pos.device)]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


def _per_segment(query, key, value, cu: torch.Tensor, scaling, causal: bool) -> torch.Tensor:
    """SDPA over each segment of ``[1, H, N, D]`` inputs; output ``[1, N, H, D]``."""
    outs = []
    for a, b in pairwise(cu.tolist()):
        outs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=causal, scale=scaling, enable_gqa=True
            )
        )
    return torch.cat(outs, dim=2).transpose(1, 2)


def _varlen(query, key, value, cu: torch.Tensor, max_len: int, scaling, causal: bool) -> torch.Tensor:
    """PyTorch's varlen kernel on ``[1, H, N, D]`` inputs; output ``[1, N, H, D]``."""
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # [N, H, D]
    cu = cu.to(device=q.device, dtype=torch.int32)
    window = (-1, 0) if causal else (-1, -1)
    out = varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scaling, window_size=window, enable_gqa=True)
    return out[None]


def _run(query, key, value, cu: torch.Tensor, max_len: int, scaling, causal: bool) -> tuple[torch.Tensor, None]:
    part = "decoder" if causal else "vision"
    if uses_varlen_kernel(query):
        CALLS[f"{part}/{VARLEN_KERNEL}"] += 1
        return _varlen(query, key, value, cu, max_len, scaling, causal), None
    CALLS[f"{part}/{SEGMENT_KERNEL}"] += 1
    return _per_segment(query, key, value, cu, scaling, causal), None


def varlen_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_ids: torch.Tensor | None = None,
    ovr_cu_seqlens: torch.Tensor | None = None,
    ovr_max_seqlen: int | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature (``[B, H, L, D]`` in, ``[B, L, H, D]`` out).

    Causal (decoder) calls use the packed segments (``ovr_cu_seqlens``, else the position restarts);
    non-causal calls with ``cu_seq_lens_q`` (the vision tower's images and windows, see :func:`attach`)
    attend within each of those segments."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = getattr(module, "is_causal", True) and is_causal is not False
    plain = query.shape[0] == 1 and attention_mask is None and dropout == 0.0
    if plain and not causal and cu_seq_lens_q is not None:
        return _run(query, key, value, *_segments(None, query.shape[2], cu_seq_lens_q, max_length_q), scaling, False)
    if plain and causal and (ovr_cu_seqlens is not None or position_ids is not None):
        cu, max_len = _segments(position_ids, query.shape[2], ovr_cu_seqlens, ovr_max_seqlen)
        return _run(query, key, value, cu, max_len, scaling, True)
    CALLS[FALLBACK_KERNEL] += 1
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def varlen_mask(*args, attention_mask: torch.Tensor | None = None, **kwargs):
    """transformers' mask function for :data:`NAME`: no mask for packed or unpadded input (the
    attention needs none); SDPA's dense mask only where a caller passed a 2-D padding mask."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> str:
    """Register the attention (under :data:`NAME` and :data:`VISION_NAME`) and its mask function
    with transformers (idempotent); returns :data:`NAME`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    for name in (NAME, VISION_NAME):
        if name not in AttentionInterface._global_mapping:
            AttentionInterface.register(name, varlen_attention_forward)
    if NAME not in AttentionMaskInterface._global_mapping:
        AttentionMaskInterface.register(NAME, varlen_mask)
    return NAME


def resolve(attn_implementation: str) -> str:
    """The name transformers knows for a ``model.attn_implementation`` value (registering ovr's)."""
    return register() if attn_implementation in (CONFIG_NAME, NAME) else attn_implementation


def attach(model_or_config):
    """When the text model runs :data:`NAME`, give its vision tower :data:`VISION_NAME` too (set after
    loading: transformers checks names with "flash" at load time). The vision tower then hands its
    images' and windows' boundaries to the attention in one call per layer (one varlen kernel on
    CUDA) instead of one SDPA call per window. Returns its argument."""
    config = getattr(model_or_config, "config", model_or_config)
    vision = getattr(config, "vision_config", None)
    if vision is not None and getattr(config, "_attn_implementation", None) == NAME:
        register()
        vision._attn_implementation = VISION_NAME
    return model_or_config
