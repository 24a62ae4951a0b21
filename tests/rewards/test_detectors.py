"""The named behaviour detectors: what each finds, what none finds, and eval records carrying them."""

from __future__ import annotations

import pytest

from ovr.eval import behaviour
from ovr.eval.records import ResponseRecord
from ovr.rewards.detectors import BEHAVIOURS, detect, has_behaviour, rate_counts, text_rates


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("2 + 6 = 7.\nWait, let me recheck: 2 + 6 = 8, not 7.", "reflection"),
        ("The shape is blue. Wait, that is wrong: it is red.", "reflection"),
        ("Hmm, I made a mistake above.", "reflection"),
        ("Let me re-check the sum.", "reflection"),
        ("4 * 5 = 20.\nLet me verify: 20 / 5 = 4.", "verification"),
        ("I double-check the count.", "verification"),
        ("Check: 3 + 4 = 7.", "verification"),
        ("That path fails, let me try again from the start.", "backtracking"),
        ("Alternatively, count the rows.", "backtracking"),
    ],
)
def test_each_detector_finds_its_behaviour(text, name):
    assert has_behaviour(text, name) and detect(text)[name] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "2 + 6 = 8.\nThe answer is \\boxed{8}.",
        "Count them: 3 + 3 = 6.\nThe answer is \\boxed{6}.",
        "Dan is taller than Ann.\nThe tallest is Dan.\nThe answer is \\boxed{Dan}.",
        "The waiter checks the bill.",  # "waiter", "checks": no whole-word match
    ],
)
def test_direct_traces_show_no_behaviour(text):
    assert detect(text) == dict.fromkeys(BEHAVIOURS, 0)


def test_counts_and_rates_add_up():
    assert detect("Wait, wait. Let me recheck.")["reflection"] == 3
    n, hits = rate_counts([detect("Wait, no."), detect("fine"), detect("Let me verify: ok")])
    assert n == 3 and hits == {"reflection": 1, "verification": 1, "backtracking": 0}
    rates = text_rates(["Wait, no.", "fine", "fine", "Let me verify: ok"])
    assert rates == {"responses": 4, "reflection": 0.25, "verification": 0.25, "backtracking": 0.0}
    assert text_rates([])["reflection"] == 0.0


def _rec(text, acc, modality="image"):
    return ResponseRecord(
        sample_id=text,
        benchmark="b",
        modality=modality,
        index=0,
        prompt="p",
        reference="1",
        text=text,
        finish_reason="stop",
        length=3,
        accuracy=acc,
        behaviours=detect(text),
    )


def test_eval_rates_use_the_detectors_and_split_accuracy_by_behaviour():
    records = [
        _rec("Wait, recheck: \\boxed{1}", 1.0),
        _rec("Wait, no: \\boxed{1}", 1.0),
        _rec("\\boxed{2}", 0.0),
        _rec("\\boxed{1}", 1.0),
    ]
    r = behaviour.rates("b", records)
    assert r.rates["reflection"] == 0.5 and r.rates["verification"] == 0.0
    assert r.accuracy_with["reflection"] == 1.0 and r.accuracy_without["reflection"] == 0.5
    assert r.accuracy_with["verification"] is None and r.accuracy_without["verification"] == 0.75
