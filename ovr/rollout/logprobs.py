"""Trainer-side log-probs of sampled tokens, and how far they are from the sampler's.

PPO's ratio is ``exp(logp_trainer - logp_old)``; when ``logp_old`` comes from vLLM, any
disagreement between the two engines for the same weights (a different chat rendering, image
preprocessing, dtype, kernel) biases every update. :func:`hf_logprobs` recomputes the log-probs
of a group's completions with the HF model and processor; :func:`logprob_mismatch` summarises the
gap as metrics the RL loop logs every step.

>>> logprob_mismatch([[-1.0, -2.0]], [[-1.1, -2.0]])["logprob_abs_diff_max"]
0.10000000000000009
"""

from __future__ import annotations

import math

import torch

from ovr.models.chat import hf_messages, pil_images
from ovr.schema import RolloutGroup, Sample


def prompt_inputs(processor, sample: Sample) -> dict[str, torch.Tensor]:
    """The processor's tensors for ``sample``'s prompt (chat template with the generation prompt)."""
    text = processor.apply_chat_template(hf_messages(sample), add_generation_prompt=True, tokenize=False)
    images = pil_images(sample) or None
    return dict(processor(text=[text], images=images, return_tensors="pt"))


def _vision_token_ids(model) -> torch.Tensor:
    """Ids of the image/video placeholder and vision-start tokens of a Qwen2.5-VL config."""
    cfg = model.config
    names = ("image_token_id", "video_token_id", "vision_start_token_id")
    return torch.tensor([getattr(cfg, n) for n in names if getattr(cfg, n, None) is not None], dtype=torch.long)


@torch.no_grad()
def hf_logprobs(
    model, processor, sample: Sample, group: RolloutGroup, *, temperature: float = 1.0
) -> list[list[float]]:
    """Log-prob under ``model`` of every token of every completion in ``group`` (one list per completion).

    The prompt is rendered here exactly as the trainer renders it; if it differs from the ids the
    server sampled from (``group.prompt_token_ids``), the comparison would be meaningless, so that
    raises ``ValueError``. ``temperature`` divides the logits (as the sampler's processed log-probs do).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (greedy log-probs are those of temperature 1)")
    inputs = prompt_inputs(processor, sample)
    prompt_ids = inputs["input_ids"][0].tolist()
    if group.prompt_token_ids and group.prompt_token_ids != prompt_ids:
        raise ValueError(
            f"sample {sample.id}: trainer prompt ({len(prompt_ids)} tokens) differs from the sampler's "
            f"({len(group.prompt_token_ids)} tokens); chat templates or image processing disagree"
        )
    device = next(model.parameters()).device
    extra = {
        k: v.to(device) for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")
    }
    vision_ids = _vision_token_ids(model)
    out = []
    for completion in group.completions:
        if not completion.token_ids:
            out.append([])
            continue
        ids = torch.tensor([prompt_ids + completion.token_ids], device=device)
        # A sampled vision token is plain text to the sampler; hide it from HF's image-slot and
        # 3D-position logic (which read input_ids) while embedding the true ids.
        marker_ids = ids.clone()
        tail = marker_ids[:, len(prompt_ids) :]
        tail[torch.isin(tail, vision_ids.to(device))] = processor.tokenizer.pad_token_id or 0
        if "mm_token_type_ids" in inputs:
            types = inputs["mm_token_type_ids"].to(device)
            extra["mm_token_type_ids"] = torch.cat([types, types.new_zeros(1, len(completion.token_ids))], dim=1)
        embeds = model.get_input_embeddings()(ids)
        logits = model(input_ids=marker_ids, inputs_embeds=embeds, attention_mask=torch.ones_like(ids), **extra).logits[
            0
        ]
        start = len(prompt_ids) - 1
        targets = ids[0, len(prompt_ids) :]
        logp = torch.log_softmax(logits[start : start + len(targets)].float() / temperature, dim=-1)
        out.append(logp.gather(-1, targets[:, None])[:, 0].tolist())
    return out


def logprob_mismatch(trainer: list[list[float]], sampler: list[list[float]]) -> dict[str, float]:
    """Token-level gap between trainer and sampler log-probs of the same tokens.

    Returns ``logprob_abs_diff_mean``/``_max`` and ``ratio_max`` (the largest
    ``exp(|diff|)``, the PPO ratio a no-op update would already see), over ``tokens`` tokens.
    """
    if len(trainer) != len(sampler):
        raise ValueError(f"{len(trainer)} trainer sequences vs {len(sampler)} sampler sequences")
    diffs = []
    for i, (a, b) in enumerate(zip(trainer, sampler)):
        if len(a) != len(b):
            raise ValueError(f"sequence {i}: {len(a)} trainer log-probs vs {len(b)} sampler log-probs")
        diffs += [abs(x - y) for x, y in zip(a, b)]
    if not diffs:
        return {"logprob_abs_diff_mean": 0.0, "logprob_abs_diff_max": 0.0, "ratio_max": 1.0, "tokens": 0.0}
    worst = max(diffs)
    return {
        "logprob_abs_diff_mean": sum(diffs) / len(diffs),
        "logprob_abs_diff_max": worst,
        "ratio_max": math.exp(worst),
        "tokens": float(len(diffs)),
    }
