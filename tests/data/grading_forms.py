"""Answer forms real benchmark releases carry, as a MathVerse ``testmini_text_only`` of its published
size (788 rows), laid out as the hub release downloads (a saved ``DatasetDict``, split ``testmini``).
The rows are written here from the published schema; no benchmark text is copied.

As in the issue's real file, 30 rows have references that read as prose (half of them fill-in
statements of a closed-form value, which the rule grader now reads) and 11 have references that
math-verify alone could not parse (degree signs, one mis-encoded, bearings, an angle relation); the
rest are other forms (compass bearings, named points, interval pairs, labels) and plain letters and
numbers. Every row's question starts with its tag ``[q<n>]`` so a scripted model can answer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from source_layouts import _mathverse_features, _mathverse_rows

PUBLISHED = 788
PROSE = "prose reference (no closed-form answer)"
NOT_PARSEABLE = "reference not parseable by math-verify"


@dataclass(frozen=True)
class Form:
    """One answer form: the reference, a right and a wrong answer, the grading path the reference
    takes and the reason a training split drops it (None: training keeps it)."""

    reference: str
    right: str
    wrong: str
    path: str = "rule"
    train_drop: str | None = None


def _prose_forms() -> list[Form]:
    """The 30 references that read as prose: 15 fill-in statements, 15 sentences."""
    out = []
    for n in range(15):
        if n % 3 == 0:
            out.append(Form(f"The perimeter is {20 + n} cm", str(20 + n), str(21 + n)))
        elif n % 3 == 1:
            out.append(Form(f"The value of x is {n}", f"x = {n}", str(n + 1)))
        else:
            out.append(Form(f"The slope is \\frac{{1}}{{{n}}}", f"\\frac{{1}}{{{n}}}", f"{n}"))
    sentences = [
        ("It decreases on (0, {n}) and increases after {n}", "It increases on (0, {n})"),
        ("Both angles measure {n} degrees", "Both angles measure 1{n} degrees"),
        ("The triangle is isosceles with AB = {n}", "The triangle is equilateral with AB = {n}"),
    ]
    for n in range(15):
        ref, wrong = (s.format(n=n + 2) for s in sentences[n % 3])
        out.append(Form(ref, ref.lower() + ".", wrong, "string", PROSE))
    return out


UNPARSEABLE: list[Form] = [
    Form("045° T", "45°", "54° T"),
    Form("090° T", "90^\\circ", "270° T"),
    Form("315° T", "N 45° W", "45° T"),
    Form("60掳", "60°", "30°"),  # the degree sign as a release mis-encoded it
    Form("135掳", "135", "45°"),
    Form("120°", "120", "60"),
    Form("72°", "72^{\\circ}", "18°"),
    Form("60 \\degree", "60^\\circ", "50°"),
    Form("30 \\degree", "30", "60"),
    Form("∠1 = ∠2", "∠1 = ∠2", "∠1 = ∠3", "string", NOT_PARSEABLE),
    Form("∠A = ∠C", "∠a = ∠c", "∠A = ∠B", "string", NOT_PARSEABLE),
]

OTHER: list[Form] = [
    Form("270^\\circ T", "270°", "90° T"),  # math-verify alone reads this as 270*t
    Form("N 30° E", "030° T", "S 30° W"),
    Form("S 45° W", "225°", "S 45° E"),
    Form("A(1, 2)", "(1, 2)", "(2, 1)"),
    Form("A = (1, 2)", "A(1,2)", "B = (1, 2)"),
    Form("x = 3", "3", "x = 4"),
    Form("(0, 1) and (2, 3)", "(2,3) \\cup (0,1)", "(0, 1) \\cup [2, 3]"),
    Form("[-1, 0] and [1, 2]", "[-1,0], [1,2]", "[-1, 0]"),
    Form("True", "true", "False", "string"),
    Form("△ABC ≅ △DEF", "△ABC ≅ △DEF", "△ABC ≅ △DFE", "string"),
]

FORMS: list[Form] = _prose_forms() + UNPARSEABLE + OTHER


@dataclass(frozen=True)
class Row:
    """One written row: its tag, question type, reference, right/wrong answers, path, training drop."""

    tag: str
    multi_choice: bool
    form: Form


def rows() -> list[Row]:
    """Every row of the fixture: the forms, then letters and numbers up to :data:`PUBLISHED`."""
    out = [Row(f"[q{i}]", False, f) for i, f in enumerate(FORMS)]
    for i in range(len(out), PUBLISHED):
        if i % 2:
            letter, other = "ABCD"[i % 4], "ABCD"[(i + 1) % 4]
            out.append(Row(f"[q{i}]", True, Form(letter, f"({letter})", other)))
        else:
            out.append(Row(f"[q{i}]", False, Form(str(i), str(i), str(i + 1))))
    return out


def question(row: Row) -> str:
    if row.multi_choice:
        return f"{row.tag} In triangle ABC, angle A = 30. Which is angle B?\nChoices:\nA:30\nB:60\nC:90\nD:120"
    return f"{row.tag} Find the quantity asked for."


def write(root: Path) -> Path:
    """The 788-row ``testmini_text_only`` saved as the hub copy is (split ``testmini``)."""
    from datasets import Dataset, DatasetDict, Value

    data = [
        (
            str(3941 + i),
            str(i + 1),
            "Text Only",
            question(r),
            "",
            r.form.reference,
            ("free-form", "multi-choice")[r.multi_choice],
        )
        for i, r in enumerate(rows())
    ]
    path = root / "mathverse_text_only_full"
    ds = Dataset.from_dict(_mathverse_rows(data), features=_mathverse_features(Value("string")))
    DatasetDict({"testmini": ds}).save_to_disk(str(path))
    return path
