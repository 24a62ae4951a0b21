"""Source mixing and deterministic shuffling.

A source's ``weight`` scales how many of its (filtered) items enter its split: ``w < 1`` keeps a
seeded random ``round(w * n)`` of them, ``w > 1`` repeats the whole set ``floor(w)`` times plus a
seeded share of the remainder (repeats get ``#r<k>`` id suffixes, so ids stay unique).

>>> from ovr.data.synthetic import text_samples
>>> len(apply_weight(text_samples(10, 0), 0.5, seed=0)), len(apply_weight(text_samples(10, 0), 2.5, seed=0))
(5, 25)
"""

from __future__ import annotations

import random

from ovr.schema import Sample


def apply_weight(samples: list[Sample], weight: float, seed: int | str) -> list[Sample]:
    """``round(weight * len(samples))`` items (see module doc), order deterministic for a seed."""
    if weight < 0:
        raise ValueError("weight must be >= 0")
    n = len(samples)
    target = round(weight * n)
    if target == n:
        return list(samples)
    rng = random.Random(f"mix:{seed}")
    out: list[Sample] = []
    rounds, rest = divmod(target, n) if n else (0, 0)
    for k in range(rounds):
        out += samples if k == 0 else [s.model_copy(update={"id": f"{s.id}#r{k}"}) for s in samples]
    picked = sorted(rng.sample(range(n), rest)) if rest else []
    suffix = f"#r{rounds}" if rounds else ""
    out += [samples[i].model_copy(update={"id": samples[i].id + suffix}) if suffix else samples[i] for i in picked]
    return out


def shuffled(samples: list[Sample], seed: int | str) -> list[Sample]:
    """A seeded permutation (the input is left as is)."""
    out = list(samples)
    random.Random(f"shuffle:{seed}").shuffle(out)
    return out
