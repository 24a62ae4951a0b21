"""Pillow-drawn visual tasks with exactly checkable answers.

Each task is a pure function ``(rng, difficulty, size) -> VisualTask`` that draws one image and
knows its answer by construction. Difficulty 1 keeps images simple: large, high-contrast shapes on a
white canvas, tiny answer spaces (counts 1-4, left/right, bar position 1-3, angles 45/90/135, three
colours) and one-token answers. Higher levels add objects, distractors, smaller differences and
finer angles.

The tiny offline model learns ``shape_colour`` and ``count_shapes`` at difficulty 1 within minutes
(what the demo's RL trains on). The tasks that need positions read out of the image tokens
(``compare_sizes``, ``bar_chart``, ``angle``) stay at chance for it even with supervision, though the
answers are linearly decodable from its vision features: they are for larger models.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (230, 200, 20),
    "purple": (140, 40, 170),
    "orange": (240, 130, 20),
}
KINDS = ["circle", "square", "triangle"]


@dataclass(frozen=True)
class VisualTask:
    """An image, the question about it, and the exact answer."""

    image: Image.Image
    question: str
    answer: str
    answer_type: str  # "number" | "string"


VISUAL_TASKS: dict[str, Callable[[random.Random, int, int], VisualTask]] = {}


def _task(name: str):
    def deco(fn):
        if name in VISUAL_TASKS:
            raise ValueError(f"duplicate visual task {name}")
        VISUAL_TASKS[name] = fn
        return fn

    return deco


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    return img, ImageDraw.Draw(img)


def _shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw a filled shape of 'radius' r centred on (cx, cy)."""
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")


