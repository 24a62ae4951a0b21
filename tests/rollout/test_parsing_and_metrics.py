"""Pure pieces of the rollout client and the log-prob cross-check."""

from __future__ import annotations

import math

import pytest

from ovr.rollout.client import RolloutError, chat_request, parse_version
from ovr.rollout.logprobs import logprob_mismatch
from ovr.rollout.protocol import ReplicaFailed, generated_tokens
from ovr.rollout.stream import GroupStream, sse_data


def chunk(i, ids, lps, reason=None, key="delta"):
    return {
        "index": i,
        key: {"content": "x" * len(ids)},
        "token_ids": ids,
        "finish_reason": reason,
        "logprobs": {"content": [{"logprob": lp} for lp in lps]},
    }


def test_stream_accumulates_chunks_per_response_and_keeps_finish_times():
    g = GroupStream(n=2)
    g.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "prompt_token_ids": [1, 2]}, 0.0)
    assert g.feed({"choices": [chunk(0, [5], [-1.0]), chunk(1, [7], [-0.5], "stop")]}, 1.0) == 2
    assert g.feed({"choices": [chunk(0, [6], [-2.0], "length")]}, 2.0) == 1
    assert g.prompt_token_ids == [1, 2] and g.last_chunk == 2.0
    assert {i: c.finished_at for i, c in g.finished().items()} == {0: 2.0, 1: 1.0}
    done = g.completions(version=3)
    assert [c.token_ids for c in done] == [[5, 6], [7]] and [c.text for c in done] == ["xx", "x"]
    assert [c.finish_reason for c in done] == ["length", "stop"] and done[0].truncated
    assert {c.weight_version for c in done} == {3} and g.completions(3, [1])[0].token_ids == [7]


def test_stream_reads_a_whole_json_answer_too():
    g = GroupStream(n=1)
    g.feed({"prompt_token_ids": [1], "choices": [chunk(0, [5, 6], [-1.0, -2.0], "stop", key="message")]}, 0.0)
    assert g.completions(0)[0].token_ids == [5, 6]


def test_stream_rejects_incomplete_answers_and_reports_errors():
    g = GroupStream(n=1)
    g.feed({"choices": [chunk(0, [5, 6], [-1.0], "stop")]}, 0.0)
    with pytest.raises(RolloutError, match="1 log-probs"):
        g.completions(0)
    with pytest.raises(RolloutError, match="index 1 of 1"):
        g.feed({"choices": [chunk(1, [5], [-1.0])]}, 0.0)
    with pytest.raises(ReplicaFailed, match="Engine died"):
        g.feed({"error": {"message": "Engine died", "code": 500}}, 0.0)
    no_ids = GroupStream(n=1)
    no_ids.feed({"choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}]}, 0.0)
    with pytest.raises(RolloutError, match="no token ids"):
        no_ids.completions(0)


def test_sse_lines_and_the_generated_token_counter():
    assert sse_data('data: {"a": 1}') == {"a": 1} and sse_data("data: [DONE]") is None and sse_data(": ping") is None
    page = 'vllm:generation_tokens_total{engine="0"} 10.0\nvllm:generation_tokens_total{engine="1"} 5.0\n'
    assert generated_tokens(page) == 15.0 and generated_tokens("# nothing\n") is None


def test_chat_request_and_version_parsing(samples):
    s = samples[0]
    body = chat_request(s, "policy", 4, 32, 1.0, 0.9)
    assert body["n"] == 4 and body["return_token_ids"] and body["logprobs"] and body["top_p"] == 0.9
    assert "stream" not in body
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parse_version("default") == 0 and parse_version("7") == 7
    assert "seed" not in body and chat_request(s, "policy", 4, 32, 1.0, 0.9, seed=11)["seed"] == 11
    streamed = chat_request(s, "policy", 4, 32, 1.0, 0.9, stream_interval=64, extra={"min_tokens": 8})
    assert streamed["stream"] and streamed["stream_interval"] == 64 and streamed["min_tokens"] == 8


def test_logprob_mismatch_values_and_errors():
    gap = logprob_mismatch([[-1.0, -2.0], [-0.5]], [[-1.2, -2.0], [-0.4]])
    assert gap["tokens"] == 3 and math.isclose(gap["logprob_abs_diff_max"], 0.2)
    assert math.isclose(gap["logprob_abs_diff_mean"], 0.1) and math.isclose(gap["ratio_max"], math.exp(0.2))
    assert logprob_mismatch([], [])["ratio_max"] == 1.0
    with pytest.raises(ValueError, match="2 trainer log-probs vs 1"):
        logprob_mismatch([[-1.0, -2.0]], [[-1.0]])
