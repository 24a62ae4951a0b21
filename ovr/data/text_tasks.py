"""Language-only procedural tasks with short step-by-step traces (the tiny cold start).

Each task is a pure function ``(rng, difficulty) -> TextTask``. Several mirror the visual tasks in
words (counting listed shapes, reading bar heights, comparing sizes, angles of a triangle), so a
model cold-started on them has the reasoning pattern — and the ``\\boxed{}`` format — before it ever
sees an image, which is the transfer the recipe relies on. ``difficulty`` 1 keeps numbers tiny and
traces to one or two steps; higher levels widen ranges and add steps.

Every task also writes the material of the two cognitive behaviours the cold start teaches:
``mistake`` (the steps with one plausible slip: an off-by-one sum, the second-tallest bar, the
other shape's colour) with ``fix`` (the corrected steps, to follow a "Wait, let me recheck" line),
and ``verify`` (a line that checks the right result another way). Slips are drawn from the item's
rng after the question, so the question does not depend on which behaviour a trace shows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circles", "squares", "triangles"]
NAMES = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]


@dataclass(frozen=True)
class TextTask:
    """A question, its reasoning steps, the exact answer, and the behaviour material (module doc)."""

    question: str
    steps: list[str]
    answer: str
    answer_type: str  # "number" | "string"
    mistake: list[str]  # the steps with one plausible slip (never the final answer line)
    fix: list[str]  # the corrected steps, said after noticing the slip
    verify: str  # a check of the right result, said after it


TEXT_TASKS: dict[str, Callable[[random.Random, int], TextTask]] = {}


def _task(name: str):
    def deco(fn):
        if name in TEXT_TASKS:
            raise ValueError(f"duplicate text task {name}")
        TEXT_TASKS[name] = fn
        return fn

    return deco


def _slip(rng: random.Random, value: int, size: int = 1, lo: int = 0) -> int:
    """A wrong value next to ``value`` (``value ± size``), never below ``lo``."""
    return rng.choice([v for v in (value - size, value + size) if v >= lo])


@_task("add_sub")
def add_sub(rng: random.Random, d: int) -> TextTask:
    hi = 9 * d
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    if rng.random() < 0.5:
        wrong = _slip(rng, a + b)
        return TextTask(
            f"What is {a} + {b}?",
            [f"{a} + {b} = {a + b}."],
            str(a + b),
            "number",
            [f"{a} + {b} = {wrong}."],
            [f"{a} + {b} = {a + b}, not {wrong}."],
            f"Let me verify: {a + b} - {b} = {a}.",
        )
    a, b = max(a, b), min(a, b)
    wrong = _slip(rng, a - b)
    return TextTask(
        f"What is {a} - {b}?",
        [f"{a} - {b} = {a - b}."],
        str(a - b),
        "number",
        [f"{a} - {b} = {wrong}."],
        [f"{a} - {b} = {a - b}, not {wrong}."],
        f"Let me verify: {a - b} + {b} = {a}.",
    )


@_task("multiply")
def multiply(rng: random.Random, d: int) -> TextTask:
    a, b = rng.randint(2, 3 + 2 * d), rng.randint(2, 3 + 2 * d)
    wrong = _slip(rng, a * b, size=a)  # one row of the table too many or too few
    return TextTask(
        f"What is {a} * {b}?",
        [f"{a} * {b} = {a * b}."],
        str(a * b),
        "number",
        [f"{a} * {b} = {wrong}."],
        [f"{a} * {b} = {a * b}, not {wrong}."],
        f"Let me verify: {a * b} / {b} = {a}.",
    )


@_task("two_step")
def two_step(rng: random.Random, d: int) -> TextTask:
    a, b, c = (rng.randint(1, 4 * d + 1) for _ in range(3))
    s = a + b
    product = rng.random() < 0.5
    w = _slip(rng, s, lo=1)
    op, outer = ("*", lambda x: x * c) if product else ("+", lambda x: x + c)
    question = f"What is ({a} + {b}) * {c}?" if product else f"What is {a} + {b} + {c}?"
    check = (
        f"Let me verify: {s * c} / {c} = {s} and {s} - {b} = {a}."
        if product
        else f"Let me verify: {s + c} - {c} - {b} = {a}."
    )
    return TextTask(
        question,
        [f"First, {a} + {b} = {s}.", f"Then {s} {op} {c} = {outer(s)}."],
        str(outer(s)),
        "number",
        [f"First, {a} + {b} = {w}.", f"Then {w} {op} {c} = {outer(w)}."],
        [f"{a} + {b} = {s}, not {w}.", f"Then {s} {op} {c} = {outer(s)}."],
        check,
    )


@_task("count_listed")
def count_listed(rng: random.Random, d: int) -> TextTask:
    k = rng.randint(1, min(3, d + 1))
    counts = [rng.randint(1, 2 + d) for _ in range(k)]
    kinds = rng.sample(SHAPES, k)
    colours = rng.sample(COLOURS, k)
    listed = ", ".join(f"{n} {c} {s}" for n, c, s in zip(counts, colours, kinds))
    total = sum(counts)
    expr = " + ".join(map(str, counts))
    wrong = _slip(rng, total, lo=1)
    if k > 1:
        steps, mistake = [f"Count them: {expr} = {total}."], [f"Count them: {expr} = {wrong}."]
        fix = [f"{expr} = {total}, not {wrong}."]
        check = f"Let me verify: {total} - {counts[-1]} = {total - counts[-1]}, the other shapes."
    else:
        steps, mistake = [f"There are {total} shapes."], [f"There are {wrong} shapes."]
        fix = [f"there are {total} shapes, not {wrong}."]
        check = f"Let me verify: {listed} makes {total}."
    return TextTask(
        f"An image shows {listed}. How many shapes are there?", steps, str(total), "number", mistake, fix, check
    )


@_task("bar_heights")
def bar_heights(rng: random.Random, d: int) -> TextTask:
    n = 2 + d
    heights = rng.sample(range(1, 3 + 2 * d + n), n)
    best = max(heights)
    pos = heights.index(best) + 1
    second = sorted(heights)[-2]  # the near miss: the second tallest bar
    listed = ", ".join(map(str, heights))
    others = " and ".join(str(h) for h in heights if h != best)
    return TextTask(
        f"A bar chart has bars of heights {listed} from left to right. "
        "Which bar is the tallest? Give its position from the left.",
        [f"The largest height is {best}.", f"It is bar number {pos} from the left."],
        str(pos),
        "number",
        [f"The largest height is {second}.", f"It is bar number {heights.index(second) + 1} from the left."],
        [f"{best} is larger than {second}.", f"It is bar number {pos} from the left."],
        f"Let me verify: {best} is larger than {others}.",
    )


@_task("compare_sides")
def compare_sides(rng: random.Random, d: int) -> TextTask:
    a, b = rng.sample(range(1, 6 + 3 * d), 2)
    side, other = ("left", "right") if a > b else ("right", "left")
    hi, lo = max(a, b), min(a, b)
    return TextTask(
        f"The left square has side {a} and the right square has side {b}. "
        "Which square is larger, the left or the right?",
        [f"{hi} is larger than {lo}.", f"So the {side} square is larger."],
        side,
        "string",
        [f"The {side} square has side {lo} and the {other} square has side {hi}.", f"So the {other} square is larger."],
        [f"the {side} side is {hi}, not {lo}.", f"So the {side} square is larger."],
        f"Let me verify: {hi} - {lo} = {hi - lo}, more than 0.",
    )


@_task("name_colour")
def name_colour(rng: random.Random, d: int) -> TextTask:
    """The words-only mirror of the ``shape_colour`` image task."""
    colours = COLOURS[:3] if d == 1 else COLOURS
    colour, kind = rng.choice(colours), rng.choice(SHAPES)[:-1]
    if d <= 2:
        wrong = rng.choice([c for c in colours if c != colour])
        return TextTask(
            f"An image shows a large {colour} {kind}. What colour is the shape?",
            [f"The shape is {colour}."],
            colour,
            "string",
            [f"The shape is {wrong}."],
            [f"the {kind} is {colour}, not {wrong}."],
            f"Let me verify: the {kind} is {colour}.",
        )
    other = rng.choice([c for c in colours if c != colour])
    other_kind = rng.choice([s[:-1] for s in SHAPES if s[:-1] != kind])
    return TextTask(
        f"An image shows a {other} {other_kind} and a {colour} {kind}. What colour is the {kind}?",
        [f"The {kind} is {colour}."],
        colour,
        "string",
        [f"The {kind} is {other}."],
        [f"{other} is the {other_kind}; the {kind} is {colour}."],
        f"Let me verify: the {kind} is {colour} and the {other_kind} is {other}.",
    )


@_task("triangle_angle")
def triangle_angle(rng: random.Random, d: int) -> TextTask:
    step = max(5, 30 // d)
    a = rng.randrange(step, 120, step)
    b = rng.randrange(step, 180 - a, step) if 180 - a > step else step
    c = 180 - a - b
    if c <= 0:
        a, b, c = 60, 60, 60
    wrong = _slip(rng, c, size=10, lo=1)
    return TextTask(
        f"Two angles of a triangle are {a} and {b} degrees. What is the third angle in degrees?",
        ["The angles sum to 180.", f"180 - {a} - {b} = {c}."],
        str(c),
        "number",
        ["The angles sum to 180.", f"180 - {a} - {b} = {wrong}."],
        [f"180 - {a} - {b} = {c}, not {wrong}."],
        f"Let me verify: {a} + {b} + {c} = 180.",
    )


@_task("order_logic")
def order_logic(rng: random.Random, d: int) -> TextTask:
    people = rng.sample(NAMES, min(len(NAMES), 2 + d))  # tallest first
    facts = [f"{people[i]} is taller than {people[i + 1]}." for i in range(len(people) - 1)]
    rng.shuffle(facts)
    ask_tallest = rng.random() < 0.5
    who = people[0] if ask_tallest else people[-1]
    near = people[1] if ask_tallest else people[-2]  # the near miss: one place off the end
    word = "tallest" if ask_tallest else "shortest"
    chain = " > ".join(people)
    pair = f"{people[0]} is taller than {people[1]}" if ask_tallest else f"{people[-2]} is taller than {people[-1]}"
    check = (
        f"Let me verify: no one is taller than {who}."
        if ask_tallest
        else f"Let me verify: {who} is taller than no one."
    )
    return TextTask(
        f"{' '.join(facts)} Who is the {word}?",
        [f"Order by height: {chain}.", f"The {word} is {who}."],
        who,
        "string",
        [f"The {word} is {near}."],
        [f"{pair}.", f"Order by height: {chain}.", f"The {word} is {who}."],
        check,
    )


@_task("parity")
def parity(rng: random.Random, d: int) -> TextTask:
    n = rng.randint(1, 10 ** min(d + 1, 4))
    even = n % 2 == 0
    r = n % 2
    return TextTask(
        f"Is {n} an even number? Answer yes or no.",
        [f"{n} divided by 2 leaves remainder {r}."],
        "yes" if even else "no",
        "string",
        [f"{n} divided by 2 leaves remainder {1 - r}."],
        [f"{n} = 2 * {n // 2} + {r}, remainder {r}, not {1 - r}."],
        f"Let me verify: 2 * {n // 2} + {r} = {n}.",
    )
