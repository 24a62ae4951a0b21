"""Visual evaluation benchmarks in their published layouts (split ``eval`` by default): MathVision,
MathVerse, MathVista, We-Math, DynaMath, LogicVista."""

from __future__ import annotations

import re
from pathlib import Path

from ovr.data.registry import (
    Drop,
    Reject,
    RowContext,
    adapter,
    choice_reference,
    clean,
    letter,
    make_sample,
    number_answer,
)
from ovr.data.sources import KEY
from ovr.rewards.extract import choice_letters

# An option mark: "(A)" or "A." / "A:" / "A)" at the start of a line or after a separator.
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s;,]))(?:\(([A-H])\)|([A-H])[.:：)])[ \t]*", re.MULTILINE)
_OPTIONS_HEAD = re.compile(r"\b(?:Choices|Options)\s*[:：]", re.IGNORECASE)


def lettered_options(text: str) -> list[str]:
    """Option texts of ``A:40°\\nB:50°``, ``A. 1; B. 2`` or ``(A) 1 (B) 2`` (letters in order from A;
    the last option ends at its line's end); [] when fewer than two are found.

    >>> lettered_options("A:40°\\nB:50°"), lettered_options("A. 30; B. 60; C. 90"), lettered_options("(A) x (B) y")
    (['40°', '50°'], ['30', '60', '90'], ['x', 'y'])
    """
    chain: list[re.Match] = []
    for mark in _OPTION_MARK.finditer(text):
        if (mark.group(1) or mark.group(2)) == letter(len(chain)):
            chain.append(mark)
    if len(chain) < 2:
        return []
    out = []
    for i, mark in enumerate(chain):
        end = chain[i + 1].start() if i + 1 < len(chain) else len(text)
        body = text[mark.end() : end] if i + 1 < len(chain) else text[mark.end() : end].split("\n", 1)[0]
        out.append(body.strip().rstrip(";,").strip())
    return out


def listed_options(question: str) -> list[str]:
    """Options a question lists after ``Choices:`` / ``Options:``; [] when it lists none."""
    head = _OPTIONS_HEAD.search(question)
    return lettered_options(question[head.end() :].strip()) if head else []


def _image(row: dict, *names: str):
    for name in names:
        if row.get(name):
            return row[name]
    raise Drop(f"no image in columns {list(names)}")


def _choice(raw: str, listed: list[str]) -> tuple[str, list[str]]:
    """(reference letters, choices) of a choice answer: the listed options, or, when the options
    are drawn in the image, the letters A.. up to the answer's (at least four)."""
    letters = choice_letters(raw)
    choices = listed or [letter(i) for i in range(max(4, ord(letters[-1]) - 64 if letters else 4))]
    return choice_reference(raw, choices), choices


@adapter("mathvision", split="eval", columns=("question", "answer"))
def mathvision(row: dict, ctx: RowContext):
    """MathVision (MathLLMs/MathVision): id, question ('<image1>' marks), options, image (path),
    decoded_image, answer (a letter when options are given), solution, level, subject.

    About a tenth of the questions write several marks (``<image1>`` ... ``<image8>``) for figures
    the release combined into its one image: they all refer to that image.
    """
    options = [clean(o) for o in row.get("options") or []]
    answer = choice_reference(row["answer"], options) if options else clean(row["answer"])
    return make_sample(
        ctx,
        question=clean(row["question"]),
        answer=answer,
        answer_type="choice" if options else None,
        choices=options or None,
        images=[_image(row, "decoded_image", "image")],
        subject=row.get("subject"),
        difficulty=float(row["level"]) if row.get("level") is not None else None,
        source_id=row.get("id"),
        combined_image=True,
    )


def _mathverse_reference(raw: str, question: str, question_type: str):
    """(answer, answer_type, choices): option letters (``C``, ``(C)``, ``A\\nC``) or option text of
    multi-choice rows; ``True``/``False`` and values such as ``090^\\circ T`` are graded free-form."""
    if question_type == "multi-choice":
        listed = listed_options(question)
        if choice_letters(raw):
            answer, choices = _choice(raw, listed)
            return answer, "choice", choices
        if listed:
            try:
                return choice_reference(raw, listed), "choice", listed
            except Reject:
                pass
    if raw.lower() in {"true", "false"}:
        return raw, "string", None
    return raw, None, None


