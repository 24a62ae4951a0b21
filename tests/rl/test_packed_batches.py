"""Padding-free micro-batches equal the right-padded ones: actor log-probs, entropy and gradients,
critic values and gradients (tiny Qwen2.5-VL, fp32, text and image rows, shared prompt images);
image rows keep their own M-RoPE positions; the token budget counts real tokens; MLP tiles cut
across rows; the attention picks PyTorch's varlen kernel where it can run (a fake-tensor trace)
and exact per-row SDPA on the CPU."""

from __future__ import annotations

import pytest
import torch

from ovr.models import attention
from ovr.models.critic import Critic
from ovr.rl.forward import EncodedPrompt, build_batch, critic_values, encode_prompt, policy_logprobs
from ovr.rl.packed import pack_batch
from ovr.rl.update import plan_micro

TOL = 1e-5


@pytest.fixture(scope="module")
def rows(processor, visual):
    tok = processor.tokenizer
    a, b = encode_prompt(processor, visual[0]), encode_prompt(processor, visual[1])
    text = EncodedPrompt(tok("Add 2 and 3.")["input_ids"], None, None)
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    prompts = [a, a, text, b, text]
    responses = [[40, 41, 42, 43, 44, 45, 46], [50, image_id, 51], [60, 61], [70 + i for i in range(12)], []]
    return prompts, responses, tok.pad_token_id, image_id


def _models(tiny_model_dir, kind: str):
    from ovr.config import ModelConfig
    from ovr.models.loading import load_policy

    if kind == "critic":
        return [
            Critic.from_policy(tiny_model_dir, init_range=5**0.5, seed=0, attn_implementation=a)
            for a in ("sdpa", "varlen")
        ]
    return [load_policy(tiny_model_dir, ModelConfig(attn_implementation=a)) for a in ("sdpa", "varlen")]


def _grad_diff(a, b) -> float:
    grads = [(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters()) if p.grad is not None]
    assert len(grads) > 10 and all(q is not None for _, q in grads)
    return max(float((p - q).abs().max() / q.abs().max().clamp(min=1.0)) for p, q in grads)


def test_packed_actor_logprobs_entropy_and_gradients_equal_padded(rows, tiny_model_dir):
    prompts, responses, pad_id, image_id = rows
    padded_model, packed_model = _models(tiny_model_dir, "actor")
    padded = build_batch(prompts, responses, pad_id, image_id)
    packed = pack_batch(prompts, responses, pad_id, image_id, packed_model.model.get_rope_index)
    assert packed.input_ids.shape == (1, sum(packed.seq_lens)) and padded.input_ids.numel() > packed.input_ids.numel()
    before = dict(attention.CALLS)
    lp_a, ent_a = policy_logprobs(padded_model, padded, with_entropy=True, chunk_size=5)
    lp_b, ent_b = policy_logprobs(packed_model, packed, with_entropy=True, chunk_size=5)
    ran = {k: v - before.get(k, 0) for k, v in attention.CALLS.items() if v > before.get(k, 0)}
    layers = packed_model.config.text_config.num_hidden_layers
    depth = packed_model.config.vision_config.depth
    # the packed rows ran per-row SDPA, the vision tower one call per block over its images and windows
    assert ran == {f"decoder/{attention.SEGMENT_KERNEL}": layers, f"vision/{attention.SEGMENT_KERNEL}": depth}, ran
    assert lp_a.shape == lp_b.shape and (lp_b[4] == 0).all()  # the empty response stays empty
    assert torch.allclose(lp_a, lp_b, atol=TOL) and torch.allclose(ent_a, ent_b, atol=TOL)
    (lp_a * padded.response_mask).sum().backward()
    (lp_b * packed.response_mask).sum().backward()
    assert _grad_diff(padded_model, packed_model) < TOL


def test_packed_critic_values_and_gradients_equal_padded(rows, tiny_model_dir):
    prompts, responses, pad_id, image_id = rows
    padded_critic, packed_critic = _models(tiny_model_dir, "critic")
    assert packed_critic.config._attn_implementation == attention.NAME  # not sdpa hard-coded
    rope = packed_critic.backbone.get_rope_index
    va = critic_values(padded_critic, build_batch(prompts, responses, pad_id, image_id))
    vb = critic_values(packed_critic, pack_batch(prompts, responses, pad_id, image_id, rope))
    assert torch.allclose(va, vb, atol=TOL) and va.abs().sum() > 0
    va.square().sum().backward()
    vb.square().sum().backward()
    assert _grad_diff(padded_critic, packed_critic) < TOL


