"""Token-tiled decoder MLPs: each MLP runs over tiles of its tokens, each tile checkpointed.

With gradient checkpointing on, the peak of a long-sequence step is the backward of one decoder
layer, and most of it is the MLP: four ``[L, intermediate]`` tensors (gate, up, activation,
product) and their gradients; at 48k tokens on Qwen2.5-VL-7B (intermediate 18944) that is about
15 GB. Run tile by tile under ``torch.utils.checkpoint``, the MLP holds one tile's worth instead
(the long-sequence "tiled MLP" of DeepSpeed's Arctic long-sequence training, done here with
PyTorch's checkpoint so it needs no DeepSpeed and gradients accumulate once per parameter).
The MLP is position-wise, so tiling changes no value. Tiles cut the tokens of all rows together
(``[B, L, H]`` is tiled as ``[B * L, H]``): a micro-batch of many short rows is tiled as much as one
long row of the same size.

>>> tile_mlps(model, tile_tokens=8192)   # doctest: +SKIP
28
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ovr.models.lm_head import synced_count

DEFAULT_TILE = 8192  # tokens per MLP tile


def _tiled_forward(module: nn.Module, forward, tile_tokens: int, x: torch.Tensor) -> torch.Tensor:
    params = [p for p in module.parameters() if p.requires_grad]
    if not (torch.is_grad_enabled() and (x.requires_grad or params)):
        return forward(x)
    tokens = x.reshape(-1, x.shape[-1])  # every row's tokens, in order
    n = synced_count(tokens.shape[0], tile_tokens, module)
    if n == 1:
        return forward(x)
    tiles = [checkpoint(forward, t, use_reentrant=False) for t in torch.tensor_split(tokens, n, dim=0)]
    return torch.cat(tiles, dim=0).reshape(*x.shape[:-1], -1)


def _is_decoder_mlp(module: nn.Module) -> bool:
    return all(isinstance(getattr(module, name, None), nn.Linear) for name in ("gate_proj", "up_proj", "down_proj"))


def tile_mlps(model: nn.Module, tile_tokens: int = DEFAULT_TILE, under: str = "language_model") -> int:
    """Tile the gated MLPs (``gate_proj``/``up_proj``/``down_proj``) of the modules named
    ``*{under}*`` (the decoder, not the vision tower); returns how many were tiled."""
    if tile_tokens < 1:
        raise ValueError(f"tile_tokens must be >= 1, got {tile_tokens}")
    count = 0
    for name, module in model.named_modules():
        if under in name and _is_decoder_mlp(module):
            original = getattr(module, "_untiled_forward", module.forward)
            module._untiled_forward = original
            module.forward = partial(_tiled_forward, module, original, tile_tokens)
            count += 1
    if not count:
        raise ValueError(f"no gated MLP under {under!r} in {type(model).__name__}")
    return count


def untile_mlps(model: nn.Module) -> int:
    """Undo :func:`tile_mlps`; returns how many MLPs were restored."""
    count = 0
    for module in model.modules():
        if "_untiled_forward" in vars(module):
            original = vars(module).pop("_untiled_forward")
            if getattr(original, "__func__", None) is type(module).forward:
                del module.__dict__["forward"]  # back to the class's forward
            else:
                module.forward = original
            count += 1
    return count
