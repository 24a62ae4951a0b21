"""Procedural data for the offline default: language-only traces (cold start) and drawn image tasks (RL, eval).

Everything is a pure function of ``(n, seed, difficulty, ...)``: item ``i`` draws from its own
``random.Random(f"{seed}:{i}")``, so sets are reproducible byte for byte and any prefix of a larger
set equals the smaller set. Answers are known by construction and always fit in ``\\boxed{}``.

>>> s = text_samples(1, seed=0)[0]
>>> s.split, s.messages[-1].content.endswith("}.")
('sft', True)
"""

from __future__ import annotations

import io
import random

from ovr.data.prompts import DEFAULT_TEMPLATE, to_prompt
from ovr.data.text_tasks import TEXT_TASKS
from ovr.data.visual_tasks import VISUAL_TASKS
from ovr.schema import ImageRef, Message, Sample, Split

TEXT_SOURCE = "synthetic_text"
VISUAL_SOURCE = "synthetic_visual"


def _rng(seed: int, i: int, salt: str) -> random.Random:
    return random.Random(f"{salt}:{seed}:{i}")


def _check_difficulty(difficulty: int) -> None:
    if not 1 <= difficulty <= 5:
        raise ValueError(f"difficulty must lie in 1..5, got {difficulty}")


def png_bytes(image) -> bytes:
    """Deterministic PNG encoding of a PIL image."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def text_samples(
    n: int,
    seed: int,
    difficulty: int = 1,
    split: Split = "sft",
    template: str = DEFAULT_TEMPLATE,
    check_rate: float = 0.3,
) -> list[Sample]:
    """``n`` language-only arithmetic/logic items with a short step-by-step trace ending in ``\\boxed{}``.

    Tasks rotate through :data:`ovr.data.text_tasks.TEXT_TASKS`; a share ``check_rate`` of the
    traces add a verification line ("Let me recheck: ..."), the reflection behaviour the recipe
    transfers. For ``split="sft"`` the sample carries ``messages`` (user + assistant); for other
    splits it is a bare prompt.
    """
    _check_difficulty(difficulty)
    if n < 0:
        raise ValueError("n must be >= 0")
    names = sorted(TEXT_TASKS)
    out = []
    for i in range(n):
        rng = _rng(seed, i, f"text:{difficulty}")
        name = names[i % len(names)]
        task = TEXT_TASKS[name](rng, difficulty)
        lines = list(task.steps)
        if task.check and rng.random() < check_rate:
            lines.append(task.check)
        lines.append(f"The answer is \\boxed{{{task.answer}}}.")
        prompt = to_prompt(task.question, 0, template)
        messages = None
        if split == "sft":
            messages = [Message(role="user", content=prompt), Message(role="assistant", content="\n".join(lines))]
        out.append(
            Sample(
                id=f"{TEXT_SOURCE}-s{seed}-d{difficulty}-{i:07d}",
                source=TEXT_SOURCE,
                split=split,
                modality="text",
                prompt=prompt,
                messages=messages,
                answer=task.answer,
                answer_type=task.answer_type,
                subject=name,
                difficulty=float(difficulty),
                provenance={"generator": "ovr.data.synthetic.text_samples", "seed": seed, "index": i},
            )
        )
    return out


def visual_samples(
    n: int,
    seed: int,
    tasks: list[str] | None = None,
    difficulty: int = 1,
    image_size: int = 112,
    split: Split = "rl",
    template: str = DEFAULT_TEMPLATE,
) -> list[Sample]:
    """``n`` image tasks (PNG bytes inline), rotating through ``tasks`` (default: all of
    :data:`ovr.data.visual_tasks.VISUAL_TASKS`). ``source`` is ``synthetic_visual``, ``subject``
    the task name."""
    _check_difficulty(difficulty)
    if n < 0:
        raise ValueError("n must be >= 0")
    tasks = list(tasks) if tasks else sorted(VISUAL_TASKS)
    unknown = [t for t in tasks if t not in VISUAL_TASKS]
    if unknown:
        raise ValueError(f"unknown visual tasks {unknown}; known: {sorted(VISUAL_TASKS)}")
    if image_size < 28:
        raise ValueError("image_size must be >= 28")
    out = []
    for i in range(n):
        name = tasks[i % len(tasks)]
        rng = _rng(seed, i, f"visual:{name}:{difficulty}:{image_size}")
        task = VISUAL_TASKS[name](rng, difficulty, image_size)
        data = png_bytes(task.image)
        out.append(
            Sample(
                id=f"{VISUAL_SOURCE}-s{seed}-d{difficulty}-{i:07d}",
                source=VISUAL_SOURCE,
                split=split,
                modality="image",
                prompt=to_prompt(task.question, 1, template),
                images=[ImageRef.from_bytes(data)],
                answer=task.answer,
                answer_type=task.answer_type,
                subject=name,
                difficulty=float(difficulty),
                provenance={"generator": "ovr.data.synthetic.visual_samples", "seed": seed, "index": i},
            )
        )
    return out
