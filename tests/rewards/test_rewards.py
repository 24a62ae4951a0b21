"""Unit tests of the reward functions' shared rules, the registry, extraction helpers and doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest
from pydantic import ValidationError

from ovr.rewards import options_from_config, registry, score_item, score_items, validate_item
from ovr.rewards.checkers import check, parse_number
from ovr.rewards.extract import extract_answer, last_boxed, reflection_counts
from ovr.schema import ScoreItem

MODULES = [
    "ovr.rewards",
    "ovr.rewards.extract",
    "ovr.rewards.checkers",
    "ovr.rewards.options",
    "ovr.rewards.registry",
    "ovr.rewards.functions",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_registry_names_and_duplicates():
    assert {"ovr_boxed", "think_answer", "any_answer"} <= set(registry.names())
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ovr_boxed")(lambda item: None)
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        registry.get("nope")


def test_truncated_scores_zero_even_when_right():
    item = ScoreItem(response=r"\boxed{4}", reference="4", truncated=True)
    r = score_item(item)
    assert (r.overall, r.accuracy, r.format) == (0.0, 0.0, 0.0)
    assert r.extracted == "4"


@pytest.mark.parametrize(
    "response,fmt",
    [
        ("<think>a</think><answer>4</answer>", 1.0),
        ("  <think>a\nb</think>\n<answer>4</answer>\n", 1.0),
        ("<answer>4</answer>", 0.0),
        ("<think>a</think>4", 0.0),
        ("<think>a</think><answer>4</answer> trailing", 0.0),
        ("<think>a<think>b</think><answer>4</answer>", 0.0),
        ("<think>a</think><answer>4</answer><answer>5</answer>", 0.0),
    ],
)
def test_think_answer_format(response, fmt):
    r = score_item(ScoreItem(response=response, reference="4", reward="think_answer"))
    assert r.format == fmt
    assert r.overall == pytest.approx(r.accuracy + 0.5 * fmt)


def test_format_tags_and_weight_are_options():
    item = ScoreItem(
        response="<reason>x</reason><final>4</final>",
        reference="4",
        reward="think_answer",
        options={"think_tag": "reason", "answer_tag": "final", "format_weight": 0.25},
    )
    r = score_item(item)
    assert (r.accuracy, r.format, r.overall) == (1.0, 1.0, 1.25)


def test_overlong_shaping():
    base = dict(response=r"\boxed{4}", reference="4", max_tokens=100, options={"overlong_buffer": 20})
    assert score_item(ScoreItem(**base, response_tokens=50)).overall == 1.0
    r = score_item(ScoreItem(**base, response_tokens=95))
    assert r.extra["overlong"] == pytest.approx(-0.75) and r.overall == pytest.approx(0.25)
    assert score_item(ScoreItem(**base, response_tokens=100, truncated=True)).overall == pytest.approx(-1.0)
    assert "overlong" not in score_item(ScoreItem(response=r"\boxed{4}", reference="4")).extra


def test_reflection_counts_reported_not_rewarded():
    text = r"Wait, that is off. Let me recheck. However, wait, fine. \boxed{3}"
    r = score_item(ScoreItem(response=text, reference="4"))
    assert r.reflection == {"wait,": 2, "recheck": 1, "retry": 0, "alternatively,": 0, "however,": 1}
    assert r.overall == 0.0
    assert reflection_counts("RETRY retry", ["retry"]) == {"retry": 2}


def test_bad_options_and_types_are_clear_errors():
    with pytest.raises(ValidationError, match="unknown_knob"):
        validate_item(ScoreItem(response="x", reference="y", options={"unknown_knob": 1}))
    with pytest.raises(ValidationError, match="format_weight"):
        validate_item(ScoreItem(response="x", reference="y", options={"format_weight": -1}))
    with pytest.raises(ValueError, match="unknown answer_type"):
        check("1", "1", "colour")
    with pytest.raises(KeyError):
        score_items([ScoreItem(response="x", reference="y", reward="missing")])


def test_number_tolerance_option():
    item = dict(response=r"\boxed{3.2}", reference="3.14159", answer_type="number")
    assert score_item(ScoreItem(**item)).accuracy == 0.0
    assert score_item(ScoreItem(**item, options={"rel_tol": 0.05})).accuracy == 1.0
    assert parse_number("1/0") is None


def test_extraction_edge_cases():
    assert last_boxed(r"\boxed{a{b}c}") == "a{b}c"
    assert last_boxed("x" * 1_000_000 + r"\boxed{7}") == "7"
    assert extract_answer("nothing", "math") is None
    assert extract_answer(r"<answer>A</answer> \boxed{C}", "choice") == "C"


def test_options_from_config():
    from ovr.config import RewardConfig

    assert options_from_config(RewardConfig()) == {"format_weight": 0.0, "truncated_reward": 0.0}
    opts = options_from_config(RewardConfig(overlong_buffer=8, truncated_reward=-1), ["wait,"])
    assert opts["overlong_buffer"] == 8 and opts["truncated_reward"] == -1 and opts["reflection_words"] == ["wait,"]


def test_truncated_reward_and_overlong_shaping_add_up():
    """A truncated response scores ``truncated_reward`` plus the full overlong penalty; a finished one
    near the limit keeps its accuracy minus the partial penalty (the service applies both)."""
    opts = {"truncated_reward": -0.5, "overlong_buffer": 10}
    cut = score_item(
        ScoreItem(
            response=r"\boxed{4}", reference="4", truncated=True, response_tokens=100, max_tokens=100, options=opts
        )
    )
    assert cut.accuracy == 0.0 and cut.overall == pytest.approx(-1.5)
    near = score_item(ScoreItem(response=r"\boxed{4}", reference="4", response_tokens=95, max_tokens=100, options=opts))
    assert near.accuracy == 1.0 and near.overall == pytest.approx(0.5)
