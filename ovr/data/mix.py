"""Source mixing and deterministic shuffling.

A source's ``weight`` scales how many of its (filtered) items enter its split: ``w < 1`` keeps a
seeded random ``round(w * n)`` of them, ``w > 1`` repeats the whole set ``floor(w)`` times plus a
seeded share of the remainder (repeats get ``#r<k>`` id suffixes, so ids stay unique).
:func:`weight_plan` and :func:`permutation` give the same choices as index arrays, so a build can mix
and shuffle millions of rows that stay on disk.

>>> from ovr.data.synthetic import text_samples
>>> len(apply_weight(text_samples(10, 0), 0.5, seed=0)), len(apply_weight(text_samples(10, 0), 2.5, seed=0))
(5, 25)
"""

from __future__ import annotations

import random
from array import array

import numpy as np

from ovr.schema import Sample


def weight_plan(n: int, weight: float, seed: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``n`` items a ``weight`` keeps, in order: (item index, repeat number) arrays; repeat
    ``k > 0`` is the copy whose id gets ``#r<k>``."""
    if weight < 0:
        raise ValueError("weight must be >= 0")
    target = round(weight * n)
    if target == n:
        return np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    rng = random.Random(f"mix:{seed}")
    rounds, rest = divmod(target, n) if n else (0, 0)
    rows = [np.arange(n, dtype=np.int64)] * rounds
    repeats = [np.full(n, k, dtype=np.int64) for k in range(rounds)]
    if rest:
        rows.append(np.array(sorted(rng.sample(range(n), rest)), dtype=np.int64))
        repeats.append(np.full(rest, rounds, dtype=np.int64))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(repeats)


def apply_weight(samples: list[Sample], weight: float, seed: int | str) -> list[Sample]:
    """``round(weight * len(samples))`` items (see module doc), order deterministic for a seed."""
    rows, repeats = weight_plan(len(samples), weight, seed)
    out = []
    for i, k in zip(rows.tolist(), repeats.tolist()):
        out.append(samples[i] if k == 0 else samples[i].model_copy(update={"id": f"{samples[i].id}#r{k}"}))
    return out


def permutation(n: int, seed: int | str) -> np.ndarray:
    """The seeded order :func:`shuffled` puts ``n`` items in (``out[i]`` = input position), 8 bytes an item."""
    order = array("q", range(n))
    random.Random(f"shuffle:{seed}").shuffle(order)  # the swaps depend only on the length
    return np.frombuffer(order, dtype=np.int64).copy()


def shuffled(samples: list[Sample], seed: int | str) -> list[Sample]:
    """A seeded permutation (the input is left as is)."""
    return [samples[i] for i in permutation(len(samples), seed).tolist()]
