"""Token log-probs and cross entropy from hidden states, a chunk of tokens at a time.

Qwen2.5-VL-7B's vocabulary has 152,064 entries: the logits of one 48k-token response are 15 GB in
bf16, and the fp32 copy and log-softmax of the plain path add 60 GB more. Here the LM head is run
on ``chunk_size`` selected tokens at a time, the chunk's logits upcast to fp32 and reduced by
``logsumexp`` at once, so no more than ``[chunk_size, V]`` logits exist at any moment. With
gradients, each chunk runs under ``torch.utils.checkpoint``: the backward recomputes one chunk's
logits instead of keeping every chunk's (the usual chunked cross-entropy trick).

The hidden states come from the model's own forward: :func:`capture_head_input` feeds the LM head
no position and hands back the tensor it was about to project, so the forward still goes through
the top-level module (and any DeepSpeed/DDP wrapper), whose hooks must run.

>>> with capture_head_input(model):                                   # doctest: +SKIP
...     out = model(input_ids=ids, attention_mask=mask, use_cache=False)
>>> head_in = out["head_input"]                                       # hidden [B, L, H]
>>> logp, _ = token_logprobs(head_in.head, head_in.hidden[0, :-1], ids[0, 1:])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK = 1024  # tokens per LM-head chunk: [1024, 152064] fp32 logits = 0.6 GB


@dataclass
class HeadInput:
    """What the LM head was about to project: the final hidden states and the head itself."""

    hidden: Tensor  # [B, L, H], after the final norm
    head: nn.Module  # the LM head (its forward hooks, e.g. ZeRO-3's gather, run on every call)


@contextmanager
def capture_head_input(model: nn.Module, wrapper: nn.Module | None = None) -> Iterator[None]:
    """While active, ``model``'s forward runs its LM head on zero positions (its logits are
    ``[B, 0, V]``) and its output carries ``output["head_input"]``, a :class:`HeadInput`.

    Only the head call made inside the forward is intercepted: the head can be applied to the
    captured states (e.g. by a loss) while the context is still open. ``wrapper`` is what the
    caller actually calls (DDP, a DeepSpeed engine): the output gets its entry only after the
    wrapper's forward returns, since DDP rebuilds a ModelOutput from its declared fields.
    """
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (LM head) to capture")
    state: dict = {"in_forward": False}

    def begin(module, args):
        state["in_forward"] = True

    def keep(module, args):
        if not state["in_forward"]:
            return None
        state["hidden"] = args[0]
        return (args[0][..., :0, :], *args[1:])

    def attach(module, args, output):
        state["in_forward"] = False
        if "hidden" not in state:
            raise RuntimeError(f"{type(model).__name__}'s forward did not call its LM head")
        if not hasattr(output, "keys"):
            raise TypeError("capture_head_input needs a model returning a ModelOutput (return_dict=True)")
        output["head_input"] = HeadInput(state.pop("hidden"), head)
        return output

    outer = wrapper if wrapper is not None else model
    handles = [
        outer.register_forward_pre_hook(begin),
        head.register_forward_pre_hook(keep),
        outer.register_forward_hook(attach),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _is_zero3_partitioned(module: nn.Module) -> bool:
    """DeepSpeed ZeRO-3 marks the parameters it partitions with a ``ds_id``."""
    return any(hasattr(p, "ds_id") for p in module.parameters())


def synced_count(n_tokens: int, per_piece: int, module: nn.Module) -> int:
    """Pieces of at most ``per_piece`` tokens covering ``n_tokens`` (at least one, so every rank
    runs ``module``).

    Under ZeRO-3 every call of ``module`` all-gathers its weights, a collective: all ranks must
    call it equally often, so the count is the maximum over the ranks.
    """
    n = max(1, -(-n_tokens // per_piece))
    if _is_zero3_partitioned(module) and torch.distributed.is_available() and torch.distributed.is_initialized():
        t = torch.tensor([n], device=next(module.parameters()).device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        n = int(t.item())
    return n


def _chunk_stats(
    head: nn.Module, hidden: Tensor, targets: Tensor, temperature: float, with_entropy: bool, entropy_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """Log-prob of ``targets`` and (optionally) entropy for one chunk; logits upcast here only."""
    z = head(hidden).float()
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z.gather(-1, targets[:, None]).squeeze(-1) - lse
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            probs = torch.softmax(z, dim=-1)
            # sum_v p_v z_v as a batched dot product: no second [chunk, V] temporary
            entropy = lse - (probs.unsqueeze(-2) @ z.unsqueeze(-1)).reshape(-1)
    return logp, entropy


def token_logprobs(
    head: nn.Module,
    hidden: Tensor,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK,
    with_entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``log softmax(head(hidden) / temperature)[targets]`` per token (fp32, shape ``[N]``), and the
    softmax entropy when ``with_entropy`` (detached unless ``entropy_grad``).

    ``hidden`` is ``[N, H]`` (the selected positions only), ``targets`` ``[N]``.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"hidden must be [N, H] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in head.parameters()))
    logps, entropies = [], []
    for i in range(synced_count(len(hidden), chunk_size, head)):
        sl = slice(i * chunk_size, (i + 1) * chunk_size)
        args = (head, hidden[sl], targets[sl], temperature, with_entropy, entropy_grad)
        lp, ent = checkpoint(_chunk_stats, *args, use_reentrant=False) if needs_grad else _chunk_stats(*args)
        logps.append(lp)
        if ent is not None:
            entropies.append(ent if entropy_grad else ent.detach())
    return torch.cat(logps), (torch.cat(entropies) if with_entropy else None)
