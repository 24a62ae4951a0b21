"""Multimodal RL sources: image + question + short checkable answer.

Each adapter reads both the Hugging Face copy and the layout the authors publish (Geometry3K's
folder per problem, ChartQA's ``imgname`` JSON beside ``png/``, ScienceQA's ``problems.json`` beside
``images/<split>/<pid>/``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ovr.data.registry import Drop, Reject, RowContext, adapter, choice_reference, clean, letter, make_sample
from ovr.data.sources import KEY


def _images_dir(ctx: RowContext, default: str) -> Path:
    return Path(ctx.options.get("images_dir", default))


@adapter("geometry3k", split="rl", columns=("answer",))
def geometry3k(row: dict, ctx: RowContext):
    """Geometry3K, either layout: the Hugging Face copy (hiyouga/geometry3k: images, problem
    ('<image>Find x.'), answer) or the raw release (one folder per problem: data.json with id,
    problem_text, choices, answer (a letter), precise_value, ...; img_diagram.png beside it).

    The raw layout becomes a choice question with its four options; option ``free_form: true``
    asks for the value instead (the chosen option's text is the reference).
    """
    if "problem_text" not in row:
        if "problem" not in row or "images" not in row:
            raise Reject("missing columns", "needs images+problem (hub copy) or problem_text (raw layout)")
        images = list(row["images"] or [])
        if not images:
            raise Drop("no image")
        return make_sample(ctx, question=clean(row["problem"]), answer=row["answer"], images=images, subject="geometry")
    choices = [clean(c) for c in row.get("choices") or []]
    answer = choice_reference(row["answer"], choices)
    image = Path(clean(row.get(KEY))) / ctx.options.get("image_file", "img_diagram.png")
    if ctx.options.get("free_form"):
        return make_sample(
            ctx,
            question=clean(row["problem_text"]),
            answer=choices[ord(answer) - 65],
            images=[image],
            subject="geometry",
            source_id=row.get("id"),
        )
    return make_sample(
        ctx,
        question=clean(row["problem_text"]),
        answer=answer,
        answer_type="choice",
        choices=choices,
        images=[image],
        subject="geometry",
        source_id=row.get("id"),
    )


@adapter("chartqa", split="rl", columns=("query", "label"))
def chartqa(row: dict, ctx: RowContext):
    """ChartQA, either layout: the Hugging Face copy (HuggingFaceM4/ChartQA: image, query, label
    (list of answers), human_or_machine) or the raw release (test_human.json / test_augmented.json:
    imgname, query, label (a string); charts under ``png/``, option ``images_dir``)."""
    labels = row["label"]
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    if not labels or not clean(labels[0]):
        raise Drop("empty label")
    if row.get("image"):
        image = row["image"]
    elif clean(row.get("imgname")):
        image = _images_dir(ctx, "png") / clean(row["imgname"])
    else:
        raise Reject("missing columns", "needs image (hub copy) or imgname (raw layout)")
    return make_sample(
        ctx,
        question=clean(row["query"]),
        answer=labels[0],
        images=[image],
        subject="chart",
        provenance={"human_or_machine": clean(row.get("human_or_machine"))},
    )


def _scienceqa_image(row: dict, ctx: RowContext):
    """The image cell, or for the raw layout (``image: "image.png"``) its file ``images/<split>/<pid>/``."""
    image = row.get("image")
    if isinstance(image, str) and image and KEY in row:
        return _images_dir(ctx, "images") / clean(row.get("split")) / clean(row[KEY]) / image
    return image or None


@adapter("scienceqa", split="rl", columns=("question", "choices", "answer"))
def scienceqa(row: dict, ctx: RowContext):
    """ScienceQA, either layout: the Hugging Face copy (derek-thomas/ScienceQA: image (or None),
    question, choices, answer (index), hint, task, grade, subject, topic, category, skill, lecture,
    solution) or the raw ``problems.json`` (pid -> the same fields + split; ``image: "image.png"``
    under ``images/<split>/<pid>/``, option ``images_dir``).

    Option ``require_image: true`` drops the text-only questions; ``splits: [test]`` keeps the raw
    file's rows of those splits.
    """
    wanted = ctx.options.get("splits")
    if wanted and clean(row.get("split")) not in wanted:
        raise Drop(f"split not in {list(wanted)}", clean(row.get("split")))
    choices = [clean(c) for c in row["choices"] or []]
    if len(choices) < 2:
        raise Drop("fewer than two choices")
    index = int(row["answer"])
    if not 0 <= index < len(choices):
        raise Reject("answer index outside the choices", f"{index} (of {len(choices)} choices)")
    image = _scienceqa_image(row, ctx)
    if ctx.options.get("require_image") and not image:
        raise Drop("no image")
    hint = clean(row.get("hint"))
    question = (f"Context: {hint}\n" if hint else "") + clean(row["question"])
    grade = re.search(r"\d+", clean(row.get("grade")))
    return make_sample(
        ctx,
        question=question,
        answer=letter(index),
        answer_type="choice",
        choices=choices,
        images=[image] if image else [],
        subject=row.get("subject"),
        source_id=row.get(KEY),
        difficulty=float(grade.group()) if grade else None,
        provenance={"topic": clean(row.get("topic")), "skill": clean(row.get("skill"))},
    )
