"""No ``[L, L]``-sized attention mask is built for a packed SFT micro-batch (several samples, text
and image, in two rows), forward and backward, with the model loaded the way the SFT stage loads
it and its inputs prepared as :class:`ovr.sft.callbacks.PackedTrainer` prepares them."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ovr.config import ModelConfig
from ovr.models.loading import load_policy, load_processor
from ovr.sft.encode import encode_sample
from ovr.sft.packing import PackedCollator

sys.path.insert(0, str(Path(__file__).parents[1] / "rl"))
from attention_probe import record_masks


def test_no_square_mask_reaches_the_attention_of_a_packed_sft_micro_batch(
    tiny_model_dir, sft_samples, image_sft_sample
):
    model, processor = load_policy(tiny_model_dir, ModelConfig()), load_processor(tiny_model_dir)
    samples = [sft_samples[1], image_sft_sample, sft_samples[2], sft_samples[3]]
    enc = [encode_sample(processor, s, model.model.get_rope_index) for s in samples]
    batch = PackedCollator(enc, [[0, 1], [2, 3]], processor.tokenizer.pad_token_id)([0, 1])
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "row_ids", "real_tokens")}
    inputs["position_ids"] = inputs["position_ids"].permute(1, 0, 2)  # what PackedTrainer.compute_loss does
    with record_masks() as log:
        out = model(**inputs, use_cache=False)
        out.logits.float().logsumexp(-1).sum().backward()
    assert log.calls > 0
    assert log.square() == [], f"[L, L]-sized masks reached the attention: {sorted(set(log.square()))}"
    assert model.lm_head.weight.grad is not None and torch.isfinite(model.lm_head.weight.grad).all()
