"""Sequence packing with per-sample isolation under Qwen2.5-VL's M-RoPE.

Rows are built by best-fit decreasing: samples, longest first, each go into the row whose free
space fits them most tightly (O(n log n) through a sorted list of free-space values).

A micro-batch is padding-free: the samples of all its rows are concatenated into **one** sequence
``[1, N]`` (at most ``micro_batch_size`` rows of ``max_seq_len`` tokens; only a tail of padding up to
``pad_to_multiple``, its own segment, fully masked out of the loss), with ``position_ids`` of shape
``(1, 4, N)`` (the trainer moves the axis to ``(4, 1, N)``, the layout Qwen2.5-VL's text model
documents for packed input): row 0 holds the text positions, restarting at 0 at every sample; rows
1-3 hold the M-RoPE (temporal, height, width) positions of each sample, also restarting at 0. The
batch also carries the samples' boundaries (``ovr_cu_seqlens``, ``ovr_max_seqlen``), which
ovr's padding-free attention (:mod:`ovr.models.attention`) reads: each sample attends only to
itself with no ``[N, N]`` mask anywhere. (Under ``sdpa``/``eager`` transformers turns the restarts
of row 0 into a dense block-diagonal mask instead: same values, quadratic memory.) Each sample is
rotated exactly as if it were alone. Images of all samples are concatenated in sequence order,
which is the order Qwen2.5-VL scatters image features into ``<|image_pad|>`` tokens.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np
import torch

from ovr.sft.encode import IGNORE, Encoded


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Group sample indices into rows of at most ``capacity`` tokens (best-fit decreasing).

    >>> pack_rows([5, 3, 4, 2], capacity=8)
    [[0, 1], [2, 3]]
    """
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise ValueError(f"{len(too_long)} samples are longer than the row capacity {capacity}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free_keys: list[int] = []  # sorted distinct free-space values
    by_free: dict[int, list[int]] = {}  # free space -> row ids with it
    for i in order:
        need = lengths[i]
        j = bisect_left(free_keys, need)
        if j < len(free_keys):
            free = free_keys[j]
            row = by_free[free].pop(0)
            if not by_free[free]:
                del by_free[free]
                free_keys.pop(j)
        else:
            free, row = capacity, len(rows)
            rows.append([])
        rows[row].append(i)
        left = free - need
        if left > 0:
            if left not in by_free:
                by_free[left] = []
                insort(free_keys, left)
            by_free[left].append(row)
    return rows


def single_rows(n: int) -> list[list[int]]:
    """One sample per row (``packing: false``): rows are padded per batch instead."""
    return [[i] for i in range(n)]


class RowDataset(torch.utils.data.Dataset):
    """Rows of segment indices; items are row ids, the collator assembles the tensors."""

    def __init__(self, rows: list[list[int]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> int:
        return i


def _segment_positions(enc: Encoded) -> np.ndarray:
    """(4, L): text positions then the three M-RoPE axes, all starting at 0."""
    n = len(enc)
    text = np.arange(n, dtype=np.int64)
    mrope = enc.positions.astype(np.int64) if enc.positions is not None else np.broadcast_to(text, (3, n))
    return np.concatenate([text[None], mrope], axis=0)


class PackedCollator:
    """Row ids -> one padding-free model batch (see the module docstring for the layout)."""

    def __init__(self, encoded: list[Encoded], rows: list[list[int]], pad_id: int, pad_to_multiple: int = 1):
        self.encoded = encoded
        self.rows = rows
        self.pad_id = pad_id
        self.pad_to_multiple = pad_to_multiple

    def __call__(self, row_ids: list[int]) -> dict:
        from ovr.models.attention import segment_kwargs

        segs = [self.encoded[i] for r in row_ids for i in self.rows[r]]
        lens = [len(s) for s in segs]
        real = sum(lens)
        width = -(-real // self.pad_to_multiple) * self.pad_to_multiple
        input_ids = np.full((1, width), self.pad_id, dtype=np.int64)
        labels = np.full((1, width), IGNORE, dtype=np.int64)
        positions = np.zeros((1, 4, width), dtype=np.int64)
        pixels, grids = [], []
        at = 0
        for seg, n in zip(segs, lens):
            input_ids[0, at : at + n] = seg.input_ids
            labels[0, at : at + n] = seg.labels
            positions[0, :, at : at + n] = _segment_positions(seg)
            if seg.pixel_values is not None:
                pixels.append(seg.pixel_values)
                grids.append(seg.image_grid_thw)
            at += n
        if width > real:  # padding: a segment of its own
            positions[0, :, real:] = np.arange(width - real)
            lens.append(width - real)
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(positions),
            "row_ids": torch.tensor(row_ids, dtype=torch.long),
            "real_tokens": torch.tensor(real, dtype=torch.long),
            **segment_kwargs(lens),
        }
        if pixels:
            batch["pixel_values"] = torch.cat(pixels, dim=0)
            batch["image_grid_thw"] = torch.cat(grids, dim=0)
        return batch


def padding_efficiency(lengths: list[int], rows: list[list[int]], capacity: int) -> float:
    """Share of row capacity holding real tokens (1.0 = no padding at all)."""
    return sum(lengths) / (len(rows) * capacity) if rows else 0.0
