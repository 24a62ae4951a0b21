"""Text evaluation benchmarks in their published layouts (split ``eval`` by default): MATH500,
AIME, AMC, GSM8K."""

from __future__ import annotations

import re

from ovr.data.registry import Drop, Reject, RowContext, adapter, clean, make_sample, number_answer

# AoPS wiki addresses name the contest: .../2022_AMC_12A_Problems/Problem_10, .../2024_AIME_I_Problems/...
_CONTEST_URL = re.compile(r"((?:19|20)\d{2})_(AIME|AMC)_?([\w]*?)_Problems", re.IGNORECASE)
_YEAR_ID = re.compile(r"^((?:19|20)\d{2})(?:\D|$)")  # ids such as "2025-I-3"
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _question(row: dict, *names: str) -> str:
    for name in names:
        if clean(row.get(name)):
            return clean(row[name])
    raise Reject("missing columns", f"no question in any of {list(names)}")


def _contest(row: dict, ctx: RowContext) -> tuple[str, str]:
    """(year, exam) of a contest problem: the ``year`` column, else the AoPS ``url``
    (``2022_AMC_12A_Problems`` -> 2022, 12A), else an id starting with the year, else option ``year``."""
    url = _CONTEST_URL.search(clean(row.get("url")))
    exam = url.group(3) if url else ""
    year = clean(row.get("year"))
    if not year and url:
        year = url.group(1)
    if not year and (m := _YEAR_ID.match(clean(row.get("id")))):
        year = m.group(1)
    return year or clean(ctx.options.get("year")), exam


@adapter("math500", split="eval", columns=("problem", "answer"))
def math500(row: dict, ctx: RowContext):
    """MATH500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level, unique_id."""
    level = row.get("level")
    return make_sample(
        ctx,
        question=row["problem"],
        answer=row["answer"],
        answer_type="math",
        subject=row.get("subject"),
        difficulty=float(level) if isinstance(level, (int, float)) else None,
        source_id=row.get("unique_id"),
    )


@adapter("aime", split="eval", columns=("answer",))
def aime(row: dict, ctx: RowContext):
    """AIME (HuggingFaceH4/aime_2024, AI-MO/aimo-validation-aime, the 30-row AIME 2025 JSONL sets):
    id, problem (or question), solution, answer, url, year. Answers are integers 0-999.

    The subject is ``AIME <year>``: the year comes from ``year``, else the AoPS ``url``, else an id
    such as ``2025-I-3``, else option ``year``. Option ``max_year: 2023`` keeps the contests up to that
    year (training sets that must not hold the AIME 2024/2025 benchmarks).
    """
    raw, answer_type = clean(row["answer"]), "number"
    try:
        answer = number_answer(raw)
    except Reject:
        answer = raw
    if not re.fullmatch(r"\d{1,3}", answer):
        if ctx.split != "eval":  # an eval split keeps every item; its grading path is counted
            raise Reject("AIME answer is not an integer 0-999", repr(answer))
        answer, answer_type = raw, None
    year, exam = _contest(row, ctx)
    last = ctx.options.get("max_year")
    if last is not None and (not year.isdigit() or int(year) > int(last)):
        raise Drop(f"AIME after {last} (option max_year)", year or "no year")
    return make_sample(
        ctx,
        question=_question(row, "problem", "question"),
        answer=answer,
        answer_type=answer_type,
        source_id=row.get("id"),
        subject=f"AIME {year}".strip(),
        provenance={"exam": exam} if exam else None,
    )


@adapter("amc", split="eval", columns=("answer",))
def amc(row: dict, ctx: RowContext):
    """AMC 10/12 (AI-MO/aimo-validation-amc, the AMC 2023 sets): id, problem (or question), answer
    (a float such as ``3159.0``; may be negative or above 999), url.

    References become plain numbers (``3159.0`` -> ``3159``); the subject is ``AMC <year>`` (year
    from ``year``, the AoPS ``url`` or option ``year``), the exam (``12A``) goes to provenance.
    """
    year, exam = _contest(row, ctx)
    return make_sample(
        ctx,
        question=_question(row, "problem", "question"),
        answer=number_answer(row["answer"]),
        answer_type="number",
        source_id=row.get("id"),
        subject=f"AMC {year}".strip(),
        provenance={"exam": exam} if exam else None,
    )


@adapter("gsm8k", split="eval", columns=("question", "answer"))
def gsm8k(row: dict, ctx: RowContext):
    """GSM8K (openai/gsm8k, configs main/socratic): question, answer (the worked solution with
    ``<<48/2=24>>`` calculator notes, ending in ``#### 72``).

    The reference is the number after ``####`` without thousands separators (``#### 1,234`` ->
    ``1234``). For the ``sft`` split the solution, notes removed, is the trace, ending in a box.
    """
    solution = clean(row["answer"])
    final = _GSM8K_FINAL.search(solution)
    if not final:
        raise Reject("no '#### <number>' final answer", repr(solution[-80:]))
    answer = number_answer(final.group(1).strip("$ "))
    assistant = None
    if ctx.split == "sft":
        steps = _CALCULATOR.sub("", solution[: final.start()]).strip()
        assistant = f"{steps}\nThe final answer is $\\boxed{{{answer}}}$."
    return make_sample(ctx, question=row["question"], answer=answer, answer_type="number", assistant=assistant)
