"""The SFT loss from the LM head's input, a chunk of tokens at a time, equals the cross entropy of
full logits: per token, summed over a packed row (text + image samples), and in its gradients;
the Trainer's forward hands the loss that input and logits of no position."""

from __future__ import annotations

import pytest
import torch

from ovr.models.lm_head import capture_head_input
from ovr.sft.encode import IGNORE, encode_sample
from ovr.sft.loss import hidden_token_losses, step_loss, token_losses
from ovr.sft.packing import PackedCollator


@pytest.fixture(scope="module")
def packed(tiny_model_dir, sft_samples, image_sft_sample):
    from ovr.models.loading import load_policy, load_processor

    model, processor = load_policy(tiny_model_dir), load_processor(tiny_model_dir)
    samples = [sft_samples[1], image_sft_sample, sft_samples[2]]
    enc = [encode_sample(processor, s, model.model.get_rope_index) for s in samples]
    batch = PackedCollator(enc, [[0, 1, 2]], processor.tokenizer.pad_token_id, pad_to_multiple=64)([0])
    inputs = {
        "input_ids": batch["input_ids"],
        "position_ids": batch["position_ids"].permute(1, 0, 2),
        "pixel_values": batch["pixel_values"],
        "image_grid_thw": batch["image_grid_thw"],
        "use_cache": False,
    }
    return model, inputs, batch["labels"]


def _grads(model):
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_chunked_token_losses_and_step_gradients_equal_full_cross_entropy(packed):
    model, inputs, labels = packed
    n_labelled = int((labels[:, 1:] != IGNORE).sum())
    assert n_labelled > 20
    full = token_losses(model(**inputs).logits, labels)
    (full.sum() / n_labelled).backward()
    ref_grads = _grads(model)
    for chunk in (1, 7, 13, 4096):  # 7 and 13 do not divide the labelled-token count
        with capture_head_input(model):
            out = model(**inputs)
        assert out.logits.shape[1] == 0
        losses = hidden_token_losses(out["head_input"], labels, chunk_size=chunk)
        assert torch.allclose(losses, full.detach(), atol=1e-5)
        assert (losses[:, :-1][labels[:, 1:] == IGNORE] == 0).all()
    given = (labels[:, 1:] != IGNORE).nonzero().T  # a caller that knows the labelled positions
    assert torch.allclose(hidden_token_losses(out["head_input"], labels, index=given), full.detach(), atol=1e-5)
    with capture_head_input(model):
        loss = step_loss(model(**inputs), labels, num_items_in_batch=torch.tensor(n_labelled))
    assert torch.allclose(loss, full.sum().detach() / n_labelled, atol=1e-6)
    loss.backward()
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-5, rtol=1e-4), name


def test_step_loss_needs_the_captured_head_input(packed):
    model, inputs, labels = packed
    with torch.no_grad(), pytest.raises(ValueError, match="head_input"):
        step_loss(model(**inputs), labels)


def test_capture_works_through_a_ddp_wrapper(packed, tmp_path):
    """The pipeline's SFT runs under torchrun, where the Trainer wraps the model in DDP; DDP rebuilds
    the ModelOutput from its declared fields, so the captured input is attached after the wrapper."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model, inputs, labels = packed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model, find_unused_parameters=True)  # what the Trainer picks
        with capture_head_input(model, wrapper=wrapped):
            out = wrapped(**inputs)
        assert out.logits.shape[1] == 0
        loss = step_loss(out, labels)
        loss.backward()
        assert model.get_output_embeddings().weight.grad.abs().sum() > 0
        model.zero_grad(set_to_none=True)
    finally:
        dist.destroy_process_group()
