"""Padding-free micro-batches: a micro-batch's rows as one sequence, each row positioned on its own.

The rows (prompt + response) are concatenated into one ``[1, N]`` sequence, ``N`` the sum of
their real lengths: no padding, so the token budget counts real tokens and the MLP tiles and
LM-head chunks run over exactly those. Each row keeps the positions it has alone: text positions
``0..n-1`` (what tells the attention where rows start) and Qwen2.5-VL's 3-D M-RoPE positions, computed for an image
prompt by the model's own ``get_rope_index`` on that prompt alone (at the first forward that
sees it, then cached on the prompt) and
continued by one per response token, as ``get_rope_index`` continues text after an image. The
attention sees the rows' boundaries (``ovr_cu_seqlens``) and never a mask
(:mod:`ovr.models.attention`).

>>> b = pack_batch([prompt, prompt], [[5, 6], [7]], pad_id=0, image_token_id=9)   # doctest: +SKIP
>>> b.input_ids.shape, b.seq_lens                                                  # doctest: +SKIP
(torch.Size([1, 2 * len(prompt.input_ids) + 3]), [len(prompt.input_ids) + 2, len(prompt.input_ids) + 1])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ovr.rl.forward import EncodedPrompt, SeqBatch, row_images


def prompt_rope(prompt: EncodedPrompt, rope_index: Callable | None, image_token_id: int) -> torch.Tensor | None:
    """``[3, P]`` M-RoPE positions of the prompt alone (``arange`` for a text prompt); None for an
    image prompt not seen yet when no ``rope_index`` is given."""
    n = len(prompt.input_ids)
    if prompt.image_grid_thw is None:
        return torch.arange(n).expand(3, n)
    if prompt.rope is None and rope_index is not None:
        ids = torch.tensor([prompt.input_ids])
        pos, _ = rope_index(ids, mm_token_type_ids=(ids == image_token_id).int(), image_grid_thw=prompt.image_grid_thw)
        prompt.rope = pos[:, 0].long().cpu()
    return prompt.rope


def row_positions(rope: torch.Tensor, n_response: int) -> torch.Tensor:
    """``[4, P + R]``: text positions, then the three M-RoPE axes, of one prompt+response row."""
    tail = rope[:, -1:] + 1 + torch.arange(n_response)  # a prompt ends in text: the response continues it
    n = rope.shape[1] + n_response
    return torch.cat([torch.arange(n)[None], torch.cat([rope, tail], dim=1)])


def fill_rope(batch: SeqBatch, rope_index: Callable, image_token_id: int) -> None:
    """Write the M-RoPE positions of the batch's image rows left pending (computed by the model
    that reads the batch, then cached on the prompt)."""
    for prompt, start, n_response in batch.pending_rope:
        rope = row_positions(prompt_rope(prompt, rope_index, image_token_id), n_response)
        batch.position_ids[:, 0, start : start + rope.shape[1]] = rope.to(batch.position_ids.device)
    batch.pending_rope = []


def pack_batch(
    prompts: list[EncodedPrompt],
    responses: list[list[int]],
    pad_id: int,
    image_token_id: int,
    rope_index: Callable | None = None,
) -> SeqBatch:
    """Rows ``prompt + response`` back to back in one sequence (see the module docstring).

    A sampled ``<|image_pad|>`` inside a response enters as the pad token (no image behind it), as
    in :func:`ovr.rl.forward.build_batch`. ``rope_index`` is the model's ``get_rope_index``; without
    it, image prompts whose positions are not cached yet get them from the model at its forward.
    """
    if len(prompts) != len(responses) or not prompts:
        raise ValueError("one prompt per response, and at least one row, are required")
    rows = [p.input_ids + [pad_id if t == image_token_id else t for t in r] for p, r in zip(prompts, responses)]
    lens = [len(r) for r in rows]
    starts = [sum(lens[:b]) for b in range(len(rows))]
    T = max(1, max(len(r) for r in responses))
    resp = torch.full((len(rows), T), pad_id, dtype=torch.long)
    rmask = torch.zeros((len(rows), T))
    positions = torch.zeros((len(rows), T), dtype=torch.long)
    index_rows, index_cols = [], []
    for b, (p, r) in enumerate(zip(prompts, responses)):
        index_rows += [b] * len(r)
        index_cols += range(len(r))
        if r:
            resp[b, : len(r)] = torch.tensor(r)
            rmask[b, : len(r)] = 1
        first = starts[b] + len(p.input_ids) - 1  # the prompt's last token predicts the first response token
        positions[b] = (first + torch.arange(T)).clamp(max=starts[b] + lens[b] - 1)
    input_ids = torch.tensor([t for r in rows for t in r])[None]
    pieces, pending = [], []
    for b, (p, r) in enumerate(zip(prompts, responses)):
        rope = prompt_rope(p, rope_index, image_token_id)
        if rope is None:  # filled in by the model's forward (SeqBatch.model_inputs)
            pending.append((p, starts[b], len(r)))
            rope = torch.zeros(3, len(p.input_ids), dtype=torch.long)
        pieces.append(row_positions(rope, len(r)))
    position_ids = torch.cat(pieces, dim=1)
    return SeqBatch(
        input_ids=input_ids,
        attention_mask=None,
        mm_token_type_ids=(input_ids == image_token_id).long(),
        **row_images(prompts),
        response_ids=resp,
        response_mask=rmask,
        positions=positions,
        response_index=torch.tensor([index_rows, index_cols], dtype=torch.long).reshape(2, -1),
        position_ids=position_ids[:, None, :],
        seq_lens=lens,
        pending_rope=pending,
    )
