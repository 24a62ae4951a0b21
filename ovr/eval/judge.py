"""LLM-judge behaviour counting: OVR-style prompts to any OpenAI-compatible chat endpoint.

For each response and each behaviour the judge is asked to count distinct occurrences and to answer
``<count>N</count>`` (the protocol of "Cognitive Behaviors that Enable Self-Improving Reasoners",
which OVR follows). A reply without exactly one usable count is *unknown* (``None``), never 0:
a broken judge must not look like a model without the behaviour. The judge sees the question text
and the response (not the image). An endpoint that stays unreachable or rejects requests raises
:class:`JudgeError` (the responses are already saved by then).

>>> parse_count("Two verification steps. <count>2</count>")
2
>>> parse_count("I think there are two.") is None
True
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import Literal

from ovr.config import JudgeConfig
from ovr.retry import retry_async

_COUNT = re.compile(r"<count>(.*?)</count>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Behaviour:
    """A cognitive behaviour the judge counts."""

    name: str
    kind: Literal["language", "visual"]
    definition: str
    example: str


BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in [
        Behaviour(
            "backtracking",
            "language",
            "the model realises a path will not work and explicitly goes back to try a different approach",
            "'This gives a negative length, which is impossible. Let me try another way.'",
        ),
        Behaviour(
            "verification",
            "language",
            "the model checks an intermediate or final result, e.g. by substituting it back",
            "'Let me check: 3 * 4 = 12, which matches the total.'",
        ),
        Behaviour(
            "subgoal_setting",
            "language",
            "the model breaks the problem into smaller intermediate goals",
            "'First I will find the radius, then use it to compute the area.'",
        ),
        Behaviour(
            "backward_chaining",
            "language",
            "the model starts from the goal and works backwards to what is needed",
            "'To get the area we need the height, so we need the angle at B.'",
        ),
        Behaviour(
            "visual_reflection",
            "visual",
            "the model looks at the image again and corrects or doubts its reading of it",
            "'Wait, looking at the figure again, the third bar is taller than I said.'",
        ),
        Behaviour(
            "visual_divide_and_conquer",
            "visual",
            "the model splits the image into parts or regions and handles them one by one",
            "'Let me count the shapes in the top row first, then the bottom row.'",
        ),
        Behaviour(
            "visual_verification",
            "visual",
            "the model checks a conclusion against what the image shows",
            "'This matches the picture: the angle marked at C is indeed obtuse.'",
        ),
        Behaviour(
            "goal_driven_visual_tracing",
            "visual",
            "the model follows lines, paths or elements in the image to reach a target",
            "'Following the line from point A to the right, it meets the circle at D.'",
        ),
    ]
}


class JudgeError(RuntimeError):
    """The judge endpoint could not be reached or answered with an HTTP error after retries."""


def judge_prompt(behaviour: Behaviour, question: str, response: str) -> str:
    """The user message asking the judge to count one behaviour in one response."""
    return (
        "Here is a problem and a chain of reasoning that a model generated while solving it.\n\n"
        f"<problem>\n{question}\n</problem>\n\n<reasoning>\n{response}\n</reasoning>\n\n"
        f"Evaluate whether the reasoning contains any {behaviour.name.replace('_', ' ')} steps: "
        f"{behaviour.definition}. An example of such a step: {behaviour.example}\n"
        "Count the number of distinct such steps and give the count between the tags "
        "<count> </count>. If there are none, answer <count>0</count>."
    )


def parse_count(text: str | None) -> int | None:
    """The judge's count, or None when the reply has no single non-negative integer count."""
    if not text:
        return None
    values = set()
    for raw in _COUNT.findall(text):
        raw = raw.strip()
        if not raw.isdigit():
            return None
        values.add(int(raw))
    return values.pop() if len(values) == 1 else None


def applicable(behaviour: Behaviour, modality: str) -> bool:
    """Visual behaviours are only asked about responses to image questions."""
    return behaviour.kind == "language" or modality == "image"


async def ask(client, cfg: JudgeConfig, prompt: str, headers: dict[str, str]) -> str | None:
    """The judge's reply to one user message (retries connection errors and 5xx; 4xx raises)."""
    body = {
        "model": cfg.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
    }
    url = f"{cfg.base_url.rstrip('/')}/chat/completions"

    async def ask() -> str | None:
        resp = await client.post(url, json=body, headers=headers, timeout=cfg.timeout_s)
        if resp.status_code >= 500:
            raise JudgeError(f"judge answered {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            raise _Rejected(f"judge at {url} rejected the request: {resp.text[:300]}")
        choices = resp.json().get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content")

    try:
        return await retry_async(
            ask, retries=cfg.retries, backoff_s=0.5, retry_on=lambda e: not isinstance(e, _Rejected)
        )
    except _Rejected as err:
        raise JudgeError(str(err)) from err
    except Exception as err:  # connection errors, timeouts, 5xx: after the last try
        raise JudgeError(f"judge at {url} failed after {cfg.retries + 1} tries: {err}") from err


class _Rejected(Exception):
    """The judge refused the request itself (4xx): no retry helps."""


async def judge_counts(
    items: list[tuple[str, str, str]], cfg: JudgeConfig, progress: bool = True
) -> list[dict[str, int | None]]:
    """Counts per behaviour for each ``(question, response, modality)``; None = unusable reply."""
    import httpx
    from tqdm.auto import tqdm

    if not cfg.base_url:
        raise ValueError("eval.judge.base_url must be set when the judge is enabled")
    unknown = [b for b in cfg.behaviours if b not in BEHAVIOURS]
    if unknown:
        raise ValueError(f"unknown judge behaviours {unknown}; known: {sorted(BEHAVIOURS)}")
    key = os.environ.get(cfg.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    jobs = [
        (i, name)
        for i, (_, _, modality) in enumerate(items)
        for name in cfg.behaviours
        if applicable(BEHAVIOURS[name], modality)
    ]
    out: list[dict[str, int | None]] = [{} for _ in items]
    gate = asyncio.Semaphore(cfg.max_concurrency)
    bar = tqdm(total=len(jobs), desc="judge", unit="req", disable=not progress)

    async def one(client, i: int, name: str) -> None:
        question, response, _ = items[i]
        async with gate:
            reply = await ask(client, cfg, judge_prompt(BEHAVIOURS[name], question, response), headers)
        out[i][name] = parse_count(reply)
        bar.update()

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(one(client, i, name) for i, name in jobs))
    bar.close()
    return out
