"""Streamed chat completions: the request body, and the responses accumulated from its chunks.

A rollout request asks vLLM for ``n`` responses with their token ids (``return_token_ids``) and
log-probs, streamed (``stream: true``) every ``stream_interval`` tokens of each response (vLLM's
per-request granularity; 1 token per chunk would triple the bytes). Each chunk carries, per
response index, the new text, token ids and log-probs, and a finish reason at the end; the first
chunks carry the prompt's token ids. :class:`GroupStream` accumulates them and remembers when each
response finished, so an attempt that breaks keeps its finished responses. A server that ignores
``stream`` and answers one JSON body is read by the same code (its ``message`` in place of ``delta``).

>>> g = GroupStream(n=1)
>>> g.feed({"choices": [{"index": 0, "delta": {"content": "4"}, "token_ids": [19],
...         "logprobs": {"content": [{"logprob": -0.1}]}, "finish_reason": "stop"}]}, now=1.0)
1
>>> [c.text for c in g.completions(version=2)]
['4']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import get_args

from ovr.models.chat import openai_messages
from ovr.rollout.protocol import ReplicaFailed, RolloutError
from ovr.schema import Completion, FinishReason, Sample


def chat_request(
    sample: Sample,
    model: str,
    n: int,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None = None,
    stream_interval: int | None = None,
    extra: dict | None = None,
) -> dict:
    """The ``/v1/chat/completions`` body for one prompt: streamed every ``stream_interval`` tokens
    (None: one JSON answer), ``seed`` for reproducible sampling, ``extra`` vLLM sampling parameters
    (e.g. ``min_tokens``)."""
    body = {
        "model": model,
        "messages": openai_messages(sample),
        "n": n,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "logprobs": True,
        "top_logprobs": 0,
        "return_token_ids": True,
    }
    if stream_interval is not None:
        body |= {"stream": True, "stream_interval": stream_interval}
    if seed is not None:
        body["seed"] = seed
    return body | (extra or {})


@dataclass
class Choice:
    """One response as it arrives."""

    parts: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    finished_at: float | None = None  # monotonic time its last chunk arrived
    saw_ids: bool = False  # the server sent token ids at all


class GroupStream:
    """The responses of one request, from its chunks (or from one non-streamed answer)."""

    def __init__(self, n: int):
        self.n = n
        self.choices: dict[int, Choice] = {}
        self.prompt_token_ids: list[int] | None = None
        self.last_chunk: float | None = None

    def feed(self, chunk: dict, now: float) -> int:
        """Add one chunk (or a whole answer); returns the tokens it carried."""
        if "error" in chunk:
            error = chunk["error"]
            raise ReplicaFailed(f"the stream reported an error: {json.dumps(error)[:300]}")
        self.last_chunk = now
        if chunk.get("prompt_token_ids"):
            self.prompt_token_ids = list(chunk["prompt_token_ids"])
        tokens = 0
        for c in chunk.get("choices") or []:
            if not 0 <= c["index"] < self.n:
                raise RolloutError(f"the server answered response index {c['index']} of {self.n}")
            choice = self.choices.setdefault(c["index"], Choice())
            text = (c.get("delta") or c.get("message") or {}).get("content")
            if text:
                choice.parts.append(text)
            if c.get("token_ids") is not None:
                choice.saw_ids = True
                choice.token_ids += c["token_ids"]
                tokens += len(c["token_ids"])
            choice.logprobs += [e["logprob"] for e in ((c.get("logprobs") or {}).get("content") or [])]
            if c.get("finish_reason"):
                choice.finish_reason = c["finish_reason"]
                choice.finished_at = now
        return tokens

    def finished(self) -> dict[int, Choice]:
        """The responses that reached their end, by index (an aborted one did not: it is sampled again)."""
        return {i: c for i, c in sorted(self.choices.items()) if c.finish_reason not in (None, "abort")}

    def completions(
        self, version: int, indices: list[int] | None = None, newest: int | None = None
    ) -> list[Completion]:
        """Finished responses (all, or those of ``indices``) as ``Completion``s sampled with ``version``
        (to ``newest`` when a push may have come during the request)."""
        done = self.finished()
        return [to_completion(done[i], version, newest) for i in (sorted(done) if indices is None else indices)]


def to_completion(choice: Choice, version: int, newest: int | None = None) -> Completion:
    """A finished response, after checking it has one log-prob per token id."""
    if not choice.saw_ids and choice.parts:
        raise RolloutError("the server returned no token ids (vLLM too old for return_token_ids?)")
    if len(choice.logprobs) != len(choice.token_ids):
        raise RolloutError(f"{len(choice.token_ids)} tokens but {len(choice.logprobs)} log-probs in a response")
    reason = choice.finish_reason or "stop"
    return Completion(
        text="".join(choice.parts),
        token_ids=choice.token_ids,
        logprobs=choice.logprobs,
        finish_reason=reason if reason in get_args(FinishReason) else "stop",
        weight_version=version,
        weight_version_max=newest if newest is not None and newest > version else None,
    )


def sse_data(line: str) -> dict | None:
    """The JSON of one server-sent-event line (``data: {...}``); None for others and ``[DONE]``.

    >>> sse_data('data: {"a": 1}'), sse_data("data: [DONE]"), sse_data("")
    ({'a': 1}, None, None)
    """
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    return json.loads(payload)
