"""Prompt normalisation: one instruction (the recipe's template) around every question.

Sources phrase the final-answer instruction in many ways (or not at all) and mark images in their
own style (``<image1>``, ``<image>``, nothing). A normalised prompt is the bare question with
``<image>`` marks (one per attached image), wrapped in ``DataConfig.prompt_template``.

>>> to_prompt("Find x. Put your final answer within \\\\boxed{}.", n_images=1)
'<image>\\nFind x.\\nPlease reason step by step, and put your final answer within \\\\boxed{}.'
"""

from __future__ import annotations

import re

from ovr.config import DataConfig
from ovr.models.chat import IMAGE_MARK

DEFAULT_TEMPLATE: str = DataConfig.model_fields["prompt_template"].default

_EMPTY_BOX = re.compile(r"\\boxed\{\s*\}")
_SENTENCE_END = re.compile(r"(?<=[.?!:])\s+")
_SOURCE_IMAGE_MARK = re.compile(r"<image\s*\d*>", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"[ \t]*\n[ \t\n]*|[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([?.,;:!])")


def strip_instruction(question: str) -> str:
    """Remove trailing sentences that ask for a ``\\boxed{}`` answer (the source's own instruction)."""
    lines = question.rstrip().split("\n")
    while lines and _EMPTY_BOX.search(lines[-1]):
        sentences = _SENTENCE_END.split(lines[-1])
        while sentences and _EMPTY_BOX.search(sentences[-1]):
            sentences.pop()
        kept = " ".join(sentences).strip()
        if kept:
            lines[-1] = kept
            break
        lines.pop()
    return "\n".join(lines).strip()


class ImageMarkError(ValueError):
    """The question's image marks and the row's images disagree."""


def mark_images(question: str, n_images: int, combined: bool = False) -> str:
    """Rewrite source image marks (``<image1>``, ``<image>``) to ovr's ``<image>``; when the source
    has none, put one mark per image in front. Raises :class:`ImageMarkError` when the counts disagree.

    ``combined``: the source drew every figure of a question into one image (MathVision's
    ``<image1>`` ... ``<image8>`` with one ``decoded_image``); the first mark becomes the image and
    the later ones, parts of that same image, are removed.

    >>> mark_images("<image1> or <image2>?", 1, combined=True)
    '<image> or?'
    """
    marks = len(_SOURCE_IMAGE_MARK.findall(question))
    if marks == 0:
        return "".join(f"{IMAGE_MARK}\n" for _ in range(n_images)) + question
    if combined and n_images == 1 and marks > 1:
        first, *rest = _SOURCE_IMAGE_MARK.split(question)
        tail = _SPACE_BEFORE_PUNCT.sub(r"\1", "".join(rest))
        return (first + IMAGE_MARK + _BLANK_RUNS.sub(lambda m: "\n" if "\n" in m.group() else " ", tail)).rstrip()
    if marks != n_images:
        raise ImageMarkError(f"question has {marks} image marks but {n_images} images")
    return _SOURCE_IMAGE_MARK.sub(IMAGE_MARK, question)


def to_prompt(question: str, n_images: int = 0, template: str = DEFAULT_TEMPLATE, combined: bool = False) -> str:
    """The normalised prompt of a raw source question (``combined``: see :func:`mark_images`)."""
    question = strip_instruction(question)
    if not question.replace(IMAGE_MARK, "").strip():
        raise ValueError("empty question")
    marked = mark_images(question, n_images, combined)
    # Image marks stay inside the question; the template only adds the instruction.
    return template.format(question=marked)


def bare_question(prompt: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The question inside a normalised prompt, without the template text and image marks.

    Dedup and decontamination compare these, so a shared instruction never makes two items alike.
    """
    head, _, tail = template.format(question="\x00").partition("\x00")
    text = prompt
    if head and text.startswith(head):
        text = text[len(head) :]
    if tail and text.endswith(tail):
        text = text[: -len(tail)]
    return text.replace(IMAGE_MARK, " ").strip()


def format_choices(choices: list[str]) -> str:
    """``A. first\\nB. second`` — the options block appended to a choice question."""
    return "\n".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))
