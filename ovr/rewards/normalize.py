"""Exact rewritings of answer forms that real benchmark releases carry and math-verify alone misreads.

Each rule applies only where it is exact (the rewritten answer means the same thing), so the rule
grader (:mod:`ovr.rewards.grading`) can use it for references and responses alike:

- **encodings**: a degree sign saved as UTF-8 and read back as GBK (``掳``) or Latin-1 (``Â°``)
  becomes ``°`` (:func:`fix_encoding`); ``°`` and ``\\degree`` become ``^\\circ`` for math-verify;
- **bearings**: true bearings with a ``T`` suffix (``045° T``) and compass bearings (``N 30° E``)
  are read as degrees clockwise from north (:func:`bearing`); math-verify reads ``045^\\circ T`` as
  ``45*t`` and ``S 30° W`` as ``30``;
- **named values**: ``x = 3``, ``AB = 5``, ``A = (1, 2)`` and point notation ``A(1, 2)`` split into
  name and value (:func:`named_value`), so a bare value answers a named reference of that name;
- **lists of intervals**: ``(0, 1), (2, 3)`` / ``[0, 1] and [2, 3]`` become one union
  (:func:`interval_union`), the same set of reals as ``(0, 1) \\cup (2, 3)``;
- **fill-in statements**: ``The perimeter is 24 cm`` yields its value ``24 cm`` (:func:`statement_value`).

>>> fix_encoding("30掳"), to_latex("30°")
('30°', '30^\\\\circ')
>>> bearing("045° T"), bearing("S 30° W"), bearing("N 30^\\\\circ E"), bearing("45")
(45.0, 210.0, 30.0, None)
>>> named_value("A = (1, 2)"), named_value("A(1, 2)"), named_value("2x - y = 0")
(('A', '(1, 2)'), ('A', '(1, 2)'), None)
>>> interval_union("(0, 1), [2, 3]"), statement_value("The perimeter is 24 cm.")
('(0, 1) \\\\cup [2, 3]', '24 cm')
"""

from __future__ import annotations

import re
from fractions import Fraction
from itertools import pairwise

#: mis-decoded degree signs seen in released files -> the sign itself
ENCODING_FIXES: dict[str, str] = {"掳": "°", "Â°": "°"}

