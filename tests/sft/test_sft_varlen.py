"""A padding-free SFT micro-batch (two packed rows of text and image samples as one sequence, ovr's
varlen attention) gives the loss and gradients of the dense block-diagonal-mask path transformers
takes under ``sdpa`` (today's packed rows), and every sample the loss it has alone."""

from __future__ import annotations

from itertools import accumulate

import pytest
import torch

from ovr.config import ModelConfig
from ovr.models import attention
from ovr.models.lm_head import capture_head_input
from ovr.models.loading import load_policy, load_processor
from ovr.sft.encode import IGNORE, encode_sample
from ovr.sft.loss import segment_losses, step_loss
from ovr.sft.packing import PackedCollator


def _inputs(batch: dict) -> dict:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "row_ids", "real_tokens")}
    inputs["position_ids"] = inputs["position_ids"].permute(1, 0, 2)
    return inputs | {"use_cache": False}


def test_packed_sft_loss_and_gradients_equal_the_dense_mask_path(tiny_model_dir, sft_samples, image_sft_sample):
    processor = load_processor(tiny_model_dir)
    dense, varlen = (load_policy(tiny_model_dir, ModelConfig(attn_implementation=a)) for a in ("sdpa", "varlen"))
    samples = [sft_samples[1], image_sft_sample, sft_samples[2], sft_samples[3]]
    enc = [encode_sample(processor, s, varlen.model.get_rope_index) for s in samples]
    batch = PackedCollator(enc, [[0, 1], [2, 3]], processor.tokenizer.pad_token_id, pad_to_multiple=16)([0, 1])
    lengths = [len(e) for e in enc]
    assert batch["input_ids"].shape[0] == 1  # the two rows are one sequence, each sample a segment
    assert batch["ovr_cu_seqlens"].tolist()[: len(enc) + 1] == [0, *accumulate(lengths)]
    labels = batch["labels"]
    n = (labels[:, 1:] != IGNORE).sum()
    losses, grads = [], []
    before = attention.CALLS[f"decoder/{attention.SEGMENT_KERNEL}"]
    for model in (dense, varlen):
        with capture_head_input(model):
            loss = step_loss(model(**_inputs(batch)), labels, num_items_in_batch=n)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
    assert attention.CALLS[f"decoder/{attention.SEGMENT_KERNEL}"] > before
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for k, g in grads[0].items():
        assert float((g - grads[1][k]).abs().max()) < 1e-5 * max(1.0, float(g.abs().max())), k

    with torch.no_grad():  # and each sample its loss alone
        alone = []
        for i, e in enumerate(enc):
            single = PackedCollator(enc, [[i]], processor.tokenizer.pad_token_id)([0])
            alone += segment_losses(varlen(**_inputs(single)).logits, single["labels"], [[len(e)]])
        packed = segment_losses(varlen(**_inputs(batch)).logits, labels, [lengths])
    assert packed == pytest.approx(alone, abs=1e-5)
