"""A probe of what reaches the attention: every mask handed to a transformers attention function
or to ``torch.nn.functional.scaled_dot_product_attention``, with the query length of that call.

Shared by the RL and SFT tests that assert no ``[L, L]``-sized mask is ever built for a
micro-batch (imported by path from tests/sft as well)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class MaskLog:
    """``(mask shape, query length)`` of every attention call that got a mask; calls counted."""

    masks: list[tuple[tuple[int, ...], int]] = field(default_factory=list)
    calls: int = 0

    def square(self) -> list[tuple[tuple[int, ...], int]]:
        """The masks with at least L x L entries (L: the call's query length)."""
        return [(shape, q) for shape, q in self.masks if q > 1 and torch.Size(shape).numel() >= q * q]


@contextmanager
def record_masks():
    """Wrap every registered transformers attention function and torch's SDPA for the block."""
    from transformers.modeling_utils import AttentionInterface

    log = MaskLog()
    mapping = AttentionInterface._global_mapping
    originals = dict(mapping)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def wrap(fn):
        def probe(module, query, key, value, attention_mask, *args, **kwargs):
            log.calls += 1
            if attention_mask is not None:
                log.masks.append((tuple(attention_mask.shape), query.shape[-2]))
            return fn(module, query, key, value, attention_mask, *args, **kwargs)

        return probe

    def sdpa_probe(query, key, value, attn_mask=None, *args, **kwargs):
        if attn_mask is not None:
            log.masks.append((tuple(attn_mask.shape), query.shape[-2]))
        return sdpa(query, key, value, attn_mask, *args, **kwargs)

    for name, fn in originals.items():
        mapping[name] = wrap(fn)
    torch.nn.functional.scaled_dot_product_attention = sdpa_probe
    try:
        yield log
    finally:
        mapping.update(originals)
        torch.nn.functional.scaled_dot_product_attention = sdpa
