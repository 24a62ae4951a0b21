"""Judge replies: well-formed counts parse; anything else is unknown (None), never zero."""

from __future__ import annotations

import pytest

from ovr.eval.judge import BEHAVIOURS, applicable, judge_prompt, parse_count


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("There are two checks. <count>2</count>", 2),
        ("<count> 0 </count>", 0),
        ("<COUNT>3</COUNT>", 3),
        ("first <count>1</count> ... final <count>1</count>", 1),
        ("Reasoning...\n<count>\n4\n</count>\n", 4),
    ],
)
def test_well_formed(reply, expected):
    assert parse_count(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "I count two verification steps.",
        "<count>two</count>",
        "<count>-1</count>",
        "<count>2.5</count>",
        "<count>N</count>",
        "<count>2",
        "<count></count>",
        "<count>1</count> or maybe <count>3</count>",  # contradictory
    ],
)
def test_malformed_is_unknown(reply):
    assert parse_count(reply) is None


def test_prompt_asks_for_count_tags_and_visual_only_for_images():
    p = judge_prompt(BEHAVIOURS["backward_chaining"], "Find x.", "x = 2")
    assert "<count>" in p and "backward chaining" in p and "Find x." in p and "x = 2" in p
    assert applicable(BEHAVIOURS["visual_reflection"], "image")
    assert not applicable(BEHAVIOURS["visual_reflection"], "text")
    assert applicable(BEHAVIOURS["verification"], "text")
