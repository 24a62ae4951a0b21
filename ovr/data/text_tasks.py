"""Language-only procedural tasks with short step-by-step traces (the tiny cold start).

Each task is a pure function ``(rng, difficulty) -> TextTask``. Several mirror the visual tasks in
words (counting listed shapes, reading bar heights, comparing sizes, angles of a triangle), so a
model cold-started on them has the reasoning pattern — and the ``\\boxed{}`` format — before it ever
sees an image, which is the transfer the recipe relies on. ``difficulty`` 1 keeps numbers tiny and
traces to one or two steps; higher levels widen ranges and add steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circles", "squares", "triangles"]
NAMES = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]


@dataclass(frozen=True)
class TextTask:
    """A question, its reasoning steps, and the exact answer."""

    question: str
    steps: list[str]
    answer: str
    answer_type: str  # "number" | "string"
    check: str | None = None  # an optional verification line (reflection behaviour)


TEXT_TASKS: dict[str, Callable[[random.Random, int], TextTask]] = {}


def _task(name: str):
    def deco(fn):
        if name in TEXT_TASKS:
            raise ValueError(f"duplicate text task {name}")
        TEXT_TASKS[name] = fn
        return fn

    return deco


@_task("add_sub")
def add_sub(rng: random.Random, d: int) -> TextTask:
    hi = 9 * d
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    if rng.random() < 0.5:
        return TextTask(f"What is {a} + {b}?", [f"{a} + {b} = {a + b}."], str(a + b), "number",
                        f"Let me recheck: {a + b} - {b} = {a}.")
    a, b = max(a, b), min(a, b)
    return TextTask(f"What is {a} - {b}?", [f"{a} - {b} = {a - b}."], str(a - b), "number",
                    f"Let me recheck: {a - b} + {b} = {a}.")


@_task("multiply")
def multiply(rng: random.Random, d: int) -> TextTask:
    a, b = rng.randint(2, 3 + 2 * d), rng.randint(2, 3 + 2 * d)
    return TextTask(f"What is {a} * {b}?", [f"{a} * {b} = {a * b}."], str(a * b), "number",
                    f"Let me recheck: {a * b} / {b} = {a}.")


@_task("two_step")
def two_step(rng: random.Random, d: int) -> TextTask:
    a, b, c = (rng.randint(1, 4 * d + 1) for _ in range(3))
    s = a + b
    if rng.random() < 0.5:
        return TextTask(f"What is ({a} + {b}) * {c}?", [f"First, {a} + {b} = {s}.", f"Then {s} * {c} = {s * c}."],
                        str(s * c), "number")
    return TextTask(f"What is {a} + {b} + {c}?", [f"First, {a} + {b} = {s}.", f"Then {s} + {c} = {s + c}."],
                    str(s + c), "number")


@_task("count_listed")
def count_listed(rng: random.Random, d: int) -> TextTask:
    k = rng.randint(1, min(3, d + 1))
    counts = [rng.randint(1, 2 + d) for _ in range(k)]
    kinds = rng.sample(SHAPES, k)
    colours = rng.sample(COLOURS, k)
    listed = ", ".join(f"{n} {c} {s}" for n, c, s in zip(counts, colours, kinds))
    total = sum(counts)
    expr = " + ".join(map(str, counts))
    steps = [f"Count them: {expr} = {total}."] if k > 1 else [f"There are {total} shapes."]
    return TextTask(f"An image shows {listed}. How many shapes are there?", steps, str(total), "number")


@_task("bar_heights")
def bar_heights(rng: random.Random, d: int) -> TextTask:
    n = 2 + d
    heights = rng.sample(range(1, 3 + 2 * d + n), n)
    best = max(heights)
    pos = heights.index(best) + 1
    listed = ", ".join(map(str, heights))
    return TextTask(
        f"A bar chart has bars of heights {listed} from left to right. "
        "Which bar is the tallest? Give its position from the left.",
        [f"The largest height is {best}.", f"It is bar number {pos} from the left."],
        str(pos),
        "number",
    )


@_task("compare_sides")
def compare_sides(rng: random.Random, d: int) -> TextTask:
    a, b = rng.sample(range(1, 6 + 3 * d), 2)
    side = "left" if a > b else "right"
    return TextTask(
        f"The left square has side {a} and the right square has side {b}. "
        "Which square is larger, the left or the right?",
        [f"{max(a, b)} is larger than {min(a, b)}.", f"So the {side} square is larger."],
        side,
        "string",
    )


@_task("name_colour")
def name_colour(rng: random.Random, d: int) -> TextTask:
    """The words-only mirror of the ``shape_colour`` image task."""
    colours = COLOURS[:3] if d == 1 else COLOURS
    colour, kind = rng.choice(colours), rng.choice(SHAPES)[:-1]
    if d <= 2:
        return TextTask(f"An image shows a large {colour} {kind}. What colour is the shape?",
                        [f"The shape is {colour}."], colour, "string")
    other = rng.choice([c for c in colours if c != colour])
    other_kind = rng.choice([s[:-1] for s in SHAPES if s[:-1] != kind])
    return TextTask(f"An image shows a {other} {other_kind} and a {colour} {kind}. What colour is the {kind}?",
                    [f"The {kind} is {colour}."], colour, "string")


@_task("triangle_angle")
def triangle_angle(rng: random.Random, d: int) -> TextTask:
    step = max(5, 30 // d)
    a = rng.randrange(step, 120, step)
    b = rng.randrange(step, 180 - a, step) if 180 - a > step else step
    c = 180 - a - b
    if c <= 0:
        a, b, c = 60, 60, 60
    return TextTask(
        f"Two angles of a triangle are {a} and {b} degrees. What is the third angle in degrees?",
        ["The angles sum to 180.", f"180 - {a} - {b} = {c}."],
        str(c),
        "number",
        f"Let me recheck: {a} + {b} + {c} = 180.",
    )


@_task("order_logic")
def order_logic(rng: random.Random, d: int) -> TextTask:
    people = rng.sample(NAMES, min(len(NAMES), 2 + d))  # tallest first
    facts = [f"{people[i]} is taller than {people[i + 1]}." for i in range(len(people) - 1)]
    rng.shuffle(facts)
    ask_tallest = rng.random() < 0.5
    who = people[0] if ask_tallest else people[-1]
    word = "tallest" if ask_tallest else "shortest"
    chain = " > ".join(people)
    return TextTask(f"{' '.join(facts)} Who is the {word}?", [f"Order by height: {chain}.", f"The {word} is {who}."],
                    who, "string")


@_task("parity")
def parity(rng: random.Random, d: int) -> TextTask:
    n = rng.randint(1, 10 ** min(d + 1, 4))
    even = n % 2 == 0
    return TextTask(f"Is {n} an even number? Answer yes or no.",
                    [f"{n} divided by 2 leaves remainder {n % 2}."], "yes" if even else "no", "string")