@adapter("mathverse", split="eval", columns=("question", "image", "answer", "question_type"))
def mathverse(row: dict, ctx: RowContext):
    """MathVerse (AI4Math/MathVerse, configs testmini and testmini_text_only): sample_index,
    problem_index, problem_version, question, image (``""`` in the Text Only version), answer,
    question_type ('multi-choice' | 'free-form'), metadata, query_wo, query_cot, question_for_eval.

    Option ``versions`` (e.g. ``["Vision Only"]``) keeps only those problem versions (provenance
    ``group`` = problem_index, ``role`` = version: MathVerse scores per version). Vision-only
    questions live in the image; their options are then the letters themselves. Text Only rows
    load as text questions.
    """
    version = clean(row.get("problem_version"))
    wanted = ctx.options.get("versions")
    if wanted and version not in wanted:
        raise Drop(f"problem_version {version!r} not selected")
    image = row["image"] or None
    question = clean(row["question"])
    if not question:
        if image is None:
            raise Reject("empty question", "no question text and no image")
        question = "Answer the question shown in the image."
    answer, answer_type, choices = _mathverse_reference(clean(row["answer"]), question, clean(row["question_type"]))
    return make_sample(
        ctx,
        question=question,
        answer=answer,
        answer_type=answer_type,
        choices=choices,
        list_choices=False,
        images=[image] if image else [],
        subject=version or None,
        source_id=row.get("sample_index"),
        provenance={"group": clean(row.get("problem_index")), "role": version},
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
        answer = choice_reference(answer, choices)
    kind = clean(row.get("answer_type"))
    answer_type = "choice" if choices else {"integer": "number", "float": "number", "text": "string"}.get(kind, "math")
    return make_sample(
        ctx,
        question=question,
        answer=answer,
        answer_type=answer_type,
        choices=choices,
        images=[_image(row, "decoded_image", "image")],
        source_id=row.get("pid"),
        subject=(row.get("metadata") or {}).get("task") if isinstance(row.get("metadata"), dict) else None,
        provenance={"precision": row.get("precision")},
    )


@adapter("wemath", split="eval", columns=("question", "option", "answer"))
def wemath(row: dict, ctx: RowContext):
    """We-Math (We-Math/We-Math testmini): ID, split, knowledge concept, question, option
    ('A. ...; B. ...'), answer (a letter), image_path (the image), key, question number,
    knowledge concept description.

    The sub-problems of one composite problem share its ``ID``; ``key`` says which row of it this
    is (``2steps_1``, ``2steps_2``, ``2steps_multi``, ``3steps_1`` ...). The item id joins both, and
    provenance ``group`` / ``role`` carry them for We-Math's strict and loose scores."""
    choices = lettered_options(clean(row["option"]))
    problem, key = clean(row.get("ID")), clean(row.get("key"))
    if not choices:
        raise Reject("options not lettered", repr(clean(row["option"])[:120]))
    return make_sample(
        ctx,
        question=clean(row["question"]),
        answer=choice_reference(row["answer"], choices),
        answer_type="choice",
        choices=choices,
        images=[_image(row, "image_path", "image", "decoded_image")],
        subject=row.get("knowledge concept"),
        source_id=f"{problem}@{key}" if key and key not in problem else problem,
        provenance={
            "key": key,
            "question_number": clean(row.get("question number")),
            "group": problem,
            "role": key,
        },
    )


@adapter("dynamath", split="eval", columns=("question", "ground_truth", "answer_type"))
def dynamath(row: dict, ctx: RowContext):
    """DynaMath (DynaMath/DynaMath_Sample, splits sample_variant1..10): id, question, image (path),
    decoded_image, ground_truth, answer_type ('multiple choice' | 'float' | 'free form'), subject,
    knowledge_level. Options of choice questions are listed in the question (or drawn).

    Each split holds one variant of the 501 seed questions (``id`` is the seed): read the ten
    splits as ten sources with option ``variant`` (1-10) and map them to one benchmark
    (``eval.benchmark_ids``); provenance ``group`` / ``role`` (seed / variant) give DynaMath's
    worst-case accuracy."""
    question, truth = clean(row["question"]), clean(row["ground_truth"])
    kind = clean(row["answer_type"]).lower()
    choices = None
    if kind == "multiple choice":
        answer, choices = _choice(truth, listed_options(question))
        answer_type = "choice"
    elif kind == "float":
        answer, answer_type = number_answer(truth), "number"
    else:
        answer, answer_type = truth, None
    return make_sample(
        ctx,
        question=question,
        answer=answer,
        answer_type=answer_type,
        choices=choices,
        list_choices=False,
        images=[_image(row, "decoded_image", "image")],
        subject=row.get("subject"),
        source_id=row.get("id"),
        provenance={
            "knowledge_level": clean(row.get("knowledge_level")),
            "group": clean(row.get("id")),
            "role": f"variant{ctx.options['variant']}" if ctx.options.get("variant") else "",
        },
    )


@adapter("logicvista", split="eval", columns=("question", "answer"))
def logicvista(row: dict, ctx: RowContext):
    """LogicVista (data/dataset.json: id -> imagename, question (options inside), answer (one or
    several letters), reasoning, skill, broad_capability; images under ``images/``, option
    ``images_dir``)."""
    if row.get("image"):
        image = row["image"]
    elif clean(row.get("imagename")):
        image = Path(ctx.options.get("images_dir", "images")) / clean(row["imagename"])
    else:
        raise Reject("missing columns", "needs image or imagename")
    question = clean(row["question"])
    answer, choices = _choice(clean(row["answer"]), listed_options(question))
    skill = row.get("skill")
    return make_sample(
        ctx,
        question=question,
        answer=answer,
        answer_type="choice",
        choices=choices,
        list_choices=False,
        images=[image],
        subject=clean(skill[0] if isinstance(skill, list) and skill else skill) or None,
        source_id=row.get(KEY) or row.get("id"),
    )
