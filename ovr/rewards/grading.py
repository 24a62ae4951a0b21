"""Which path grades an item, and grading an answer on that path: the one grading code of RL, eval
and the reward service (every registered reward calls :func:`grade`).

Paths (:data:`PATHS`), per item, decided by its reference alone:

- ``rule``: the checker of the item's answer type reads the reference (math-verify with the exact
  rewritings of :mod:`ovr.rewards.normalize`, numbers, option letters), so its verdict is exact;
- ``string``: no rule reads it (prose references, free-form labels such as ``True`` or ``red``):
  the answer must equal the reference after normalisation (:func:`string_match`). An evaluation
  may hand these items to an LLM judge instead: their path is then ``judge`` (the VLMEvalKit
  convention for MathVerse/MathVista: extract, then match; the judge only where rules cannot);
- ``ungraded``: nothing to compare with (an empty reference; set by eval also where the judge's
  reply was unusable or scoring failed).

Training splits keep only items a reward can check, with :func:`reference_problem` as the reason
for the others; eval splits keep every item and count how many each path graded.

>>> grading_path("045° T"), grading_path("See the figure for the graph"), grading_path("True", "string")
('rule', 'string', 'string')
>>> grade("45^\\\\circ", "045° T"), grade("54° T", "045° T"), grade("an upward parabola", "An upward parabola.")
((True, 'rule'), (False, 'rule'), (True, 'string'))
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Literal

from ovr.rewards import normalize
from ovr.rewards.checkers import check, choice_set, normalize_string, parse_number
from ovr.rewards.options import RewardOptions

GradingPath = Literal["rule", "string", "judge", "ungraded"]
PATHS: tuple[str, ...] = ("rule", "string", "judge", "ungraded")

PROSE = "prose reference (no closed-form answer)"
NOT_PARSEABLE = "reference not parseable by math-verify"
NOT_CHECKABLE = "reference not checkable by the reward"
EMPTY = "empty reference answer"
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\degree\b")


@lru_cache(maxsize=8192)
def _parses(expr: str, timeout: int | None) -> bool:
    from math_verify import parse

    return len(parse("\\boxed{" + expr + "}", parsing_timeout=timeout)) >= 2


def _math_parses(expr: str) -> bool:
    # math-verify's own time limit uses SIGALRM, which only works on the main thread.
    timeout = 10 if threading.current_thread() is threading.main_thread() else None
    return _parses(normalize.to_latex(expr), timeout)


def math_reference_problem(ref: str) -> str | None:
    """Why a ``math`` reference is no closed form the rules read (None: they read it): prose
    (unless a fill-in statement of a closed-form value) or nothing math-verify parses, even after
    the rewritings of :mod:`ovr.rewards.normalize`."""
    if normalize.bearing(ref) is not None:
        return None
    if normalize.has_prose(ref):
        value = normalize.statement_value(ref)
        return None if value is not None and _math_parses(value) else PROSE
    forms = [ref, normalize.interval_union(ref), (normalize.named_value(ref) or (None, None))[1]]
    return None if any(f and _math_parses(f) for f in forms) else NOT_PARSEABLE


def reference_problem(ref: str, answer_type: str = "math", choices: list[str] | None = None) -> str | None:
    """Why the rule checker of ``answer_type`` cannot read ``ref`` (None: it can).

    >>> reference_problem("x = 3"), reference_problem("See the proof above"), reference_problem("lots", "number")
    (None, 'prose reference (no closed-form answer)', 'reference not checkable by the reward')
    """
    if not ref.strip():
        return EMPTY
    if answer_type == "math":
        return math_reference_problem(ref)
    if answer_type == "number":
        return None if parse_number(ref) is not None else NOT_CHECKABLE
    if answer_type == "choice":
        return None if choice_set(ref, choices) is not None else "reference names no option"
    return "free-form label"


def grading_path(ref: str, answer_type: str = "math", choices: list[str] | None = None) -> GradingPath:
    """``rule`` when the type's checker reads ``ref``, ``ungraded`` when it is empty, else ``string``
    (cached: RL grades each reference once per sample)."""
    return _cached_path(ref, answer_type, tuple(choices) if choices else None)


@lru_cache(maxsize=8192)
def _cached_path(ref: str, answer_type: str, choices: tuple[str, ...] | None) -> GradingPath:
    problem = reference_problem(ref, answer_type, list(choices) if choices else None)
    if problem is None:
        return "rule"
    return "ungraded" if problem == EMPTY else "string"


def string_fold(text: str) -> str:
    """The text compared on the ``string`` path: encodings fixed, degree notations as ``°``, then
    :func:`~ovr.rewards.checkers.normalize_string` (case, ``\\text{}``, ``$``, spaces, end punctuation).

    >>> string_fold(r"$\\text{Upward}$ parabola."), string_fold("90^{\\\\circ} T")
    ('upward parabola', '90° t')
    """
    return normalize_string(_DEGREES.sub("°", normalize.fix_encoding(text)))


def string_match(pred: str, ref: str) -> bool:
    """Normalised string equality (:func:`string_fold` of both sides)."""
    return string_fold(pred) == string_fold(ref)


def grade(
    pred: str | None,
    ref: str,
    answer_type: str = "math",
    choices: list[str] | None = None,
    opts: RewardOptions | None = None,
) -> tuple[bool, GradingPath]:
    """``(correct, path)``: ``pred`` checked against ``ref`` on the item's path (``pred`` None: no
    answer was found, never correct)."""
    path = grading_path(ref, answer_type, choices)
    if pred is None or path == "ungraded":
        return False, path
    if path == "string":
        return string_match(pred, ref), path
    return check(pred, ref, answer_type, choices, opts), path