@_task("count_shapes")
def count_shapes(rng: random.Random, d: int, size: int) -> VisualTask:
    """Count shapes placed in distinct grid cells (1-4 equal circles on a 2x2 grid at difficulty 1;
    sizes vary from 2, kinds and colours too, and from 3 one kind is counted among distractors).

    Equal sizes at d=1 make the count proportional to the covered area, which the tiny model learns
    supervised in ~100 steps (varied sizes: still ~45 % after 100 steps)."""
    grid = min(d + 1, 4)
    cells = rng.sample(range(grid * grid), rng.randint(1, grid * grid))
    cell = size / grid
    img, draw = _canvas(size)
    kinds = [rng.choice(KINDS) if d > 1 else "circle" for _ in cells]
    colours = [rng.choice(list(PALETTE)) if d > 1 else "blue" for _ in cells]
    for c, kind, colour in zip(cells, kinds, colours):
        r = cell * (0.36 if d == 1 else rng.uniform(0.25, 0.38))
        jitter = cell / 2 - r - 1
        cx = (c % grid + 0.5) * cell + rng.uniform(-jitter, jitter)
        cy = (c // grid + 0.5) * cell + rng.uniform(-jitter, jitter)
        _shape(draw, kind, cx, cy, r, PALETTE[colour])
    if d >= 3:  # count one kind among distractors
        target = rng.choice(kinds)
        return VisualTask(img, f"How many {target}s are in the image?", str(kinds.count(target)), "number")
    return VisualTask(img, "How many shapes are in the image?", str(len(cells)), "number")


@_task("bar_chart")
def bar_chart(rng: random.Random, d: int, size: int) -> VisualTask:
    """Bars of distinct heights: the tallest one's position (d <= 2) or a bar's value (d >= 3)."""
    n = 2 + d
    top = 3 + 2 * d
    heights = rng.sample(range(1, top + 1), n)
    img, draw = _canvas(size)
    margin, base = size * 0.1, size * 0.92
    unit = (base - margin) / top
    slot = (size - 2 * margin) / n
    if d >= 3:  # gridlines make values readable
        for v in range(1, top + 1):
            y = base - v * unit
            draw.line([(margin * 0.5, y), (size - margin * 0.5, y)], fill=(210, 210, 210))
    draw.line([(margin * 0.5, base), (size - margin * 0.5, base)], fill=(0, 0, 0), width=1)
    width = slot * rng.uniform(0.5, 0.8)  # varied layout, so few charts repeat exactly
    shift = rng.uniform(0, slot - width)
    colour = PALETTE[rng.choice(["blue", "green", "purple"])]
    for i, h in enumerate(heights):
        x0 = margin + i * slot + shift
        draw.rectangle([x0, base - h * unit, x0 + width, base], fill=colour)
    if d >= 3 and rng.random() < 0.5:
        k = rng.randrange(n)
        return VisualTask(img, f"What is the value of bar {k + 1} from the left?", str(heights[k]), "number")
    pos = heights.index(max(heights)) + 1
    return VisualTask(img, "Which bar is the tallest? Give its position from the left.", str(pos), "number")


@_task("compare_sizes")
def compare_sizes(rng: random.Random, d: int, size: int) -> VisualTask:
    """Left vs right size comparison (d <= 2) or the colour of the largest of three (d >= 3)."""
    img, draw = _canvas(size)
    ratio = 1.0 + 1.2 / d  # size ratio between larger and smaller: 2.2 at d=1, 1.24 at d=5
    if d <= 2:
        kind = rng.choice(KINDS) if d > 1 else "square"
        big = size * rng.uniform(0.16, 0.22)
        small = big / ratio
        left_big = rng.random() < 0.5
        for cx, r in ((size * 0.27, big if left_big else small), (size * 0.73, small if left_big else big)):
            _shape(draw, kind, cx, size / 2 + rng.uniform(-size * 0.1, size * 0.1), r, PALETTE["red"])
        side = "left" if left_big else "right"
        return VisualTask(img, "Which shape is larger, the left or the right?", side, "string")
    colours = rng.sample(list(PALETTE), 3)
    big = size * 0.16
    radii = [big, big / ratio, big / ratio / rng.uniform(1.0, 1.3)]
    order = rng.sample(range(3), 3)
    kind = rng.choice(KINDS)  # one kind, so "larger" never depends on the shape's area formula
    for slot, i in enumerate(order):
        cx = size * (0.18 + 0.32 * slot)
        _shape(draw, kind, cx, size / 2, radii[i], PALETTE[colours[i]])
    return VisualTask(img, "What colour is the largest shape?", colours[0], "string")


@_task("angle")
def angle(rng: random.Random, d: int, size: int) -> VisualTask:
    """Two rays from a vertex; the angle between them in degrees (multiples of 45 at d=1).

    Up to d=2 one ray points right from a vertex low in the frame, so the answer is where the other
    ray goes; from d=3 the pair is rotated at random."""
    step = {1: 45, 2: 30, 3: 15, 4: 10}.get(d, 5)
    value = rng.randrange(step, 180, step)
    img, draw = _canvas(size)
    if d <= 2:
        start = 0.0
        cx, cy, length = size * rng.uniform(0.45, 0.55), size * rng.uniform(0.68, 0.75), size * 0.4
    else:
        start = rng.uniform(0, 360)
        cx, cy, length = size / 2, size / 2, size * 0.42
    for a in (start, start + value):
        rad = math.radians(a)
        draw.line([(cx, cy), (cx + length * math.cos(rad), cy - length * math.sin(rad))], fill=(0, 0, 0), width=3)
    draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=PALETTE["red"])
    return VisualTask(img, "What is the angle between the two lines, in degrees?", str(value), "number")


@_task("shape_colour")
def shape_colour(rng: random.Random, d: int, size: int) -> VisualTask:
    """The colour of a shape: one large shape in red/green/blue at d=1, any of six colours at d=2,
    and from d=3 a smaller target among distractors of other kinds and colours ("the triangle").

    Colour is visible in every image token the shape covers, so no position has to be read: this
    is what a tiny model with a freshly initialised vision tower learns first (the demo's RL floor)."""
    names = ["red", "green", "blue"] if d == 1 else list(PALETTE)
    img, draw = _canvas(size)
    if d <= 2:
        colour, kind = rng.choice(names), rng.choice(KINDS)
        r = size * rng.uniform(0.28, 0.38)
        jitter = size / 2 - r - 1
        cx, cy = size / 2 + rng.uniform(-jitter, jitter), size / 2 + rng.uniform(-jitter, jitter)
        _shape(draw, kind, cx, cy, r, PALETTE[colour])
        return VisualTask(img, "What colour is the shape?", colour, "string")
    n = min(d - 1, len(KINDS))
    kinds, colours = rng.sample(KINDS, n), rng.sample(names, n)
    cell = size / n
    for i, (kind, colour) in enumerate(zip(kinds, colours)):
        r = cell * rng.uniform(0.25, 0.38)
        _shape(draw, kind, (i + 0.5) * cell, size / 2 + rng.uniform(-size * 0.2, size * 0.2), r, PALETTE[colour])
    k = rng.randrange(n)
    return VisualTask(img, f"What colour is the {kinds[k]}?", colours[k], "string")
