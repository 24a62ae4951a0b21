"""``GatheredWeights`` declares its parameters in the order it yields them, whatever the grouping
(vLLM's NCCL sender raises at the first name where the two differ: tests/rollout/test_nccl_vllm_sender.py
runs vLLM's own code on the 7B names)."""

from __future__ import annotations

import torch
from torch import nn

from ovr.rl.gathered import GatheredWeights


def model() -> nn.Module:
    m = nn.Module()
    m.embed = nn.Embedding(5, 2)
    m.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3, bias=False)])
    m.norm = nn.LayerNorm(3)
    m.head = nn.Linear(3, 5, bias=False)
    return m


def unindexed_last(names: list[str]) -> list[list[str]]:
    """A grouping that reorders, as vLLM's ``layerwise_groups`` does: layers first, the rest last."""
    layers = [n for n in names if n.startswith("layers.")]
    return [[n for n in layers if n.startswith(f"layers.{i}.")] for i in range(2)] + [
        [n for n in names if n not in layers]
    ]


def test_declared_order_is_iteration_order_for_a_reordering_grouping():
    w = GatheredWeights(model(), zero3=False, grouping=unindexed_last)
    yielded = [(n, t.dtype, tuple(t.shape)) for n, t in w]
    assert w.shapes() == yielded  # base commit: shapes() in named_parameters() order
    assert [n for n, _, _ in yielded] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "embed.weight", "norm.weight", "norm.bias", "head.weight"
    ]  # fmt: skip


def test_default_grouping_keeps_named_parameters_order():
    """Folder pushes and checkpoints (``layer_groups``) see the order they always did."""
    m = model()
    w = GatheredWeights(m, zero3=False)
    assert [n for n, _, _ in w.shapes()] == [n for n, _ in m.named_parameters()] == [n for n, _ in w]
    assert w.shapes()[0] == ("embed.weight", torch.float32, (5, 2))
