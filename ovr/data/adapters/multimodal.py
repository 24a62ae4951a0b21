"""Multimodal RL sources: image + question + short checkable answer."""

from __future__ import annotations

import re

from ovr.data.registry import Drop, RowContext, adapter, clean, letter, make_sample


@adapter("geometry3k", split="rl", columns=("images", "problem", "answer"))
def geometry3k(row: dict, ctx: RowContext):
    """Geometry3K (hiyouga/geometry3k): images (list of Image), problem ('<image>Find x.'), answer."""
    images = list(row["images"] or [])
    if not images:
        raise Drop("no image")
    return make_sample(ctx, question=clean(row["problem"]), answer=row["answer"], images=images, subject="geometry")


@adapter("chartqa", split="rl", columns=("image", "query", "label"))
def chartqa(row: dict, ctx: RowContext):
    """ChartQA (HuggingFaceM4/ChartQA): image, query, label (list of answers), human_or_machine."""
    labels = row["label"]
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    if not labels or not clean(labels[0]):
        raise Drop("empty label")
    return make_sample(
        ctx, question=clean(row["query"]), answer=labels[0], images=[row["image"]], subject="chart",
        provenance={"human_or_machine": clean(row.get("human_or_machine"))},
    )


@adapter("scienceqa", split="rl", columns=("question", "choices", "answer"))
def scienceqa(row: dict, ctx: RowContext):
    """ScienceQA (derek-thomas/ScienceQA): image (or None), question, choices, answer (index), hint,
    task, grade, subject, topic, category, skill, lecture, solution.

    Option ``require_image: true`` drops the text-only questions.
    """
    choices = [clean(c) for c in row["choices"] or []]
    if len(choices) < 2:
        raise Drop("fewer than two choices")
    index = int(row["answer"])
    if not 0 <= index < len(choices):
        raise ValueError(f"answer index {index} outside {len(choices)} choices")
    image = row.get("image")
    if ctx.options.get("require_image") and not image:
        raise Drop("no image")
    hint = clean(row.get("hint"))
    question = (f"Context: {hint}\n" if hint else "") + clean(row["question"])
    grade = re.search(r"\d+", clean(row.get("grade")))
    return make_sample(
        ctx, question=question, answer=letter(index), answer_type="choice", choices=choices,
        images=[image] if image else [], subject=row.get("subject"),
        difficulty=float(grade.group()) if grade else None,
        provenance={"topic": clean(row.get("topic")), "skill": clean(row.get("skill"))},
    )
