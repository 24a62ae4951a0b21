"""Sequence packing with per-sample isolation under Qwen2.5-VL's M-RoPE.

Rows are built by best-fit decreasing: samples, longest first, each go into the row whose free
space fits them most tightly (O(n log n) through a sorted list of free-space values).

A batch carries **no attention mask** and ``position_ids`` of shape ``(B, 4, L)`` (the trainer
moves the axis to ``(4, B, L)``, the layout Qwen2.5-VL's text model documents for packed input):
row 0 holds the text positions, restarting at 0 at every segment; rows 1-3 hold the M-RoPE
(temporal, height, width) positions of each segment, also restarting at 0. transformers turns the
restarts of row 0 into a block-diagonal causal mask for sdpa/eager (``find_packed_sequence_indices``)
and into ``cu_seqlens`` for flash-attention-2, so a segment attends only to itself and is rotated
exactly as if it were alone. Row padding is one more segment, fully masked out of the loss.
Images of all segments are concatenated in sequence order, which is the order Qwen2.5-VL scatters
image features into ``<|image_pad|>`` tokens.
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
    """Row ids -> a model batch (see the module docstring for the layout)."""

    def __init__(self, encoded: list[Encoded], rows: list[list[int]], pad_id: int, pad_to_multiple: int = 8):
        self.encoded = encoded
        self.rows = rows
        self.pad_id = pad_id
        self.pad_to_multiple = pad_to_multiple

    def __call__(self, row_ids: list[int]) -> dict:
        segs = [[self.encoded[i] for i in self.rows[r]] for r in row_ids]
        lens = [sum(len(s) for s in row) for row in segs]
        width = max(lens)
        width = -(-width // self.pad_to_multiple) * self.pad_to_multiple
        b = len(row_ids)
        input_ids = np.full((b, width), self.pad_id, dtype=np.int64)
        labels = np.full((b, width), IGNORE, dtype=np.int64)
        positions = np.zeros((b, 4, width), dtype=np.int64)
        pixels, grids = [], []
        for k, row in enumerate(segs):
            at = 0
            for seg in row:
                n = len(seg)
                input_ids[k, at : at + n] = seg.input_ids
                labels[k, at : at + n] = seg.labels
                positions[k, :, at : at + n] = _segment_positions(seg)
                if seg.pixel_values is not None:
                    pixels.append(seg.pixel_values)
                    grids.append(seg.image_grid_thw)
                at += n
            positions[k, :, at:] = np.arange(width - at)  # padding: a segment of its own
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(positions),
            "row_ids": torch.tensor(row_ids, dtype=torch.long),
            "real_tokens": torch.tensor(sum(lens), dtype=torch.long),
        }
        if pixels:
            batch["pixel_values"] = torch.cat(pixels, dim=0)
            batch["image_grid_thw"] = torch.cat(grids, dim=0)
        return batch


def padding_efficiency(lengths: list[int], rows: list[list[int]], capacity: int) -> float:
    """Share of row capacity holding real tokens (1.0 = no padding at all)."""
    return sum(lengths) / (len(rows) * capacity) if rows else 0.0
