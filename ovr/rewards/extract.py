"""Answer extraction from model responses (pure string functions, linear in the input length).

Forms understood: the last ``\\boxed{...}`` (nested braces), ``<answer>...</answer>``, final-answer
phrases ("The final answer is 7", "**Answer:** B"), and multiple-choice letters in their common
spellings (``B``, ``(B)``, ``B.``, ``B) text``; several letters ``A, C`` / ``A and C`` / ``(A)(C)``
for multiple-answer questions). ORZ's reflection-word counts live here too.

>>> last_boxed(r"so \\boxed{\\frac{1}{2}} then \\boxed{3}")
'3'
>>> extract_answer("**Answer:** (C)", "choice")
'C'
"""

from __future__ import annotations

import re

#: ORZ's cheap proxy for reflective behaviour (counted case-insensitively).
REFLECTION_WORDS: tuple[str, ...] = ("wait,", "recheck", "retry", "alternatively,", "however,")

_BOX_CMDS = ("\\boxed", "\\fbox")
_ANSWER_PHRASE = re.compile(r"answer\**\s*(?:is\b|[:：])[ \t*:]*([^\n]+)", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-Z])\)?(?:[.:)]|\s|$)")
_ONE_LETTER = r"\(?[A-Za-z]\)?\.?"
_LETTER_LIST = re.compile(rf"{_ONE_LETTER}(?:\s*(?:,|;|&|\band\b|\s)\s*{_ONE_LETTER})*")
_COMPACT_LETTERS = re.compile(r"[A-Z]{2,}")
_AND = re.compile(r"\band\b")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def _balanced(text: str, open_at: int) -> str | None:
    """Content of the brace group whose ``{`` is at ``open_at``; None if it never closes."""
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``); None if absent
    or if that last box never closes (a truncated response).

    >>> last_boxed(r"\\boxed{\\{1, 2\\}}")
    '\\\\{1, 2\\\\}'
    >>> last_boxed(r"\\boxed 42.") , last_boxed("no box"), last_boxed(r"\\boxed{1} \\boxed{2")
    ('42', None, None)
    """
    start = max(text.rfind(cmd) for cmd in _BOX_CMDS)
    if start < 0:
        return None
    cmd = next(c for c in _BOX_CMDS if text.startswith(c, start))
    i = start + len(cmd)
    if i < len(text) and text[i] == "{":
        inner = _balanced(text, i)
        return None if inner is None else inner.strip()
    if i < len(text) and text[i] == " ":  # \boxed 5 (TeX allows an unbraced single token)
        token = text[i + 1 :].split(None, 1)
        return token[0].rstrip(".$") if token else None
    return None


def answer_tag(text: str, tag: str = "answer") -> str | None:
    """Content of the last ``<tag>...</tag>``; None if absent.

    >>> answer_tag("<think>hm</think><answer> 7 </answer>")
    '7'
    """
    close = text.rfind(f"</{tag}>")
    if close < 0:
        return None
    open_ = text.rfind(f"<{tag}>", 0, close)
    if open_ < 0:
        return None
    return text[open_ + len(tag) + 2 : close].strip()


def answer_phrase(text: str) -> str | None:
    """The answer after the last "final answer is" / "the answer is" / "Answer:" phrase.

    >>> answer_phrase("Thus, the final answer is $\\\\frac{3}{4}$.")
    '\\\\frac{3}{4}'
    """
    match = None
    for match in _ANSWER_PHRASE.finditer(text):  # noqa: B007 - the last match is wanted
        pass
    if match is None:
        return None
    ans = match.group(1)
    while (inner := _ANSWER_PHRASE.search(ans)) is not None:  # "Final Answer: The final answer is 12."
        ans = inner.group(1)
    ans = ans.split(". ", 1)[0].strip().strip("*").strip().rstrip(".").strip()
    if len(ans) >= 2 and ans[0] == "$" and ans[-1] == "$":
        ans = ans.strip("$").strip()
    return ans or None


def choice_letter(text: str) -> str | None:
    """The option letter a short answer names: ``B``, ``(B)``, ``B.``, ``B) text``, ``\\text{B}``.

    >>> [choice_letter(s) for s in ["B", "(b)", "D. 12 cm", r"\\text{(A)}", "12 cm"]]
    ['B', 'B', 'D', 'A', None]
    """
    s = _TEXT_CMD.sub(r"\1", text).strip().strip("*$ ").strip()
    if len(s) == 1 and s.isalpha():
        return s.upper()
    m = _LETTER.match(s if s[:1] != "(" else s[:1] + s[1:2].upper() + s[2:])
    return m.group(1) if m else None


def choice_letters(text: str, n_choices: int | None = None) -> tuple[str, ...] | None:
    """The option letters a short answer names, sorted and unique, or None when it is not only letters.

    Accepts one letter (``C``, ``(c)``, ``C.``, ``\\text{C}``) or several separated by commas,
    semicolons, ``and``, spaces or newlines (``A, C``, ``A\\nC``, ``(A)(C)``). Run-together capitals
    (``AC``) count only when ``n_choices`` is given and every letter is one of the first ``n_choices``.

    >>> [choice_letters(s) for s in ["(C)", "C.", "C, A", "A\\nC", "(A) and (c)", "B) 15 cm", "AC"]]
    [('C',), ('C',), ('A', 'C'), ('A', 'C'), ('A', 'C'), None, None]
    >>> choice_letters("AC", n_choices=4), choice_letters("AX", n_choices=4)
    (('A', 'C'), None)
    """
    s = _TEXT_CMD.sub(r"\1", text).strip().strip("*$ ").strip().replace(")(", ") (")
    if _LETTER_LIST.fullmatch(s):
        letters = re.findall(r"[A-Za-z]", _AND.sub(" ", s))
    elif n_choices and _COMPACT_LETTERS.fullmatch(s) and all(ord(c) - 65 < n_choices for c in s):
        letters = list(s)
    else:
        return None
    return tuple(sorted({c.upper() for c in letters}))


def choice_answer(text: str) -> str:
    """A choice answer in canonical form when it names only letters (``"(C)"`` -> ``"C"``,
    ``"C and A"`` -> ``"A, C"``); any other text is returned unchanged (the checker maps option
    text and ``B) 15 cm`` spellings with the question's choices).

    >>> choice_answer(r"\\text{(C)}"), choice_answer("C and A"), choice_answer("B) 15 cm")
    ('C', 'A, C', 'B) 15 cm')
    """
    letters = choice_letters(text)
    return ", ".join(letters) if letters else text


def extract_answer(text: str, answer_type: str = "math", *, answer_tag_name: str = "answer") -> str | None:
    """The answer of a response in any supported form, first found of: last ``\\boxed{}``,
    last ``<answer>`` tag (whose own ``\\boxed{}`` wins), final-answer phrase. For ``choice`` an
    answer made only of option letters is put in canonical form (:func:`choice_answer`).

    >>> extract_answer(r"<answer>\\boxed{x=2}</answer>", "math"), extract_answer("Answer: (b)", "choice")
    ('x=2', 'B')
    """
    ans = last_boxed(text)
    if ans is None:
        tagged = answer_tag(text, answer_tag_name)
        if tagged is not None:
            ans = last_boxed(tagged) or tagged
    if ans is None:
        ans = answer_phrase(text)
    if ans is not None and answer_type == "choice":
        return choice_answer(ans)
    return ans


def reflection_counts(text: str, words: tuple[str, ...] | list[str] = REFLECTION_WORDS) -> dict[str, int]:
    """Case-insensitive occurrence counts of ORZ's reflection words.

    >>> reflection_counts("Wait, let me recheck. However, wait, no.")["wait,"]
    2
    """
    low = text.lower()
    return {w: low.count(w.lower()) for w in words}
