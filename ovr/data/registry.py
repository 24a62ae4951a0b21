"""The adapter registry: one pure function per real source, from that source's own columns to a ``Sample``.

An adapter is ``fn(row: dict, ctx: RowContext) -> Sample``. It raises :class:`Drop` to skip a row
for a reason that is not an error (a proof, no verified trace) and :class:`Reject` for a row that
does not fit its layout (an answer naming no option, a missing image file), each with a short
reason and the offending value as detail; any other exception marks the row corrupt with its
message. Either way the build records the reason per row in the manifest and goes on. A source whose
copy names its columns otherwise (``Question``/``Answer``) maps them with the option
``columns: {Question: question, Answer: answer}``. Register with::

    @adapter("math500", split="eval", columns=("problem", "answer"))
    def math500(row, ctx):
        "MATH500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level, unique_id."
        return make_sample(ctx, question=row["problem"], answer=row["answer"])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovr.data.images import to_image_ref
from ovr.data.prompts import DEFAULT_TEMPLATE, ImageMarkError, format_choices, to_prompt
from ovr.registry import Registry
from ovr.schema import AnswerType, Message, Sample, Split

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class Drop(Exception):
    """Skip this row for the given reason (e.g. 'proof', 'no verified generation').

    ``reason`` is short and the same for every row it applies to (the manifest counts rows by it);
    ``detail`` holds what differs per row (the offending value).
    """

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class Reject(Drop):
    """The row does not fit the layout (recorded as ``corrupt row: <reason>``)."""


@dataclass(frozen=True)
class RowContext:
    """What an adapter knows about the row besides its columns."""

    source: str
    split: Split
    index: int
    path: str = ""
    base_dir: Path | None = None
    template: str = DEFAULT_TEMPLATE
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Adapter:
    """A registered source adapter."""

    name: str
    fn: Callable[[dict, RowContext], Sample]
    split: Split  # the set this source usually feeds
    columns: tuple[str, ...]  # columns every row must have
    description: str

    def __call__(self, row: dict, ctx: RowContext) -> Sample:
        renames = ctx.options.get("columns") or {}  # option columns: {their name: the adapter's}
        if renames:
            row = {renames.get(k, k): v for k, v in row.items()}
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise Reject("missing columns", f"{missing} (the {self.name} layout needs {list(self.columns)})")
        return self.fn(row, ctx)


def _load_builtin() -> None:
    import ovr.data.adapters  # noqa: F401  (registers the built-in adapters)


ADAPTERS: Registry[Adapter] = Registry("adapter", loader=_load_builtin)


def adapter(name: str, *, split: Split, columns: Iterable[str]):
    """Register ``fn`` under ``name``; duplicate names are rejected."""

    def deco(fn: Callable[[dict, RowContext], Sample]):
        first = (fn.__doc__ or name).strip().split("\n\n", 1)[0]
        ADAPTERS.add(name, Adapter(name, fn, split, tuple(columns), " ".join(first.split())))
        return fn

    return deco


def get_adapter(name: str) -> Adapter:
    return ADAPTERS.get(name)


def all_adapters() -> list[Adapter]:
    return [ADAPTERS.get(k) for k in ADAPTERS.names()]


# --------------------------------------------------------------------------- helpers for adapters
def guess_answer_type(answer: str) -> AnswerType:
    """``number`` for plain numbers (``1,200`` included), ``math`` for LaTeX/expressions, else ``string``."""
    text = answer.strip().replace(",", "")
    if _NUMBER.fullmatch(text):
        return "number"
    if any(ch in text for ch in "\\^_{}=/+*()") or re.search(r"\d", text):
        return "math"
    return "string"


def letter(index: int) -> str:
    """0 -> 'A'."""
    if not 0 <= index < 26:
        raise ValueError(f"choice index {index} out of range")
    return chr(65 + index)


def number_answer(value: Any) -> str:
    """A numeric reference as plain digits: ``3159.0`` -> ``3159``, ``1,234`` -> ``1234``, ``-7``;
    :class:`Reject` when it is not a number.

    >>> number_answer(3159.0), number_answer("3159.0"), number_answer(" 1,234 "), number_answer("-0.5")
    ('3159', '3159', '1234', '-0.5')
    """
    text = clean(value).replace(",", "").rstrip(".")
    if not _NUMBER.fullmatch(text):
        raise Reject("answer is not a number", repr(clean(value)))
    number = float(text)
    return str(int(number)) if number.is_integer() else text.lstrip("+")


def choice_reference(answer: Any, choices: list[str]) -> str:
    """A choice reference as its option letter(s), ``"A, C"`` for several: from letters in any
    spelling (``(C)``, ``A\\nC``) or from the text of an option; :class:`Reject` when it names none.

    >>> choice_reference("(C)", list("ABCD")), choice_reference("A\\nC", list("ABCD"))
    ('C', 'A, C')
    >>> choice_reference("False", ["True", "False"])
    'B'
    """
    from ovr.rewards.checkers import choice_set

    named = choice_set(clean(answer), choices)
    if not named or any(ord(c) - 65 >= len(choices) for c in named):
        raise Reject("answer names no option", f"{clean(answer)!r} (options {choices})")
    return ", ".join(sorted(named))


def clean(value: Any) -> str:
    """A cell as stripped text (numbers included); empty for None."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def make_sample(
    ctx: RowContext,
    *,
    question: str,
    answer: Any,
    answer_type: AnswerType | None = None,
    images: Iterable[Any] = (),
    assistant: str | None = None,
    choices: list[str] | None = None,
    list_choices: bool = True,
    subject: str | None = None,
    difficulty: float | None = None,
    source_id: Any = None,
    provenance: dict[str, Any] | None = None,
    combined_image: bool = False,
) -> Sample:
    """Build a normalised Sample: template applied, images encoded (empty cells skipped), choices
    listed (unless the question already lists them: ``list_choices=False``), id made stable. A row
    with no reference is dropped, except from an eval split (it is kept and counted as ungraded).
    ``combined_image``: the question's several image marks all refer to its one image."""
    answer = clean(answer)
    if not answer and ctx.split != "eval":  # an eval item stays in the denominator, counted as ungraded
        raise Drop("empty reference answer")
    try:
        refs = [to_image_ref(img, ctx.base_dir) for img in images if img is not None and img != ""]
    except ValueError as err:
        raise Reject("image unreadable", str(err)) from None
    if choices and list_choices:
        question = f"{question.rstrip()}\n{format_choices(choices)}"
    try:
        prompt = to_prompt(question, len(refs), ctx.template, combined=combined_image)
    except ImageMarkError as err:
        raise Reject("image marks do not match the images", str(err)) from None
    except ValueError as err:
        raise Reject(str(err)) from None
    messages = None
    if assistant is not None:
        messages = [Message(role="user", content=prompt), Message(role="assistant", content=assistant)]
    sid = clean(source_id) if source_id is not None and clean(source_id) else str(ctx.index)
    return Sample(
        id=f"{ctx.source}-{sid}",
        source=ctx.source,
        split=ctx.split,
        modality="image" if refs else "text",
        prompt=prompt,
        messages=messages,
        images=refs,
        answer=answer,
        answer_type=answer_type or ("choice" if choices else guess_answer_type(answer)),
        choices=choices or None,
        subject=clean(subject) or None,
        difficulty=difficulty,
        provenance={"path": ctx.path, "row": ctx.index, **(provenance or {})},
    )
