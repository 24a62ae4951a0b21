"""LLM-judge grading of answers whose reference no rule reads (``eval.judge.grade_answers``).

The VLMEvalKit convention for MathVerse and MathVista: extract the answer and match it by rule; ask
a judge model only where the rules cannot. Here the items whose reference the rule grader cannot
read (grading path ``string``, :mod:`ovr.rewards.grading`) are sent to the judge with the question,
the reference and the end of the response (where the final answer is); the judge answers
``<judgement>1</judgement>`` (same answer) or ``<judgement>0</judgement>``. A reply without exactly one
such verdict grades nothing: the response is counted ``ungraded`` (and scores 0), never guessed.
The endpoint, model and limits are ``eval.judge``'s (:class:`ovr.config.JudgeConfig`).

>>> parse_judgement("The answers agree. <judgement>1</judgement>"), parse_judgement("maybe")
(True, None)
"""

from __future__ import annotations

import asyncio
import os
import re

from ovr.config import JudgeConfig

_JUDGEMENT = re.compile(r"<judgement>\s*([^<]*?)\s*</judgement>", re.IGNORECASE)
RESPONSE_TAIL = 4000  # characters of the response shown to the judge (its end holds the final answer)


def answer_prompt(question: str, reference: str, response: str, extracted: str | None = None) -> str:
    """The user message asking the judge whether ``response`` answers ``question`` with ``reference``."""
    tail = response[-RESPONSE_TAIL:]
    found = f"\nThe answer extracted by rule (may be missing or partial): {extracted}\n" if extracted else ""
    return (
        "You are grading the final answer of a model's response to a question against the reference answer.\n\n"
        f"<question>\n{question}\n</question>\n\n<reference>\n{reference}\n</reference>\n\n"
        f"<response>\n{tail}\n</response>\n{found}\n"
        "First find the model's final answer in the response. It is correct if it states the same answer "
        "as the reference (equivalent forms count; a different value, or a missing or extra part, does not). "
        "Reply with <judgement>1</judgement> if it is correct and <judgement>0</judgement> if it is not."
    )


def parse_judgement(text: str | None) -> bool | None:
    """The judge's verdict, or None when the reply holds no single ``0``/``1`` judgement."""
    verdicts = {v for v in _JUDGEMENT.findall(text or "")}
    if len(verdicts) != 1 or (verdict := verdicts.pop()) not in ("0", "1"):
        return None
    return verdict == "1"


async def judge_answers(
    items: list[tuple[str, str, str, str | None]], cfg: JudgeConfig, progress: bool = True
) -> list[bool | None]:
    """A verdict per ``(question, reference, response, extracted)``; None = the reply was unusable.
    Raises :class:`ovr.eval.judge.JudgeError` when the endpoint stays unreachable or rejects requests."""
    import httpx
    from tqdm.auto import tqdm

    from ovr.eval.judge import ask

    if not cfg.base_url:
        raise ValueError("eval.judge.base_url must be set when eval.judge.grade_answers is on")
    key = os.environ.get(cfg.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    out: list[bool | None] = [None] * len(items)
    gate = asyncio.Semaphore(cfg.max_concurrency)
    bar = tqdm(total=len(items), desc="judge answers", unit="req", disable=not progress)

    async def one(client, i: int) -> None:
        async with gate:
            out[i] = parse_judgement(await ask(client, cfg, answer_prompt(*items[i]), headers))
        bar.update()

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(one(client, i) for i in range(len(items))))
    bar.close()
    return out
