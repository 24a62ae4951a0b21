"""Cold-start text sources: long chain-of-thought math with answers that can be checked.

Each adapter reads the source's own column layout (as published on the Hugging Face Hub) and
emits an ``sft`` sample (user prompt + assistant trace) or, for ``rl``/``eval`` splits, a bare prompt.
"""

from __future__ import annotations

import re

from ovr.data.registry import Drop, RowContext, adapter, clean, make_sample
from ovr.rewards.extract import last_boxed

_NO_ANSWER = {"", "proof", "notfound", "none", "null", "n/a"}


def _checkable(answer: str, question_type: str = "") -> str:
    if question_type.lower() == "proof" or answer.strip().lower() in _NO_ANSWER:
        raise Drop("proof or no final answer")
    return answer.strip()


def _level(value) -> float | None:
    """'Level 3' / 3 / None -> 3.0 / 3.0 / None."""
    m = re.search(r"\d+", clean(value))
    return float(m.group()) if m else None


@adapter("openr1_math", split="sft", columns=("problem", "answer", "generations"))
def openr1_math(row: dict, ctx: RowContext):
    """OpenR1-Math-220k: problem, solution, answer, problem_type, question_type, source, uuid,
    is_reasoning_complete, generations, correctness_math_verify, correctness_llama, finish_reasons,
    correctness_count, messages.

    The trace is the first generation that math-verify judged correct and whose reasoning is complete
    (option ``require_verified: false`` takes the first complete one).
    """
    answer = _checkable(clean(row["answer"]), clean(row.get("question_type")))
    assistant = None
    if ctx.split == "sft":
        gens = list(row["generations"] or [])
        verified = list(row.get("correctness_math_verify") or [None] * len(gens))
        complete = list(row.get("is_reasoning_complete") or [True] * len(gens))
        need_verified = ctx.options.get("require_verified", True)
        picks = [g for g, ok, done in zip(gens, verified, complete) if g and done and (ok or not need_verified)]
        if not picks:
            raise Drop("no verified complete generation")
        assistant = picks[0]
    return make_sample(
        ctx,
        question=row["problem"],
        answer=answer,
        assistant=assistant,
        subject=row.get("problem_type"),
        source_id=row.get("uuid"),
        provenance={"origin": clean(row.get("source"))},
    )


@adapter("math", split="sft", columns=("problem", "solution"))
def hendrycks_math(row: dict, ctx: RowContext):
    """MATH (hendrycks competition_math: problem, level ('Level 1'..'Level 5'), type, solution) and
    its MATH500 subset's layout (problem, solution, answer, subject, level (1-5), unique_id).

    The reference is the ``answer`` column when present, else the last ``\\boxed{}`` of the
    solution; the solution is the SFT trace; the subject is ``type`` or ``subject``.
    """
    answer = clean(row.get("answer")) or last_boxed(clean(row["solution"]))
    if not answer:
        raise Drop("no \\boxed{} answer in the solution")
    return make_sample(
        ctx,
        question=row["problem"],
        answer=answer,
        answer_type="math",
        assistant=clean(row["solution"]) if ctx.split == "sft" else None,
        subject=row.get("type") or row.get("subject"),
        difficulty=_level(row.get("level")),
        source_id=row.get("unique_id"),
    )


@adapter("numina_math", split="sft", columns=("problem", "solution"))
def numina_math(row: dict, ctx: RowContext):
    """NuminaMath-CoT / NuminaMath-1.5: source, problem, solution, messages (+ 1.5: answer,
    problem_type, question_type, problem_is_valid, solution_is_valid, synthetic).

    The reference is the ``answer`` column when present, else the solution's last ``\\boxed{}``.
    """
    for flag in ("problem_is_valid", "solution_is_valid"):
        if clean(row.get(flag)).lower() in {"no", "false"}:
            raise Drop(f"{flag} is No")
    answer = clean(row.get("answer")) or last_boxed(clean(row["solution"])) or ""
    answer = _checkable(answer, clean(row.get("question_type")))
    return make_sample(
        ctx,
        question=row["problem"],
        answer=answer,
        answer_type="math",
        assistant=clean(row["solution"]) if ctx.split == "sft" else None,
        subject=row.get("problem_type") or row.get("source"),
        provenance={"origin": clean(row.get("source"))},
    )
