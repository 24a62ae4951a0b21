"""A table of response/reference pairs through the registered rewards, in-process (no time limit).

Covers every answer type (math, number, choice, string) and every extraction form (last box with
nested braces, answer tags, final-answer phrases, choice-letter spellings), positives and negatives.
"""

from __future__ import annotations

import pytest

from ovr.rewards import score_item
from ovr.schema import ScoreItem

B = "\\boxed"
CH = ["12 cm", "15 cm", "18 cm", "20 cm"]

# (reward, response, reference, answer_type, choices, expected accuracy)
TABLE = [
    # --- math: equivalence through math-verify, answer in the last box
    ("ovr_boxed", rf"so {B}{{\frac{{1}}{{2}}}}", "0.5", "math", None, 1),
    ("ovr_boxed", rf"{B}{{0.5}}", r"\frac{1}{2}", "math", None, 1),
    ("ovr_boxed", rf"{B}{{\dfrac{{10}}{{2}}}}", "5", "math", None, 1),
    ("ovr_boxed", rf"{B}{{50\%}}", "0.5", "math", None, 1),
    ("ovr_boxed", rf"{B}{{x=2}}", "2", "math", None, 1),
    ("ovr_boxed", rf"{B}{{y = 1 + 2x}}", "y=2x+1", "math", None, 1),
    ("ovr_boxed", rf"{B}{{\{{2, 1\}}}}", r"\{1,2\}", "math", None, 1),
    ("ovr_boxed", rf"{B}{{(0, 1]}}", "(0,1]", "math", None, 1),
    ("ovr_boxed", rf"{B}{{(0, 1)}}", "[0,1]", "math", None, 0),
    ("ovr_boxed", rf"{B}{{3\text{{ cm}}}}", "3", "math", None, 1),
    ("ovr_boxed", rf"{B}{{\frac{{\sqrt{{2}}}}{{2}}}}", r"\sqrt{2}/2", "math", None, 1),
    ("ovr_boxed", rf"{B}{{(x+1)^2}}", "x^2+2x+1", "math", None, 1),
    ("ovr_boxed", rf"{B}{{10.0}}", "10", "math", None, 1),
    ("ovr_boxed", rf"{B}{{3.14159}}", r"\pi", "math", None, 0),
    ("ovr_boxed", rf"{B}{{0.333}}", "1/3", "math", None, 0),
    ("ovr_boxed", rf"{B}{{7}}", "8", "math", None, 0),
    ("ovr_boxed", rf"first {B}{{3}} then, wait, {B}{{4}}", "4", "math", None, 1),
    ("ovr_boxed", rf"first {B}{{4}} then {B}{{3}}", "4", "math", None, 0),
    ("ovr_boxed", rf"{B}{{\frac{{\frac{{1}}{{2}}}}{{2}}}}", "1/4", "math", None, 1),
    ("ovr_boxed", rf"{B} 42.", "42", "math", None, 1),
    ("ovr_boxed", r"\fbox{42}", "42", "math", None, 1),
    ("ovr_boxed", rf"{B}{{4}} and later {B}{{4", "4", "math", None, 0),  # last box unclosed (cut off)
    ("ovr_boxed", "The answer is 4.", "4", "math", None, 0),  # the paper's reward needs a box
    ("ovr_boxed", "", "4", "math", None, 0),
    ("ovr_boxed", rf"{B}{{}}", "4", "math", None, 0),
    ("ovr_boxed", rf"{B}{{2\sqrt{{3}}}}", r"\sqrt{12}", "math", None, 1),
    ("ovr_boxed", rf"{B}{{-\frac{{3}}{{4}}}}", "-0.75", "math", None, 1),
    ("ovr_boxed", rf"{B}{{90^\circ}}", "90", "math", None, 1),
    # --- number: tolerance, separators, fractions, units
    ("ovr_boxed", rf"{B}{{1,234}}", "1234", "number", None, 1),
    ("ovr_boxed", rf"{B}{{3.1416}}", "3.14159", "number", None, 1),
    ("ovr_boxed", rf"{B}{{3.2}}", "3.14159", "number", None, 0),
    ("ovr_boxed", rf"{B}{{\frac{{3}}{{4}}}}", "0.75", "number", None, 1),
    ("ovr_boxed", rf"{B}{{12 \text{{cm}}}}", "12", "number", None, 1),
    ("ovr_boxed", rf"{B}{{45\%}}", "45", "number", None, 1),
    ("ovr_boxed", rf"{B}{{1e-3}}", "0.001", "number", None, 1),
    ("ovr_boxed", rf"{B}{{twelve}}", "12", "number", None, 0),
    ("ovr_boxed", rf"{B}{{-7}}", "7", "number", None, 0),
    # --- choice: letters in their spellings, option text mapped to its letter
    ("ovr_boxed", rf"{B}{{B}}", "B", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{(B)}}", "B", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{B. 15 cm}}", "B", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{\text{{(C)}}}}", "C", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{15 cm}}", "B", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{C}}", "B", "choice", CH, 0),
    ("ovr_boxed", rf"{B}{{b}}", "B", "choice", CH, 1),
    ("ovr_boxed", rf"{B}{{B}}", "15 cm", "choice", CH, 1),
    ("ovr_boxed", "**Answer:** B", "B", "choice", CH, 0),  # no box: the paper's reward gives 0
    ("any_answer", "**Answer:** B", "B", "choice", CH, 1),
    ("any_answer", "The correct option is (D).\nAnswer: (D)", "D", "choice", CH, 1),
    ("any_answer", "Final Answer: The final answer is A. I hope it is correct.", "A", "choice", CH, 1),
    ("any_answer", "Answer: B) 15 cm", "B", "choice", CH, 1),
    ("any_answer", "Answer: B) 15 cm", "A", "choice", CH, 0),
    ("any_answer", "I think it is 15 cm", "B", "choice", CH, 0),
    # --- string: exact after normalisation
    ("ovr_boxed", rf"{B}{{\text{{Isosceles}}}}", "isosceles", "string", None, 1),
    ("ovr_boxed", rf"{B}{{  Right   Triangle. }}", "right triangle", "string", None, 1),
    ("ovr_boxed", rf"{B}{{scalene}}", "isosceles", "string", None, 0),
    ("any_answer", "The answer is: yes.", "Yes", "string", None, 1),
    ("any_answer", "The answer is: no", "Yes", "string", None, 0),
    # --- other extraction forms through any_answer / think_answer
    ("any_answer", "<answer>x = 2</answer>", "2", "math", None, 1),
    ("any_answer", rf"<answer>so {B}{{7}}</answer>", "7", "math", None, 1),
    ("any_answer", "Thus, the final answer is $\\frac{3}{4}$.", "0.75", "math", None, 1),
    ("any_answer", "no answer here at all", "3", "math", None, 0),
    ("think_answer", "<think>2+2=4</think><answer>4</answer>", "4", "math", None, 1),
    ("think_answer", "<think>2+2=5</think><answer>5</answer>", "4", "math", None, 0),
    ("think_answer", rf"<think>hm</think> <answer>{B}{{12}}</answer>", "12", "number", None, 1),
    ("think_answer", "<think>..</think><answer>(C)</answer>", "C", "choice", CH, 1),
]


@pytest.mark.parametrize("reward,response,reference,answer_type,choices,expected", TABLE)
def test_table(reward, response, reference, answer_type, choices, expected):
    item = ScoreItem(response=response, reference=reference, answer_type=answer_type, reward=reward, choices=choices)
    result = score_item(item)
    assert result.accuracy == expected, result
    assert result.timed_out is False and result.error is None


def test_table_is_broad():
    assert len(TABLE) >= 60
    assert {row[3] for row in TABLE} == {"math", "number", "choice", "string"}
    assert {row[0] for row in TABLE} == {"ovr_boxed", "any_answer", "think_answer"}
    assert {row[5] for row in TABLE} == {0, 1}
