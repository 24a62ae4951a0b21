"""Answer checkers, one per answer type: ``math`` (math-verify), ``number`` (numeric tolerance),
``choice`` (option letters, option text, several letters for multiple-answer questions) and
``string`` (exact after normalisation).

Each checker is a pure function ``(predicted, reference, choices, options) -> bool``. math-verify is
called with its own ``signal.alarm`` timeouts disabled: callers that need a time limit (the reward
service) run checks in worker processes and enforce the limit themselves.

>>> check("0.5", r"\\frac{1}{2}", "math")
True
>>> check("(B)", "B", "choice"), check("3.1416", "3.14159", "number")
(True, True)
>>> check("C and A", "A\\nC", "choice"), check("False", "B", "choice", ["True", "False"])
(True, True)
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache

from ovr.rewards import normalize
from ovr.rewards.extract import choice_letter, choice_letters
from ovr.rewards.options import RewardOptions

Checker = Callable[[str, str, "list[str] | None", RewardOptions], bool]

# math-verify logs a warning on every call made with timeouts disabled; that is our intent.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_WS = re.compile(r"\s+")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\{([^{}]*)\}")
_NUM = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_FRAC = re.compile(r"^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_DEGREES = re.compile(r"\s*(?:°|\^\s*\{?\s*\\circ\s*\}?|\\degree\b)")


def normalize_string(s: str) -> str:
    """Lower-cased, NFKC, ``\\text{}`` unwrapped, ``$``/surrounding punctuation dropped, spaces collapsed.

    >>> normalize_string(r"  \\text{Isosceles Triangle}. ")
    'isosceles triangle'
    """
    s = unicodedata.normalize("NFKC", _TEXT_CMD.sub(r"\1", s)).replace("$", "")
    return _WS.sub(" ", s).strip().strip(".,;:!\"'").strip().lower()


def parse_number(s: str) -> float | None:
    """A float from ``1,234.5``, ``-3``, ``1e-3``, ``3/4``, ``\\frac{3}{4}``, ``45%``, ``12 cm``; else None.

    >>> [parse_number(x) for x in ["1,234.5", r"\\frac{3}{4}", "45\\\\%", "12 \\\\text{cm}", "abc"]]
    [1234.5, 0.75, 45.0, 12.0, None]
    """
    t = _TEXT_CMD.sub(r" \1", normalize.fix_encoding(s)).replace("$", "").replace("\\%", "%").replace("\\!", "")
    t = _DEGREES.sub("", t).strip()
    t = _THOUSANDS.sub("", t).rstrip("%").strip()
    head = t.split()[0] if t.split() else ""
    for cand in (t.replace(" ", ""), head):
        if _NUM.match(cand):
            return float(cand)
        if m := _FRAC.match(cand):
            cand = f"{m.group(1)}{m.group(2)}/{m.group(3)}"
        if cand.count("/") == 1:
            num, den = cand.split("/")
            try:
                return float(Fraction(num.strip("()")) / Fraction(den.strip("()")))
            except (ValueError, ZeroDivisionError):
                return None
    return None


@lru_cache(maxsize=4096)
def _parse_math(expr: str):
    from math_verify import parse

    return parse("\\boxed{" + expr + "}", parsing_timeout=None)


def _verify(pred: str, ref: str, opts: RewardOptions) -> bool:
    from math_verify import verify

    gold, answer = _parse_math(ref), _parse_math(pred)
    if not gold or not answer:
        return False
    return bool(verify(gold, answer, float_rounding=opts.float_rounding, timeout_seconds=None))


def _math_forms(pred: str, ref: str):
    """``(pred, ref)`` pairs math-verify compares: as written (degree signs in LaTeX), then the exact
    rewritings of :mod:`ovr.rewards.normalize` that apply (interval lists as unions, the value of a
    named value when the names agree, the value of a fill-in statement)."""
    p, r = normalize.to_latex(pred), normalize.to_latex(ref)
    yield p, r
    p_union, r_union = normalize.interval_union(p), normalize.interval_union(r)
    if p_union or r_union:
        yield p_union or p, r_union or r
    p_named, r_named = normalize.named_value(p), normalize.named_value(r)
    if r_named and (p_named is None or p_named[0] == r_named[0]):
        yield (p_named[1] if p_named else p), r_named[1]
    elif p_named and r_named is None:
        yield p_named[1], r
    if r_value := normalize.statement_value(r):
        yield normalize.statement_value(p) or p, r_value


def check_math(pred: str, ref: str, choices: list[str] | None, opts: RewardOptions) -> bool:
    """Mathematical equivalence through math-verify (fractions, decimals, percents, sets, intervals,
    equations, units) after the exact rewritings of :mod:`ovr.rewards.normalize`; bearings
    (``045° T``, ``N 30° E``) compare as directions; exact normalised text is a fast path.

    >>> opts = RewardOptions()
    >>> check_math("45°", "045° T", None, opts), check_math("S 30° W", "N 30° E", None, opts)
    (True, False)
    >>> check_math("(1, 2)", "A = (1, 2)", None, opts), check_math("B = (1, 2)", "A = (1, 2)", None, opts)
    (True, False)
    >>> check_math(r"[2, 3] \\cup (0, 1)", "(0, 1) and [2, 3]", None, opts)
    True
    """
    if normalize_string(normalize.fix_encoding(pred)) == normalize_string(normalize.fix_encoding(ref)):
        return True
    same = normalize.same_bearing(pred, ref)
    if same is not None:
        return same
    return any(_verify(p, r, opts) for p, r in _math_forms(pred, ref))


def check_number(pred: str, ref: str, choices: list[str] | None, opts: RewardOptions) -> bool:
    """Numbers equal within ``rel_tol``/``abs_tol`` (thousands separators, fractions, % and units ignored)."""
    p, r = parse_number(pred), parse_number(ref)
    if p is None or r is None:
        return False
    return math.isclose(p, r, rel_tol=opts.rel_tol, abs_tol=opts.abs_tol)


def _option_index(answer: str, choices: list[str]) -> int | None:
    """The one option whose text the answer is: same normalised text, else (for numbers and LaTeX)
    the same value by :func:`check_math`; None when no option, or several, match."""
    norm = normalize_string(answer)
    same = [i for i, option in enumerate(choices) if normalize_string(option) == norm]
    if not same and re.search(r"[\d\\]", answer):
        value, opts = answer.replace("$", ""), RewardOptions()
        same = [i for i, option in enumerate(choices) if check_math(value, option.replace("$", ""), None, opts)]
    return same[0] if len(same) == 1 else None


def choice_set(answer: str, choices: list[str] | None) -> frozenset[str] | None:
    """The options an answer names, as letters: letters in any spelling (several for
    multiple-answer questions), the text of an option (or a comma/``and`` list of option texts),
    or a letter followed by its text (``B) 15 cm``); None when it names none.

    >>> sorted(choice_set("(A) and (C)", None)), sorted(choice_set("12 cm, 18 cm", ["12 cm", "15 cm", "18 cm"]))
    (['A', 'C'], ['A', 'C'])
    >>> choice_set("15 cm", ["12 cm", "15 cm"]), choice_set(r"$\\frac{1}{2}$", ["0.5", "2"])
    (frozenset({'B'}), frozenset({'A'}))
    """
    letters = choice_letters(answer, len(choices) if choices else None)
    if letters:
        return frozenset(letters)
    if choices:
        index = _option_index(answer, choices)
        if index is not None:
            return frozenset({chr(65 + index)})
        parts = [p for p in re.split(r"\s*(?:[,;\n]|\band\b)\s*", answer.strip()) if p]
        indices = [_option_index(p, choices) for p in parts] if len(parts) > 1 else [None]
        if all(i is not None for i in indices):
            return frozenset(chr(65 + i) for i in indices)
    letter = choice_letter(answer)
    return frozenset({letter}) if letter else None


def check_choice(pred: str, ref: str, choices: list[str] | None, opts: RewardOptions) -> bool:
    """Same set of options (order-insensitive for multiple answers), each side read by
    :func:`choice_set`; a reference that names no option (``True`` with no choices given) is
    compared as text."""
    r = choice_set(ref, choices)
    if r is None:
        return check_string(pred, ref, choices, opts)
    return choice_set(pred, choices) == r


def check_string(pred: str, ref: str, choices: list[str] | None, opts: RewardOptions) -> bool:
    """Exact match after :func:`normalize_string` (free-form labels)."""
    return normalize_string(pred) == normalize_string(ref)


CHECKERS: dict[str, Checker] = {
    "math": check_math,
    "number": check_number,
    "choice": check_choice,
    "string": check_string,
}


def check(
    pred: str,
    ref: str,
    answer_type: str = "math",
    choices: list[str] | None = None,
    opts: RewardOptions | None = None,
) -> bool:
    """Whether ``pred`` answers ``ref`` under the checker of ``answer_type``."""
    try:
        checker = CHECKERS[answer_type]
    except KeyError:
        raise ValueError(f"unknown answer_type {answer_type!r}; known: {sorted(CHECKERS)}") from None
    return checker(pred, ref, choices, opts or RewardOptions())
