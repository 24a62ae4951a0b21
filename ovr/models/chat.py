"""One rendering of a ``Sample`` into chat messages, used by training, rollout and eval alike.

A sample's prompt marks its images with ``<image>`` (in ``Sample.images`` order); a prompt with
images but no marker gets them in front of the text, as the common VQA layouts do. The same parts
become HF content parts (``{"type": "image"}``) for ``processor.apply_chat_template`` and OpenAI
parts (``image_url`` data URLs) for vLLM's chat endpoint, which applies the very same template
from the model folder: token sequences agree between the trainer and the rollout servers.
"""

from __future__ import annotations

import io

from ovr.schema import Sample

IMAGE_MARK = "<image>"


def prompt_parts(sample: Sample) -> list[tuple[str, int | str]]:
    """``[("image", 0), ("text", "...")...]`` in prompt order."""
    pieces = sample.prompt.split(IMAGE_MARK)
    marks = len(pieces) - 1
    if marks and marks != len(sample.images):
        raise ValueError(f"sample {sample.id}: {marks} {IMAGE_MARK} marks but {len(sample.images)} images")
    parts: list[tuple[str, int | str]] = []
    if not marks:
        parts += [("image", i) for i in range(len(sample.images))]
        parts.append(("text", sample.prompt))
        return parts
    for i, text in enumerate(pieces):
        if text.strip():
            parts.append(("text", text.strip("\n") if i else text.rstrip("\n")))
        if i < marks:
            parts.append(("image", i))
    return parts


def hf_messages(sample: Sample, with_answer: bool = False) -> list[dict]:
    """Messages for ``processor.apply_chat_template``.

    With ``with_answer`` (SFT), ``sample.messages``' assistant turns follow the user prompt.
    """
    content = [
        {"type": "image"} if kind == "image" else {"type": "text", "text": val} for kind, val in prompt_parts(sample)
    ]
    messages = [{"role": "user", "content": content}]
    if with_answer:
        if not sample.messages:
            raise ValueError(f"sample {sample.id} has no conversation to train on")
        messages += [
            {"role": m.role, "content": [{"type": "text", "text": m.content}]}
            for m in sample.messages
            if m.role == "assistant"
        ]
    return messages


def openai_messages(sample: Sample) -> list[dict]:
    """Messages for an OpenAI-compatible ``/v1/chat/completions`` request (images inline)."""
    content = []
    for kind, val in prompt_parts(sample):
        if kind == "image":
            content.append({"type": "image_url", "image_url": {"url": sample.images[val].data_url()}})
        else:
            content.append({"type": "text", "text": val})
    return [{"role": "user", "content": content}]


def pil_images(sample: Sample) -> list:
    """The sample's images as RGB PIL images (for the HF processor)."""
    from PIL import Image

    out = []
    for ref in sample.images:
        if ref.data is None:
            raise ValueError(f"sample {sample.id}: image {ref.key} is not inline; resolve it first")
        out.append(Image.open(io.BytesIO(ref.data)).convert("RGB"))
    return out