_DEG = r"(?:°|\^\s*\{?\s*\\circ\s*\}?|\\degree|\\circ)"
_NUMBER = r"\d+(?:\.\d+)?"
_TRUE_BEARING = re.compile(rf"^(?P<deg>{_NUMBER})\s*{_DEG}?\s*T$")
_COMPASS = re.compile(rf"^(?P<from>[NS])\s*(?P<deg>{_NUMBER})\s*{_DEG}?\s*(?P<to>[EW])$")
_ANGLE = re.compile(rf"^(?P<deg>{_NUMBER})\s*{_DEG}?$")
_TEXT = re.compile(r"\\(?:text|textrm|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|~")
_NAME = r"(?:[A-Za-z]{1,3}(?:_\{?[A-Za-z0-9]+\}?)?'*|(?:m\s*)?\\angle\s*[A-Za-z0-9]{1,3})"
_NAMED = re.compile(rf"^(?P<name>{_NAME})\s*=\s*(?P<value>[^=]+)$")
_POINT = re.compile(r"^(?P<name>[A-Z]'*)\s*(?P<value>\([^()]*,[^()]*\))$")
_BOUND = r"[^\(\)\[\],]+"
_INTERVAL = rf"[\(\[]{_BOUND},{_BOUND}[\)\]]"
_INTERVAL_LIST = re.compile(rf"^{_INTERVAL}(?:\s*(?:,|;|\band\b|\bor\b|\\cup|∪)\s*{_INTERVAL})+$")
_INTERVAL_ONE = re.compile(rf"[\(\[](?P<lo>{_BOUND}),(?P<hi>{_BOUND})[\)\]]")
_FRACTION = re.compile(r"^(?P<sign>[-+]?)\\[dt]?frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}$")
_STATEMENT = re.compile(
    r"^(?:the\s+)?(?:[a-z][\w'\s\\{}^]*?)\s+(?:is|are|was|equals)\s+(?:equal\s+to\s+|approximately\s+)?"
    r"(?P<value>[^\s].*?)\s*\.?$",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[A-Za-z]{3,}\s+[A-Za-z]{3,}")


def fix_encoding(text: str) -> str:
    """Known mis-decodings of the degree sign replaced by ``°``.

    >>> fix_encoding("90掳 T")
    '90° T'
    """
    for bad, good in ENCODING_FIXES.items():
        text = text.replace(bad, good)
    return text


def plain(text: str) -> str:
    """Encoding fixed, ``$`` and LaTeX spacing dropped, ``\\text{...}`` unwrapped, outer spaces stripped.

    >>> plain(r"$045^\\circ\\,\\text{T}$")
    '045^\\\\circT'
    """
    text = _TEXT.sub(r"\1", _SPACING.sub("", fix_encoding(text).replace("$", "")))
    return text.strip()


def to_latex(text: str) -> str:
    """``°`` / ``\\degree`` as ``^\\circ`` (math-verify reads that as degrees), encodings fixed."""
    return re.sub(r"\s*(?:°|\\degree\b)", r"^\\circ", fix_encoding(text))


def bearing(text: str) -> float | None:
    """Degrees clockwise from north of a true bearing (``045° T``) or a compass bearing (``N 30° E``,
    at most 90° off the north/south line); None for anything else (a bare angle included)."""
    s = plain(text)
    if m := _TRUE_BEARING.match(s):
        value = float(m["deg"])
        return value % 360 if value <= 360 else None
    if m := _COMPASS.match(s):
        off = float(m["deg"])
        if off > 90:
            return None
        base = {("N", "E"): off, ("S", "E"): 180 - off, ("S", "W"): 180 + off, ("N", "W"): 360 - off}
        return base[(m["from"], m["to"])] % 360
    return None


def angle(text: str) -> float | None:
    """A bare angle in degrees (``45``, ``45°``, ``45^\\circ``), read as a true bearing; else None."""
    m = _ANGLE.match(plain(text))
    return float(m["deg"]) % 360 if m else None


def same_bearing(pred: str, ref: str) -> bool | None:
    """Whether ``pred`` names the bearing of ``ref`` (either notation, or a bare angle read as a
    true bearing); None when ``ref`` is not a bearing."""
    want = bearing(ref)
    if want is None:
        return None
    got = bearing(pred)
    if got is None:
        got = angle(pred)
    if got is None:
        return False
    diff = abs(got - want) % 360
    return min(diff, 360 - diff) < 1e-6


def named_value(text: str) -> tuple[str, str] | None:
    """``(name, value)`` of ``x = 3``, ``AB = 5``, ``\\angle ABC = 30^\\circ``, ``A = (1, 2)`` or
    ``A(1, 2)``; None when the left side is not a short name (an equation such as ``2x - y = 0``)."""
    s = plain(text)
    m = _NAMED.match(s) or _POINT.match(s)
    if not m:
        return None
    value = m["value"].strip()
    return (re.sub(r"\s+", "", m["name"]), value) if value else None


def _endpoint(text: str) -> float | None:
    """An interval endpoint as a number (``-2``, ``0.5``, ``\\frac{1}{2}``, ``3/4``, ``\\infty``); else None."""
    t = text.strip().replace(" ", "")
    if t.lstrip("+-") in ("\\infty", "∞", "inf"):
        return float("-inf") if t.startswith("-") else float("inf")
    if m := _FRACTION.match(t):
        t = f"{m['sign']}{m['num']}/{m['den']}"
    try:
        return float(Fraction(t))
    except (ValueError, ZeroDivisionError):
        return None


def interval_union(text: str) -> str | None:
    """Two or more intervals listed with ``,``/``;``/``and``/``or``/``∪`` as one ``\\cup`` union,
    when their numeric endpoints show them apart (so the union merges nothing, and a list of points
    such as ``(1, 3), (2, 4)`` is never read as the interval ``(1, 4)``); None otherwise."""
    s = plain(text)
    if not _INTERVAL_LIST.match(s):
        return None
    parts = list(_INTERVAL_ONE.finditer(s))
    bounds = [(_endpoint(m["lo"]), _endpoint(m["hi"])) for m in parts]
    if any(lo is None or hi is None or lo >= hi for lo, hi in bounds):
        return None
    ordered = sorted(bounds)
    if any(a[1] >= b[0] for a, b in pairwise(ordered)):
        return None
    return " \\cup ".join(m.group(0) for m in parts)


def statement_value(text: str) -> str | None:
    """The value a fill-in statement states (``The area is 12 cm^2.`` -> ``12 cm^2``) when that value
    is a closed form (digits or LaTeX, no prose); None otherwise (``It is increasing``)."""
    s = plain(text)
    m = _STATEMENT.match(s)
    if not m:
        return None
    value = m["value"].strip()
    return value if value and re.search(r"[\d\\]", value) and not _WORDS.search(value) else None


def has_prose(text: str) -> bool:
    """Two plain words in a row outside ``\\text{}`` (a sentence, not a closed form)."""
    return bool(_WORDS.search(re.sub(r"\\[A-Za-z]+", " ", _TEXT.sub("", fix_encoding(text)))))
