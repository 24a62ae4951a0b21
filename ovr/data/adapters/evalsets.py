"""Evaluation benchmarks in their published layouts (split ``eval`` by default)."""

from __future__ import annotations

import re

from ovr.data.registry import Drop, RowContext, adapter, clean, letter, make_sample

_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])[:.)]\s*(.+?)\s*$")


def _image(row: dict, *names: str):
    for name in names:
        if row.get(name):
            return row[name]
    raise Drop(f"no image in columns {list(names)}")


@adapter("math500", split="eval", columns=("problem", "answer"))
def math500(row: dict, ctx: RowContext):
    """MATH500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level, unique_id."""
    level = row.get("level")
    return make_sample(
        ctx, question=row["problem"], answer=row["answer"], answer_type="math", subject=row.get("subject"),
        difficulty=float(level) if isinstance(level, (int, float)) else None, source_id=row.get("unique_id"),
    )


@adapter("aime", split="eval", columns=("problem", "answer"))
def aime(row: dict, ctx: RowContext):
    """AIME (HuggingFaceH4/aime_2024, AI-MO/aimo-validation-aime, AIME 2025 sets): id, problem,
    solution, answer, url, year. Answers are integers 0-999."""
    answer = clean(row["answer"])
    if not re.fullmatch(r"\d{1,3}", answer):
        raise ValueError(f"AIME answer {answer!r} is not an integer 0-999")
    return make_sample(
        ctx, question=row["problem"], answer=answer, answer_type="number", source_id=row.get("id"),
        subject=f"AIME {clean(row.get('year'))}".strip(),
    )


@adapter("mathvision", split="eval", columns=("question", "answer"))
def mathvision(row: dict, ctx: RowContext):
    """MathVision (MathLLMs/MathVision): id, question ('<image1>' marks), options, image (path),
    decoded_image, answer (a letter when options are given), solution, level, subject."""
    options = [clean(o) for o in row.get("options") or []]
    answer = clean(row["answer"])
    if options and not re.fullmatch(r"[A-H]", answer):
        raise ValueError(f"choice answer {answer!r} is not an option letter")
    return make_sample(
        ctx, question=clean(row["question"]), answer=answer, answer_type="choice" if options else None,
        choices=options or None, images=[_image(row, "decoded_image", "image")], subject=row.get("subject"),
        difficulty=float(row["level"]) if row.get("level") is not None else None, source_id=row.get("id"),
    )


def _listed_choices(text: str) -> list[str]:
    """Options listed after 'Choices:' as 'A:...', 'B. ...' or '(C) ...' lines."""
    _, found, tail = text.partition("Choices:")
    if not found:
        return []
    out = []
    for line in tail.strip().splitlines():
        m = _CHOICE_LINE.match(line)
        if not m or m.group(1) != letter(len(out)):
            break
        out.append(m.group(2))
    return out


@adapter("mathverse", split="eval", columns=("question", "image", "answer", "question_type"))
def mathverse(row: dict, ctx: RowContext):
    """MathVerse (AI4Math/MathVerse testmini): sample_index, problem_index, problem_version,
    question, image, answer, question_type ('multi-choice' | 'free-form'), metadata, query_wo,
    query_cot, question_for_eval.

    Option ``versions`` (e.g. ``["Vision Only"]``) keeps only those problem versions. Vision-only
    questions live in the image; their options are then the letters themselves.
    """
    version = clean(row.get("problem_version"))
    wanted = ctx.options.get("versions")
    if wanted and version not in wanted:
        raise Drop(f"problem_version {version!r} not selected")
    question = clean(row["question"]) or "Answer the question shown in the image."
    answer = clean(row["answer"])
    choices = None
    if clean(row["question_type"]) == "multi-choice":
        if not re.fullmatch(r"[A-H]", answer):
            raise ValueError(f"multi-choice answer {answer!r} is not an option letter")
        choices = _listed_choices(question)  # already in the question text: not listed again
        if not choices:  # options drawn in the image
            choices = [letter(i) for i in range(max(4, ord(answer) - 64))]
    return make_sample(
        ctx, question=question, answer=answer, answer_type="choice" if choices else None, choices=choices,
        list_choices=False, images=[row["image"]],
        subject=version or None, source_id=row.get("sample_index"),
    )


@adapter("mathvista", split="eval", columns=("question", "answer", "question_type"))
def mathvista(row: dict, ctx: RowContext):
    """MathVista (AI4Math/MathVista testmini): pid, question, image (path), decoded_image, choices,
    unit, precision, answer (the option text for multi_choice), question_type, answer_type,
    metadata, query."""
    answer = clean(row["answer"])
    question = clean(row["question"])
    if clean(row.get("unit")):
        question += f" (Unit: {clean(row['unit'])})"
    choices = None
    if clean(row["question_type"]) == "multi_choice":
        choices = [clean(c) for c in row.get("choices") or []]
        if answer not in choices:
            raise ValueError(f"answer {answer!r} is not one of the choices {choices}")
        answer = letter(choices.index(answer))
    kind = clean(row.get("answer_type"))
    answer_type = "choice" if choices else {"integer": "number", "float": "number", "text": "string"}.get(kind, "math")
    return make_sample(
        ctx, question=question, answer=answer, answer_type=answer_type, choices=choices,
        images=[_image(row, "decoded_image", "image")], source_id=row.get("pid"),
        subject=(row.get("metadata") or {}).get("task") if isinstance(row.get("metadata"), dict) else None,
        provenance={"precision": row.get("precision")},
    )
