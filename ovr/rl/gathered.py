"""A model's full weights, materialised a group (one layer) at a time — what weight pushes and
checkpoints read from a ZeRO-3 actor without ever holding the whole model on a GPU or on every rank.

Under ZeRO-3 each group is gathered with DeepSpeed's ``GatheredParameters``: a collective, so every
rank iterates the same groups in the same order — the main rank consumes them (writes a folder,
streams them over NCCL), the others :meth:`GatheredWeights.drain`. Without ZeRO-3 the parameters are
whole on every rank and iteration just reads them. Only the main rank copies tensors to the CPU.

>>> w = GatheredWeights(model, zero3=False)                  # doctest: +SKIP
>>> w.save_pretrained("out")  # main rank; others: w.drain()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import torch

_LAYER = re.compile(r"^(.*?\.(?:layers|blocks)\.\d+)\.")


def layer_groups(names: list[str]) -> list[list[str]]:
    """Consecutive names of one transformer layer/block together; every other name alone.

    >>> layer_groups(["embed.w", "layers.0.a", "layers.0.b", "layers.1.a", "norm.w"])
    [['embed.w'], ['layers.0.a', 'layers.0.b'], ['layers.1.a'], ['norm.w']]
    """
    groups: list[list[str]] = []
    key_of_last = None
    for name in names:
        m = _LAYER.match(name)
        key = m.group(1) if m else None
        if key is not None and key == key_of_last:
            groups[-1].append(name)
        else:
            groups.append([name])
        key_of_last = key
    return groups


class GatheredWeights:
    """Iterates ``(name, full tensor)`` of ``model``'s parameters in groups (see the module doc)."""

    def __init__(
        self, model: torch.nn.Module, zero3: bool, grouping: Callable[[list[str]], list[list[str]]] = layer_groups
    ):
        self.model, self.zero3, self.grouping = model, zero3, grouping
        self._params = dict(model.named_parameters())

    # ------------------------------------------------------------------ reading
    def groups(self) -> list[list[str]]:
        """The gather groups, in the order iteration reads them."""
        return self.grouping(list(self._params))

    def order(self) -> list[str]:
        """Every parameter name in the order iteration yields it (the groups, flattened): a grouping
        may reorder ``named_parameters()`` (vLLM's moves un-indexed names such as ``lm_head`` last)."""
        return [name for group in self.groups() for name in group]

    def shapes(self) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
        """``(name, dtype, full shape)`` of every parameter in iteration order, gathering nothing."""
        shape = {n: (p.dtype, tuple(getattr(p, "ds_shape", p.shape))) for n, p in self._params.items()}
        return [(n, *shape[n]) for n in self.order()]

    def iter_groups(self) -> Iterator[tuple[list[str], list[torch.Tensor]]]:
        """``(names, tensors)`` per group; the tensors are valid until the next group is read."""
        for names in self.groups():
            params = [self._params[n] for n in names]
            if not self.zero3:
                yield names, [p.detach() for p in params]
                continue
            import deepspeed

            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                yield names, [p.detach() for p in params]

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for names, tensors in self.iter_groups():
            yield from zip(names, tensors)

    def drain(self) -> None:
        """Take part in every gather without keeping anything (the ranks that do not write)."""
        for _ in self.iter_groups():
            pass

    def state_dict(self) -> dict[str, torch.Tensor]:
        """CPU copies of every parameter plus the module's persistent buffers (call on the main rank
        while the others :meth:`drain`)."""
        out = {n: t.to("cpu", copy=True) for n, t in self}
        params = set(self._params)
        out |= {k: v.detach().cpu() for k, v in self.model.state_dict().items() if k not in params}
        return out

    # ------------------------------------------------------------------ what the weight syncs call
    def save_pretrained(self, path, **kw):
        """``save_pretrained`` of the full weights (folder pushes and checkpoints)."""
        return self.model.save_pretrained(path, state_dict=self.state_dict(), **kw)

    def weight_source(self):
        """The same stream as a vLLM ``WeightSource`` (NCCL weight transfer).

        vLLM's trainer-side sender (``NCCLTrainerWeightTransferEngine._checked_iter``) raises at the
        first name where iteration differs from ``metadata()``, and the replicas size their receive
        buffers from ``metadata()``: both come from :meth:`order`, so they agree for any grouping.
        Built with ``vllm_grouping`` (as every rank then drains), ``groups()`` is also vLLM's own
        ``layerwise_groups`` of that metadata, which its default ``iter_groups`` checks."""
        from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource

        outer = self

        class _Source(WeightSource):
            def metadata(self):
                return [ParamMeta(n, d, s) for n, d, s in outer.shapes()]

            def __iter__(self):
                return iter(outer)

            def groups(self):
                return outer.groups()

            def iter_groups(self):
                return outer.iter_groups()

        return _Source()

    def __getattr__(self, name):  # config, dtype, ... of the model
        return getattr(self.model, name)


def vllm_grouping(names: list[str]) -> list[list[str]]:
    """vLLM's own gather groups (its NCCL engine packs the transfer by them)."""
    from vllm.distributed.weight_transfer.base import layerwise_groups

    return layerwise_groups(names)
