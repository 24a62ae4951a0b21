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
from collections.abc import Callable, Mapping

from ovr.config.behaviours import DEFAULT_BEHAVIOURS, TRACE_BEHAVIOURS, check_behaviours
from ovr.data.prompts import DEFAULT_TEMPLATE, to_prompt
from ovr.data.text_tasks import TEXT_TASKS, TextTask
from ovr.data.visual_tasks import VISUAL_TASKS
from ovr.registry import Registry
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


# --------------------------------------------------------------------------- behaviours of traces
#: trace writers by behaviour (the names are config's: ovr/config/behaviours.py; a new one is declared there)
TRACES: Registry[Callable[[TextTask, random.Random], list[str]]] = Registry("trace behaviour")


def register_trace(name: str, description: str = ""):
    """Register a trace writer under ``name`` (declared in config's TRACE_BEHAVIOURS if new)."""
    if name not in TRACE_BEHAVIOURS:
        TRACE_BEHAVIOURS.add(name, description or name)
    return TRACES.register(name)


RECHECK_OPENERS = ("Wait, let me recheck:", "Wait, that is wrong:")  # what a reflect trace says on noticing


@register_trace("direct")
def direct_trace(task: TextTask, rng: random.Random) -> list[str]:
    """The steps, straight."""
    return list(task.steps)


@register_trace("verify")
def verify_trace(task: TextTask, rng: random.Random) -> list[str]:
    """The steps, then a line checking the result another way ("Let me verify: ...")."""
    return [*task.steps, task.verify]


@register_trace("reflect")
def reflect_trace(task: TextTask, rng: random.Random) -> list[str]:
    """A slip, noticed ("Wait, let me recheck: ...") and corrected, ending at the right result."""
    first, *rest = task.fix
    return [*task.mistake, f"{rng.choice(RECHECK_OPENERS)} {first}", *rest]


def pick_behaviour(mix: Mapping[str, float], rng: random.Random) -> str:
    """One behaviour name drawn with the mix's shares (names in sorted order: dict order never matters)."""
    names = sorted(n for n, w in mix.items() if w > 0)
    return rng.choices(names, weights=[mix[n] for n in names])[0]


def text_samples(
    n: int,
    seed: int,
    difficulty: int = 1,
    split: Split = "sft",
    template: str = DEFAULT_TEMPLATE,
    behaviours: Mapping[str, float] | None = None,
) -> list[Sample]:
    """``n`` language-only arithmetic/logic items with a short step-by-step trace ending in ``\\boxed{}``.

    Tasks rotate through :data:`ovr.data.text_tasks.TEXT_TASKS`. Each trace shows one behaviour of
    :data:`TRACES`, drawn with the shares of ``behaviours`` (default :data:`DEFAULT_BEHAVIOURS`):
    ``reflect`` (a slip, "Wait, let me recheck: ...", the correction), ``verify`` (the result, then
    "Let me verify: ...") or ``direct``; the choice is in ``provenance["behaviour"]`` of ``sft``
    samples (the other splits carry no trace). The behaviour is drawn from its own rng, so the
    questions do not depend on the mix. For ``split="sft"`` the sample carries ``messages`` (user +
    assistant); for other splits it is a bare prompt.
    """
    _check_difficulty(difficulty)
    if n < 0:
        raise ValueError("n must be >= 0")
    mix = check_behaviours(DEFAULT_BEHAVIOURS if behaviours is None else behaviours)
    names = sorted(TEXT_TASKS)
    out = []
    for i in range(n):
        rng = _rng(seed, i, f"text:{difficulty}")
        name = names[i % len(names)]
        task = TEXT_TASKS[name](rng, difficulty)
        pick = _rng(seed, i, f"behaviour:{difficulty}")
        kind = pick_behaviour(mix, pick)
        lines = TRACES.get(kind)(task, pick) + [f"The answer is \\boxed{{{task.answer}}}."]
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
                provenance={"generator": "ovr.data.synthetic.text_samples", "seed": seed, "index": i}
                | ({"behaviour": kind} if messages else {}),
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
