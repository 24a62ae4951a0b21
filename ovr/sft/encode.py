"""A ``Sample`` -> the tensors one SFT segment needs: token ids, assistant-only labels, positions.

Rendering goes through :func:`ovr.models.chat.hf_messages` and the processor's chat template, the
same path the rollout servers use, so the cold-started model sees at training time exactly the
prompt layout it will be sampled with.

Labels cover the assistant turn(s) and their closing ``<|im_end|>`` (so the model learns to stop)
and nothing else: the system/user prompt, the ``<|im_start|>assistant\\n`` header and the newline
after the last ``<|im_end|>`` are ``-100``.

Positions: a text-only segment uses ``0..L-1`` on all three M-RoPE axes (what Qwen2.5-VL computes
itself), so none is stored; a segment with images keeps the 3 x L (temporal, height, width)
positions from the model's own ``get_rope_index``. Every segment's positions start at 0, which is
what lets packed segments be told apart (see :mod:`ovr.sft.packing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ovr.models.chat import hf_messages, pil_images
from ovr.schema import Sample

IGNORE = -100


@dataclass
class Encoded:
    """One tokenised sample (a segment of a packed row)."""

    sample_id: str
    input_ids: np.ndarray  # (L,) int32
    labels: np.ndarray  # (L,) int32, IGNORE outside assistant tokens
    positions: np.ndarray | None = None  # (3, L) int32 M-RoPE positions; None = text-only arange
    pixel_values: object | None = None  # torch.Tensor (patches, dim) for image segments
    image_grid_thw: object | None = None  # torch.Tensor (n_images, 3)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_labels(self) -> int:
        return int((self.labels != IGNORE).sum())


def _ids(processor, text: str, images: list | None) -> dict:
    return processor(text=[text], images=images or None, return_tensors="pt")


def encode_sample(
    processor,
    sample: Sample,
    rope_index: Callable | None = None,
) -> Encoded:
    """Tokenise ``sample`` (its prompt + assistant turns) with assistant-only labels.

    ``rope_index`` is the model's ``get_rope_index`` (needed only for samples with images).
    Raises ``ValueError`` when the sample has no assistant turn, or when the rendered prompt is not
    a token prefix of the rendered conversation (a chat template this code cannot mask reliably).
    """
    messages = hf_messages(sample, with_answer=True)
    prompt_text = processor.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    full_text = processor.apply_chat_template(messages, tokenize=False)
    images = pil_images(sample)
    full = _ids(processor, full_text, images)
    prompt = _ids(processor, prompt_text, images)
    ids = full["input_ids"][0].numpy().astype(np.int32)
    n_prompt = prompt["input_ids"].shape[1]
    if not np.array_equal(ids[:n_prompt], prompt["input_ids"][0].numpy()):
        raise ValueError(f"sample {sample.id}: the rendered prompt is not a token prefix of the conversation")
    labels = ids.copy()
    labels[:n_prompt] = IGNORE
    end_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = np.nonzero(ids == end_id)[0]
    if len(ends) and ends[-1] >= n_prompt:
        labels[ends[-1] + 1 :] = IGNORE  # the newline after the last <|im_end|>
    if not (labels != IGNORE).any():
        raise ValueError(f"sample {sample.id}: no assistant tokens to train on")
    enc = Encoded(sample_id=sample.id, input_ids=ids, labels=labels)
    if images:
        if rope_index is None:
            raise ValueError(f"sample {sample.id} has images: encoding it needs the model's rope_index")
        import torch

        image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        input_ids = full["input_ids"]
        pos, _ = rope_index(
            input_ids,
            mm_token_type_ids=(input_ids == image_id).to(torch.int32),
            image_grid_thw=full["image_grid_thw"],
        )
        enc.positions = pos[:, 0].numpy().astype(np.int32)
        enc.pixel_values = full["pixel_values"]
        enc.image_grid_thw = full["image_grid_thw"]
    return enc


def encode_all(
    processor,
    samples: list[Sample],
    max_len: int,
    rope_index: Callable | None = None,
    progress: bool = False,
) -> tuple[list[Encoded], int]:
    """Encode every sample; those longer than ``max_len`` tokens are dropped (count returned)."""
    from tqdm.auto import tqdm

    kept, dropped = [], 0
    for sample in tqdm(samples, desc="encode", unit="sample", disable=not progress):
        enc = encode_sample(processor, sample, rope_index)
        if len(enc) > max_len:
            dropped += 1
            continue
        kept.append(enc)
    return kept, dropped
