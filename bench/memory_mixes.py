"""The worst micro-batches the 7B recipe admits, built by the trainer's own batching code.

RL: a rank's rows (prompt + response, text or with the largest image the processor admits) go
through :class:`ovr.rl.update.Batcher` with the recipe's token budget (``rl.max_tokens_per_micro``):
the micro-batch traced is the fullest one it plans, packed by :func:`ovr.rl.packed.pack_batch`.
The row mixes that stress a packed micro-batch most at each length stage:

* ``one row``: one text row, a long prompt and the stage's longest response (what the bench traced
  before micro-batches were packed; the baseline of the ratio column);
* ``1 long + short``: that row, the rest of the budget filled with short text rows;
* ``short rows``: the budget filled with short text rows only;
* ``1 long image + short image``: an image prompt with the stage's longest response, the rest
  filled with short rows each showing its own largest image (every image through the vision tower);
* ``image rows``: the budget filled with short rows, each with its own largest image.

SFT: documents are packed into rows of ``sft.max_seq_len`` by :func:`ovr.sft.packing.pack_rows`
and collated by :class:`ovr.sft.packing.PackedCollator` (one 64k document, or several).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SHORT_PROMPT, SHORT_RESPONSE = 256, 256  # a short text row: 512 tokens
IMAGE_TEXT = 200  # text tokens of an image prompt besides its image


@dataclass(frozen=True)
class RowSpec:
    """One experience row: prompt tokens (text besides any image), response tokens, an image or not."""

    prompt: int
    response: int
    image: bool = False


@dataclass(frozen=True)
class Mix:
    """A named set of rows (RL) or documents (SFT, ``rows`` of response-only specs: document lengths)."""

    name: str
    rows: tuple[RowSpec, ...]


@dataclass
class Row:
    """What :class:`ovr.rl.update.Batcher` reads of an experience row."""

    prompt: object
    response_ids: list[int]


def largest_image_grid(max_pixels: int, patch: int = 14, merge: int = 2) -> tuple[int, int, int]:
    """``(t, h, w)`` patch grid of the image with the most tokens within ``max_pixels`` (Qwen2.5-VL
    resizes to multiples of ``patch * merge`` pixels; one token per ``merge x merge`` patches).

    >>> largest_image_grid(1280 * 28 * 28)
    (1, 64, 80)
    """
    tokens = max_pixels // (patch * merge) ** 2
    a = int(tokens**0.5)
    while tokens % a:
        a -= 1
    return 1, merge * a, merge * (tokens // a)


def image_tokens(grid: tuple[int, int, int], merge: int = 2) -> int:
    return grid[0] * grid[1] * grid[2] // merge**2


def rl_mixes(
    response: int,
    budget: int,
    prompt: int,
    image_tokens_: int,
    short: tuple[int, int] = (SHORT_PROMPT, SHORT_RESPONSE),
    image_text: int = IMAGE_TEXT,
) -> list[Mix]:
    """The row mixes of one length stage (see the module docstring): ``prompt`` tokens before the
    long row's ``response``, ``short`` (prompt, response) rows, ``image_text`` text tokens beside an image."""
    long, image_long = RowSpec(prompt, response), RowSpec(image_text, response, image=True)
    image_short = RowSpec(image_text, short[1], image=True)
    short = RowSpec(*short)

    def fill(first: list[RowSpec], each: RowSpec) -> tuple[RowSpec, ...]:
        size = lambda r: r.prompt + r.response + (image_tokens_ + 2 if r.image else 0)  # noqa: E731
        left = budget - sum(size(r) for r in first)
        return (*first, *[each] * max(0, left // size(each)))

    return [
        Mix("one row", (long,)),
        Mix("1 long + short", fill([long], short)),
        Mix("short rows", fill([], short)),
        Mix("1 long image + short image", fill([image_long], image_short)),
        Mix("image rows", fill([], image_short)),
    ]


def sft_mixes(max_seq_len: int) -> list[Mix]:
    """Packed rows of one long document, of eight, and of 64."""
    docs = lambda n: tuple(RowSpec(0, max_seq_len // n) for _ in range(n))  # noqa: E731
    return [Mix("1 document", docs(1)), Mix("8 documents", docs(8)), Mix("64 documents", docs(64))]


def _prompt(spec: RowSpec, config, grid: tuple[int, int, int], rope_index):
    """A synthetic prompt (token ids inside any vocabulary) with its image's patches and positions."""
    from ovr.rl.forward import EncodedPrompt
    from ovr.rl.packed import prompt_rope

    text = [10 + i % 500 for i in range(spec.prompt)]
    if not spec.image:
        return EncodedPrompt(text, None, None)
    half = spec.prompt // 2
    n = image_tokens(grid)
    ids = text[:half] + [config.vision_start_token_id] + [config.image_token_id] * n + [config.vision_end_token_id]
    vc = config.vision_config
    dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size**2
    pixels = torch.zeros(1, dim, dtype=torch.bfloat16).expand(grid[0] * grid[1] * grid[2], dim)
    prompt = EncodedPrompt(ids + text[half:], pixels, torch.tensor([grid]))
    prompt_rope(prompt, rope_index, config.image_token_id)  # the model's M-RoPE positions, cached
    return prompt


def vision_inputs(vision_config, grid_thw: torch.Tensor) -> dict:
    """The vision tower's grid-derived inputs, computed by transformers' own functions ahead of the
    traced step (the fake step cannot run their Python loops over grid values)."""
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

    merge = vision_config.spatial_merge_size
    cu = get_vision_cu_seqlens(grid_thw)
    window_index, cu_window = get_vision_window_index(
        grid_thw, merge, vision_config.window_size, vision_config.patch_size
    )
    return {
        "position_ids": get_vision_position_ids(grid_thw, merge),
        "cu_seqlens": cu,
        "max_seqlen": int((cu[1:] - cu[:-1]).max()),
        "window_index": window_index,
        "cu_window_seqlens": cu_window,
        "max_window_seqlen": int((cu_window[1:] - cu_window[:-1]).max()),
    }


def rl_micro_batch(mix: Mix, config, budget: int, grid: tuple[int, int, int], rope_index):
    """The fullest micro-batch :class:`ovr.rl.update.Batcher` plans for ``mix`` (one rank's rows),
    packed, with a description: ``(batch, rows, images, tokens)``."""
    from ovr.rl.update import Batcher

    rows = []
    for spec in mix.rows:  # rows of an image spec each show their own image (distinct prompts)
        rows.append(Row(_prompt(spec, config, grid, rope_index), [11] * spec.response))
    batcher = Batcher(rows, 0, config.image_token_id, "cpu", torch.bfloat16, budget=budget)
    lengths = batcher.lengths()
    micro = max(batcher.passes(list(range(len(rows)))), key=lambda idx: sum(lengths[i] for i in idx))
    batch = batcher(micro)
    if batch.unique_grid_thw is not None:
        batch.vision_kwargs = vision_inputs(config.vision_config, batch.unique_grid_thw)
    images = 0 if batch.unique_grid_thw is None else len(batch.unique_grid_thw)
    return batch, len(micro), images, sum(batch.seq_lens)


def sft_micro_batch(mix: Mix, max_seq_len: int, micro_rows: int = 1) -> tuple[dict, int, int, int]:
    """The first ``micro_rows`` packed rows (``sft.micro_batch_size``) of ``mix``'s documents, collated
    as the SFT trainer collates them: ``(batch, documents, 0 images, tokens)``. Every token but each
    document's first is labelled."""
    import numpy as np

    from ovr.sft.encode import IGNORE, Encoded
    from ovr.sft.packing import PackedCollator, pack_rows

    docs = []
    for i, spec in enumerate(mix.rows):
        ids = np.full(spec.response, 11, dtype=np.int32)
        labels = ids.copy()
        labels[0] = IGNORE
        docs.append(Encoded(f"doc{i}", ids, labels))
    rows = pack_rows([len(d) for d in docs], max_seq_len)
    micro = list(range(min(micro_rows, len(rows))))
    batch = PackedCollator(docs, rows, pad_id=0)(micro)
    return batch, sum(len(rows[r]) for r in micro), 0, int(batch["real_tokens"])
