"""Multiple-choice grading against the references and responses real benchmarks produce: letters in
every common spelling, the option text instead of the letter, several letters for multiple-answer
questions (order-insensitive), True/False; and the wrong ones rejected."""

from __future__ import annotations

import pytest

from ovr.rewards import score_item
from ovr.rewards.checkers import choice_set
from ovr.rewards.extract import choice_letters
from ovr.schema import ScoreItem

CH = ["12 cm", "15 cm", "18 cm", "20 cm"]
TF = ["True", "False"]
FRACTIONS = ["$\\frac{1}{2}$", "$\\frac{2}{3}$", "$2$"]

# (response, reference, choices, expected accuracy) through ovr_boxed (the RL reward)
ACCEPTED = [
    ("\\boxed{C}", "C", CH),
    ("\\boxed{(C)}", "C", CH),
    ("\\boxed{C.}", "C", CH),
    ("\\boxed{c}", "C", CH),
    ("\\boxed{\\text{C}}", "C", CH),
    ("\\boxed{\\textbf{(C)}}", "C", CH),
    ("\\boxed{C) 18 cm}", "C", CH),
    ("\\boxed{18 cm}", "C", CH),  # the option text instead of the letter
    ("\\boxed{18\\text{ cm}}", "C", CH),
    ("\\boxed{C}", "(C)", CH),  # MathVerse writes the reference as (C)
    ("\\boxed{C}", "C.", CH),
    ("\\boxed{C}", "18 cm", CH),  # MathVista writes the option text
    ("\\boxed{0.5}", "A", FRACTIONS),  # the option's value
    ("\\boxed{A, C}", "A\nC", CH),  # several letters, order-insensitive
    ("\\boxed{C, A}", "A\nC", CH),
    ("\\boxed{A and C}", "A, C", CH),
    ("\\boxed{(A)(C)}", "A, C", CH),
    ("\\boxed{AC}", "A, C", CH),
    ("\\boxed{A\\text{ and }C}", "C, A", CH),
    ("\\boxed{12 cm, 18 cm}", "A, C", CH),
    ("\\boxed{False}", "B", TF),  # True/False
    ("\\boxed{\\text{False}}", "False", TF),
    ("\\boxed{B}", "False", TF),
    ("\\boxed{false}", "False", None),  # True/False with no options given: compared as text
]

REJECTED = [
    ("\\boxed{D}", "C", CH),
    ("\\boxed{(B)}", "C", CH),
    ("\\boxed{15 cm}", "C", CH),
    ("\\boxed{E}", "C", CH),
    ("\\boxed{18}", "C", ["18 cm", "18 m"]),  # a value matching no option text
    ("\\boxed{2/3}", "A", FRACTIONS),
    ("The answer is C.", "C", CH),  # the paper's reward needs a box
    ("\\boxed{A}", "A\nC", CH),  # one of two answers is not the answer
    ("\\boxed{A, B, C}", "A, C", CH),
    ("\\boxed{C}", "A, C", CH),
    ("\\boxed{AC}", "A, C", ["x", "y"]),  # run-together letters beyond the options are not letters
    ("\\boxed{True}", "B", TF),
    ("\\boxed{A}", "False", TF),
    ("\\boxed{true}", "False", None),
    ("\\boxed{}", "C", CH),
]


@pytest.mark.parametrize("response,reference,choices", ACCEPTED)
def test_accepted_forms(response, reference, choices):
    item = ScoreItem(response=response, reference=reference, answer_type="choice", choices=choices)
    assert score_item(item).accuracy == 1.0


@pytest.mark.parametrize("response,reference,choices", REJECTED)
def test_rejected_forms(response, reference, choices):
    item = ScoreItem(response=response, reference=reference, answer_type="choice", choices=choices)
    assert score_item(item).accuracy == 0.0


@pytest.mark.parametrize(
    "reward,response",
    [
        ("any_answer", "So the answer is (A) and (C)."),
        ("any_answer", "**Answer:** C, A"),
        ("think_answer", "<think>..</think><answer>A, C</answer>"),
    ],
)
def test_lenient_rewards_read_several_letters(reward, response):
    item = ScoreItem(response=response, reference="A\nC", answer_type="choice", choices=CH, reward=reward)
    assert score_item(item).accuracy == 1.0


def test_letter_parsing():
    assert choice_letters("(A)(C)") == ("A", "C")
    assert choice_letters("A, c;  B") == ("A", "B", "C")
    assert choice_letters("I think C") is None and choice_letters("12") is None
    assert choice_set("A triangle", ["A triangle", "A square"]) == frozenset({"A"})
    assert choice_set("A square", ["A triangle", "A square"]) == frozenset({"B"})  # option text beats a leading letter
    assert choice_set("nothing", CH) is None


def test_table_covers_both_outcomes():
    assert len(ACCEPTED) >= 20 and len(REJECTED) >= 12
