"""The rule grader's exact rewritings (each: right answers accepted, wrong ones rejected), the grading
path of each reference, and the same paths through the reward service over HTTP."""

from __future__ import annotations

import doctest

import httpx
import pytest

from ovr.rewards import checkers, grading, normalize
from ovr.rewards.grading import grade, grading_path, reference_problem, string_match
from ovr.schema import ScoreResponse

# (reference, right answers, wrong answers)
FORMS = {
    "encoding": [
        ("60掳", ["60°", "60", "60^\\circ"], ["30°", "600"]),  # ° saved as UTF-8, read back as GBK
        ("45Â°", ["45°", "45"], ["46°"]),  # ... and as Latin-1
    ],
    "degrees": [
        ("120°", ["120", "120^{\\circ}", "120 \\degree"], ["60°", "12"]),
        ("60 \\degree", ["60°"], ["50°"]),
    ],
    "bearing": [
        ("045° T", ["45°", "045°T", "45^\\circ T", "N 45° E", "45"], ["54° T", "S 45° E", "135°", "45° W"]),
        ("090^\\circ T", ["90°", "090° T"], ["270° T", "9"]),
        ("N 30° E", ["030° T", "N30°E", "30°"], ["S 30° W", "N 30° W", "330°"]),
        ("S 45° W", ["225°", "225° T"], ["S 45° E", "45°"]),
    ],
    "named value": [
        ("x = 3", ["3", "x=3"], ["4", "x = 4"]),
        ("AB = 5", ["5", "AB=5"], ["6"]),
        ("A = (1, 2)", ["(1, 2)", "A(1,2)", "A = (1,2)"], ["B = (1, 2)", "(2, 1)", "A = (2, 1)"]),
    ],
    "coordinate pair": [
        ("(1, 2)", ["(1,2)", "P(1, 2)"], ["(2, 1)", "(1, 3)"]),
        ("A(-2, 3)", ["(-2, 3)", "A = (-2, 3)"], ["(2, -3)"]),
        ("(1, 3), (2, 4)", ["(2, 4), (1, 3)"], ["(1, 4)", "(1, 3)"]),  # two points, never the interval (1, 4)
    ],
    "intervals": [
        (
            "(0, 1) and [2, 3]",
            ["[2,3] \\cup (0,1)", "(0,1), [2,3]", "(0, 1) or [2, 3]"],
            ["(0, 1) \\cup (2, 3)", "(0,1)"],
        ),
        ("(-\\infty, 1) \\cup (3, \\infty)", ["(3, \\infty), (-\\infty, 1)"], ["(-\\infty, 1]\\cup(3, \\infty)"]),
        ("[0, \\frac{1}{2}) and (1, 2]", ["(1, 2] \\cup [0, \\frac{1}{2})"], ["[0, 2]", "[0, \\frac{1}{2}]"]),
    ],
    "fill-in statement": [
        ("The perimeter is 24 cm", ["24", "24 cm", "The perimeter is 24 cm."], ["25", "The perimeter is 25 cm"]),
        ("The value of x is 5", ["5", "x = 5"], ["6"]),
        ("The slope is \\frac{1}{2}", ["0.5", "1/2"], ["2"]),
    ],
}
CASES = [(kind, ref, right, wrong) for kind, rows in FORMS.items() for ref, right, wrong in rows]


@pytest.mark.parametrize(("kind", "ref", "right", "wrong"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_each_rewriting_accepts_right_and_rejects_wrong(kind, ref, right, wrong):
    assert grading_path(ref) == "rule" and reference_problem(ref) is None
    assert [a for a in right if grade(a, ref) != (True, "rule")] == []
    assert [a for a in wrong if grade(a, ref) != (False, "rule")] == []


def test_compass_bearings_no_longer_collapse_to_their_angle():
    # math-verify alone reads both as 30 (so the wrong direction scored 1) and 045° T as nothing
    assert checkers.check("S 30° W", "N 30° E", "math") is False
    assert checkers.check("270° T", "090^\\circ T", "math") is False


@pytest.mark.parametrize(
    ("ref", "answer_type", "path", "problem"),
    [
        ("It decreases on (0, 2) and increases after 2", "math", "string", grading.PROSE),
        ("∠1 = ∠2", "math", "string", grading.NOT_PARSEABLE),
        ("several", "number", "string", grading.NOT_CHECKABLE),
        ("True", "string", "string", "free-form label"),
        ("", "math", "ungraded", grading.EMPTY),
        ("C", "choice", "rule", None),
        ("1,234", "number", "rule", None),
    ],
)
def test_grading_path_of_each_reference(ref, answer_type, path, problem):
    choices = ["1", "2", "3"] if answer_type == "choice" else None
    assert grading_path(ref, answer_type, choices) == path
    assert reference_problem(ref, answer_type, choices) == problem


def test_string_path_matches_normalised_text_only():
    ref = "It decreases on (0, 2) and increases after 2"
    assert string_match("it decreases on (0, 2) and increases after 2.", ref)
    assert string_match("$\\text{It decreases on (0, 2) and increases after 2}$", ref)
    assert not string_match("It increases on (0, 2)", ref)
    assert grade("∠1 = ∠2", "∠1 = ∠2") == (True, "string") and grade("∠1 = ∠3", "∠1 = ∠2") == (False, "string")
    assert grade(None, "True", "string") == (False, "string") and grade("x", "", "math") == (False, "ungraded")


@pytest.mark.parametrize("module", [normalize, grading, checkers])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_service_reports_the_grading_path(reward_server):
    items = [
        {"response": "\\boxed{45°}", "reference": "045° T"},
        {"response": "\\boxed{54° T}", "reference": "045° T"},
        {"response": "\\boxed{both angles measure 45 degrees}", "reference": "Both angles measure 45 degrees"},
        {"response": "\\boxed{true}", "reference": "True", "answer_type": "string"},
        {"response": "\\boxed{1}", "reference": ""},
    ]
    resp = httpx.post(reward_server.url + "/v1/score", json={"items": items}, timeout=60)
    assert resp.status_code == 200, resp.text
    results = ScoreResponse.model_validate_json(resp.content).results
    assert [(r.accuracy, r.grading) for r in results] == [
        (1.0, "rule"),
        (0.0, "rule"),
        (1.0, "string"),
        (1.0, "string"),
        (0.0, "ungraded"),
    ]
