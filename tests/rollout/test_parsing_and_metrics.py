"""Pure pieces of the rollout client and the log-prob cross-check."""

from __future__ import annotations

import math

import pytest

from ovr.rollout.client import RolloutError, chat_request, parse_group, parse_version
from ovr.rollout.logprobs import logprob_mismatch


def choice(i, ids, lps, reason="length"):
    return {
        "index": i,
        "message": {"content": "x" * len(ids)},
        "token_ids": ids,
        "finish_reason": reason,
        "logprobs": {"content": [{"logprob": lp} for lp in lps]},
    }


def test_parse_group_orders_choices_and_keeps_everything():
    body = {"prompt_token_ids": [1, 2], "choices": [choice(1, [7], [-0.5], "stop"), choice(0, [5, 6], [-1.0, -2.0])]}
    group = parse_group("s", body, 2, version=3)
    assert group.prompt_token_ids == [1, 2]
    assert [c.token_ids for c in group.completions] == [[5, 6], [7]]
    assert [c.finish_reason for c in group.completions] == ["length", "stop"]
    assert group.completions[0].truncated and group.completions[1].weight_version == 3


def test_parse_group_rejects_incomplete_answers():
    with pytest.raises(RolloutError, match="asked for 2"):
        parse_group("s", {"choices": [choice(0, [5], [-1.0])]}, 2, 0)
    with pytest.raises(RolloutError, match="1 log-probs"):
        parse_group("s", {"choices": [choice(0, [5, 6], [-1.0])]}, 1, 0)


def test_chat_request_and_version_parsing(samples):
    s = samples[0]
    body = chat_request(s, "policy", 4, 32, 1.0, 0.9)
    assert body["n"] == 4 and body["return_token_ids"] and body["logprobs"] and body["top_p"] == 0.9
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parse_version("default") == 0 and parse_version("7") == 7
    assert "seed" not in body and chat_request(s, "policy", 4, 32, 1.0, 0.9, seed=11)["seed"] == 11


def test_logprob_mismatch_values_and_errors():
    gap = logprob_mismatch([[-1.0, -2.0], [-0.5]], [[-1.2, -2.0], [-0.4]])
    assert gap["tokens"] == 3 and math.isclose(gap["logprob_abs_diff_max"], 0.2)
    assert math.isclose(gap["logprob_abs_diff_mean"], 0.1) and math.isclose(gap["ratio_max"], math.exp(0.2))
    assert logprob_mismatch([], [])["ratio_max"] == 1.0
    with pytest.raises(ValueError, match="2 trainer log-probs vs 1"):
        logprob_mismatch([[-1.0, -2.0]], [[-1.0]])
