"""Cross entropy over assistant tokens: the training loss and a per-sample view of it.

The training loss is the token mean over the whole optimizer step: the summed token losses of a
micro-batch divided by the labelled-token count of all micro-batches of the step (the Trainer
passes that count as ``num_items_in_batch``), so gradient accumulation and packing weigh every
assistant token the same, whatever row or micro-batch it lands in.

The loss is computed from the hidden states of the labelled positions only, the LM head run on a
chunk of tokens at a time (:mod:`ovr.models.lm_head`): a 64k-token packed row never has its
``[L, V]`` logits in memory. :func:`token_losses` is the same loss from full logits (the reference,
and the per-sample view used to check packing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ovr.models.lm_head import DEFAULT_CHUNK, HeadInput, token_logprobs
from ovr.sft.encode import IGNORE


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position next-token loss, shape (B, L); 0 where the next label is ignored.

    Position t predicts label t+1, so the last position of a row is never a target.
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(shift_labels.shape)
    return F.pad(loss, (0, 1))


def hidden_token_losses(
    head_input: HeadInput, labels: torch.Tensor, chunk_size: int = DEFAULT_CHUNK, index: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`token_losses` from the final hidden states: only labelled positions reach the LM head.

    ``index`` (``[2, N]`` row, column) names the positions to score when the caller knows them
    (default: every position whose next label is not ignored).
    """
    shift_labels = labels[:, 1:]
    rows, cols = (shift_labels != IGNORE).nonzero(as_tuple=True) if index is None else index
    logp, _ = token_logprobs(
        head_input.head, head_input.hidden[rows, cols], shift_labels[rows, cols], chunk_size=chunk_size
    )
    return torch.zeros(labels.shape, dtype=logp.dtype, device=logp.device).index_put((rows, cols), -logp)


def step_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """``compute_loss_func`` for the Trainer: summed token loss / labelled tokens of the step.

    ``outputs["head_input"]`` is the forward's captured LM-head input
    (:func:`ovr.models.lm_head.capture_head_input`, which :class:`ovr.sft.callbacks.PackedTrainer` applies).
    """
    head_input = outputs.get("head_input") if hasattr(outputs, "get") else None
    if head_input is None:
        raise ValueError("step_loss needs outputs['head_input']: run the forward inside capture_head_input")
    losses = hidden_token_losses(head_input, labels.to(head_input.hidden.device))
    if num_items_in_batch is None:
        num_items_in_batch = (labels[:, 1:] != IGNORE).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(losses.device)
    return losses.sum() / num_items_in_batch


def segment_losses(logits: torch.Tensor, labels: torch.Tensor, segment_lengths: list[list[int]]) -> list[float]:
    """Mean assistant-token loss of each segment, rows left to right (what packing must not change)."""
    losses = token_losses(logits, labels)
    counted = F.pad(labels[:, 1:] != IGNORE, (0, 1))
    out = []
    for row, lengths in enumerate(segment_lengths):
        at = 0
        for n in lengths:
            # a segment's targets are its own labels at t+1 < at+n: the last position predicts nothing
            sl = slice(at, at + n - 1)
            out.append(float(losses[row, sl].sum() / counted[row, sl].sum().clamp(min=1)))
            at += n
    return out
