"""Behaviour mix of the cold-start traces: validated shares, drawn proportions, every task able to
show every behaviour with the right answer, reproducible bytes, and the shared detectors agreeing."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from ovr.config.stages import SyntheticConfig
from ovr.data.synthetic import DEFAULT_BEHAVIOURS, TRACES, check_behaviours, text_samples
from ovr.data.text_tasks import TEXT_TASKS
from ovr.rewards import score_item
from ovr.rewards.detectors import BEHAVIOURS, detect
from ovr.rewards.extract import last_boxed
from ovr.schema import ScoreItem

DETECTED = {"reflect": "reflection", "verify": "verification"}  # trace kind -> the detector that must fire


def _accuracy(s) -> float:
    text = s.messages[-1].content
    return score_item(ScoreItem(response=text, reference=s.answer, answer_type=s.answer_type)).accuracy


@pytest.mark.parametrize(
    "mix", [{"reflect": 0.5, "direct": 0.6}, {"reflect": -0.5, "direct": 1.5}, {"ponder": 1.0}, {}]
)
def test_bad_mixes_are_rejected_by_the_config(mix):
    with pytest.raises(ValidationError, match="behaviour"):
        SyntheticConfig(behaviours=mix)
    with pytest.raises(ValueError):
        text_samples(3, 0, behaviours=mix)


def test_config_default_is_the_generator_default():
    assert SyntheticConfig().behaviours == DEFAULT_BEHAVIOURS


def test_the_mix_sets_the_share_of_each_trace_kind():
    samples = text_samples(2000, seed=0, behaviours={"reflect": 0.25, "verify": 0.25, "direct": 0.5})
    kinds = Counter(s.provenance["behaviour"] for s in samples)
    assert set(kinds) == {"reflect", "verify", "direct"}
    assert abs(kinds["reflect"] / 2000 - 0.25) < 0.03 and abs(kinds["direct"] / 2000 - 0.5) < 0.03
    only = text_samples(50, seed=0, behaviours={"verify": 1.0, "reflect": 0.0})
    assert {s.provenance["behaviour"] for s in only} == {"verify"}
    assert "behaviour" not in text_samples(3, seed=0, split="eval")[0].provenance  # no trace, no kind


def test_questions_do_not_depend_on_the_mix():
    a = text_samples(60, seed=4, behaviours={"direct": 1.0})
    b = text_samples(60, seed=4, behaviours={"reflect": 1.0})
    assert [s.prompt for s in a] == [s.prompt for s in b] and [s.answer for s in a] == [s.answer for s in b]
    assert all(x.messages[-1].content != y.messages[-1].content for x, y in zip(a, b))


@pytest.mark.parametrize("kind", sorted(TRACES.names()))
@pytest.mark.parametrize("difficulty", [1, 3, 5])
def test_every_task_shows_every_kind_with_the_right_answer(kind, difficulty):
    samples = text_samples(20 * len(TEXT_TASKS), seed=difficulty, difficulty=difficulty, behaviours={kind: 1.0})
    assert Counter(s.subject for s in samples) == {t: 20 for t in TEXT_TASKS}
    for s in samples:
        text = s.messages[-1].content
        assert _accuracy(s) == 1.0 and last_boxed(text) == s.answer, text
        assert text.count("\\boxed") == 1 and "answer is" not in text.split("\n")[0].lower()
        counts = detect(text)
        if kind in DETECTED:
            assert counts[DETECTED[kind]] > 0, text
            assert all(counts[n] == 0 for n in BEHAVIOURS if n != DETECTED[kind]), text
        else:
            assert not any(counts.values()), text


def test_reflect_traces_make_a_real_slip_first():
    """The first lines differ from the right steps and the right answer appears only after "Wait"."""
    for s in text_samples(180, seed=2, behaviours={"reflect": 1.0}):
        task_lines = s.messages[-1].content.split("\n")
        noticed = next(i for i, line in enumerate(task_lines) if line.startswith("Wait,"))
        assert noticed >= 1 and task_lines[-1] == f"The answer is \\boxed{{{s.answer}}}."
        direct = text_samples(s.provenance["index"] + 1, seed=2, behaviours={"direct": 1.0})[-1]
        assert task_lines[:noticed] != direct.messages[-1].content.split("\n")[:-1]


def test_same_seed_same_bytes():
    mix = {"reflect": 0.3, "verify": 0.3, "direct": 0.4}
    a = [s.model_dump_json() for s in text_samples(90, seed=5, behaviours=mix)]
    assert a == [s.model_dump_json() for s in text_samples(90, seed=5, behaviours=dict(reversed(mix.items())))]
    assert a[:40] == [s.model_dump_json() for s in text_samples(40, seed=5, behaviours=mix)]  # prefix stable
    assert a != [s.model_dump_json() for s in text_samples(90, seed=6, behaviours=mix)]


def test_check_behaviours_allows_float_rounding():
    assert check_behaviours({"reflect": 0.1, "verify": 0.2, "direct": 0.7}) == {
        "reflect": 0.1,
        "verify": 0.2,
        "direct": 0.7,
    }