def test_image_rows_keep_their_own_mrope_positions(rows, actor):
    prompts, responses, pad_id, image_id = rows
    fresh = [EncodedPrompt(p.input_ids, p.pixel_values, p.image_grid_thw) for p in prompts]
    packed = pack_batch(fresh, responses, pad_id, image_id, actor.model.get_rope_index)
    at = 0
    for p, r, n in zip(fresh, responses, packed.seq_lens):
        ids = torch.tensor([p.input_ids + [pad_id if t == image_id else t for t in r]])
        kw = {"image_grid_thw": p.image_grid_thw} if p.image_grid_thw is not None else {}
        alone, _ = actor.model.get_rope_index(ids, mm_token_type_ids=(ids == image_id).int(), **kw)
        assert torch.equal(packed.position_ids[1:, 0, at : at + n], alone[:, 0])  # 3-D, as if alone
        assert torch.equal(packed.position_ids[0, 0, at : at + n], torch.arange(n))  # text positions restart
        at += n
    assert (packed.position_ids[1, 0] != packed.position_ids[2, 0]).any()  # image rows are really 3-D
    # without the model's rope_index at packing time, the model fills the image rows in at its forward
    later = [EncodedPrompt(p.input_ids, p.pixel_values, p.image_grid_thw) for p in prompts]
    lazy = pack_batch(later, responses, pad_id, image_id)
    assert len(lazy.pending_rope) == 3 and not torch.equal(lazy.position_ids, packed.position_ids)
    lazy.model_inputs(actor)
    assert not lazy.pending_rope and torch.equal(lazy.position_ids, packed.position_ids)
    assert later[0].rope is not None  # cached on the prompt for the next micro-batch


def test_budget_counts_real_tokens_not_rows_times_longest():
    lengths = [9000, 700, 650, 600, 400, 300]
    micros = plan_micro(lengths, list(range(6)), budget=10_000)
    assert micros == [[0, 1, 5], [2, 3, 4]]  # padded, [0, 1] alone would already be 18k
    assert all(sum(lengths[i] for i in m) <= 10_000 for m in micros)
    assert plan_micro([12_000, 10], [0, 1], budget=10_000) == [[0], [1]]  # a longer row runs alone


def test_mlp_tiles_cut_across_rows(actor):
    from ovr.models.tiling import tile_mlps, untile_mlps

    mlp = actor.model.language_model.layers[0].mlp
    x = torch.randn(3, 5, actor.config.text_config.hidden_size, requires_grad=True)  # 3 rows of 5 tokens
    expected = mlp(x)
    seen = []
    mlp.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    original = mlp.gate_proj.forward
    mlp.gate_proj.forward = lambda t: (seen.append(t.shape[:-1].numel()), original(t))[1]
    tile_mlps(actor, tile_tokens=4)
    try:
        seen.clear()
        out = mlp(x)
        assert seen[1:] == [4, 4, 4, 3]  # 15 tokens of 3 rows in 4 tiles (each row alone is 5 < 8)
        assert torch.allclose(out, expected, atol=1e-6)
    finally:
        untile_mlps(actor)
        del mlp.gate_proj.forward


def test_fake_tensor_trace_uses_torch_varlen_kernel(tiny_model_dir):
    """On fake tensors (the memory bench) the packed attention is PyTorch's varlen kernel,
    forward and backward; no per-row SDPA and no fallback."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config._attn_implementation = attention.resolve("varlen")
    lengths = [30, 12, 7]
    before = dict(attention.CALLS)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = Qwen2_5_VLForConditionalGeneration(config)
        ids = torch.full((1, sum(lengths)), 11)
        pos = torch.cat([torch.arange(n) for n in lengths]).view(1, 1, -1).expand(4, 1, -1)
        model(input_ids=ids, position_ids=pos, **attention.segment_kwargs(lengths)).logits.sum().backward()
    layers = config.text_config.num_hidden_layers
    ran = {k: v - before.get(k, 0) for k, v in attention.CALLS.items() if v > before.get(k, 0)}
    assert ran == {f"decoder/{attention.VARLEN_KERNEL}": layers}, ran  # no per-row SDPA, no fallback
