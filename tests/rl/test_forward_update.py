"""Trainer-side forward passes and single updates on the tiny Qwen2.5-VL (no servers)."""

from __future__ import annotations

import torch

from ovr.config import RLConfig
from ovr.rl.experience import Experience
from ovr.rl.forward import build_batch, critic_values, encode_prompt, policy_logprobs
from ovr.rl.metrics import subject_rewards
from ovr.rl.update import Batcher, actor_update, advantages, critic_update, pad, score_rows


def _ids(processor):
    tok = processor.tokenizer
    return tok.pad_token_id, tok.convert_tokens_to_ids("<|image_pad|>")


def test_batched_logprobs_match_single_rows_and_hf_loss(processor, visual, actor):
    pad_id, image_id = _ids(processor)
    p1, p2 = encode_prompt(processor, visual[0]), encode_prompt(processor, visual[1])
    assert p1.pixel_values is not None and p1.input_ids.count(image_id) > 0
    r1, r2 = [40, 41, 42, 43, 44], [50, 51]
    both, _ = policy_logprobs(actor, build_batch([p1, p2], [r1, r2], pad_id, image_id))
    one, _ = policy_logprobs(actor, build_batch([p2], [r2], pad_id, image_id))
    assert torch.allclose(both[1, :2], one[0], atol=1e-5)
    assert both[1, 2:].abs().sum() == 0  # padding gives 0
    ids = torch.tensor([p2.input_ids + r2])
    labels = ids.clone()
    labels[0, : len(p2.input_ids)] = -100
    out = actor(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        pixel_values=p2.pixel_values,
        image_grid_thw=p2.image_grid_thw,
        mm_token_type_ids=(ids == image_id).long(),
        labels=labels,
    )
    assert torch.allclose(out.loss, -one[0].mean(), atol=1e-5)


def test_encode_prompt_rejects_mismatched_server_ids(processor, visual):
    import pytest

    good = encode_prompt(processor, visual[0])
    assert encode_prompt(processor, visual[0], good.input_ids).input_ids == good.input_ids
    image_id = _ids(processor)[1]
    with pytest.raises(ValueError, match="image tokens"):
        encode_prompt(processor, visual[0], [i for i in good.input_ids if i != image_id])


def _rows(processor, visual):
    """Two prompts x 2 responses; in each group one response is rewarded."""
    prompts = [encode_prompt(processor, s) for s in visual[:2]]
    responses = [[40, 41, 42], [60, 61, 62, 63], [70, 71], [80, 81, 82]]
    scores = [1.0, 0.0, 0.0, 1.0]
    return [
        Experience(prompts[i // 2], r, s, s, i // 2, False, [], 0) for i, (r, s) in enumerate(zip(responses, scores))
    ]


def test_actor_update_moves_logprobs_the_way_advantages_point(processor, visual, actor):
    from ovr.rl.engine import TorchEngine

    pad_id, image_id = _ids(processor)
    rows = _rows(processor, visual)
    rl = RLConfig(algorithm="grpo", warmup_steps=0, max_tokens_per_micro=3 * 64)
    batcher = Batcher(rows, pad_id, image_id, "cpu", torch.float32, budget=rl.max_tokens_per_micro)
    assert len(batcher.passes([0, 1, 2, 3])) > 1  # the update accumulates over micro-batches
    before, _ = score_rows(batcher, actor=actor)
    adv, _, mask = advantages(rows, rl, None, None)
    engine = TorchEngine(actor, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0, warmup_steps=0, grad_clip=1.0)
    stats = actor_update(
        engine,
        batcher,
        rl,
        old_logp=pad(before),
        adv=adv,
        mask=mask,
        ref_logp=None,
        temperature=1.0,
        norm_len=4,
        minis=[[0, 1, 2, 3]],
    )
    after, _ = score_rows(batcher, actor=actor)
    delta = [float((a - b).sum()) for a, b in zip(after, before)]
    assert delta[0] > 0 and delta[3] > 0 and delta[1] < 0 and delta[2] < 0
    assert stats["approx_kl"] == 0.0 and stats["clip_frac"] == 0.0  # first update: ratio is exactly 1
    assert stats["entropy"] > 0 and stats["actor_grad_norm"] > 0


def test_critic_update_fits_returns_and_gae_advantages(processor, visual, tiny_model_dir):
    from ovr.models.critic import Critic
    from ovr.rl.engine import TorchEngine

    pad_id, image_id = _ids(processor)
    rows = _rows(processor, visual)
    rl = RLConfig(algorithm="ppo", critic_updates=2, value_clip=None)
    critic = Critic.from_policy(tiny_model_dir, init_range=5**0.5, seed=0)
    assert critic.value_head.bias is None
    batcher = Batcher(rows, pad_id, image_id, "cpu", torch.float32)
    _, values = score_rows(batcher, critic=critic)
    adv, ret, mask = advantages(rows, rl, values, None)
    # GAE(1, 1): returns are the score on every token; batch-normalised advantages have mean 0
    assert torch.allclose(ret[0, :3], torch.ones(3)) and torch.allclose(ret[1, :4], torch.zeros(4), atol=1e-6)
    assert abs(float(adv[mask.bool()].mean())) < 1e-5
    engine = TorchEngine(critic, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0, warmup_steps=0, grad_clip=1.0)
    minis = [[0, 2], [1, 3]]
    first = critic_update(engine, batcher, rl, old_values=pad(values), returns=ret, mask=mask, minis=minis)
    for _ in range(5):
        last = critic_update(engine, batcher, rl, old_values=pad(values), returns=ret, mask=mask, minis=minis)
    assert last["value_loss"] < first["value_loss"]
    b = batcher([0, 1])
    assert critic_values(critic, b).shape == b.response_mask.shape


def test_truncated_rows_can_be_masked(processor, visual):
    rows = _rows(processor, visual)
    rows[2].truncated = True
    _, _, mask = advantages(rows, RLConfig(algorithm="grpo", mask_truncated=True), None, None)
    assert mask[2].sum() == 0 and mask[3].sum() == 3


def test_shared_prompt_images_equal_repeated_images(processor, visual, actor):
    """Rows of one prompt share one vision pass; results equal separately encoded copies."""
    pad_id, image_id = _ids(processor)
    shared = encode_prompt(processor, visual[0])
    copies = [encode_prompt(processor, visual[0]) for _ in range(2)]
    responses = [[40, 41, 42], [43, image_id, 44]]  # a sampled image token enters as padding
    a, _ = policy_logprobs(actor, build_batch([shared, shared], responses, pad_id, image_id))
    b, _ = policy_logprobs(actor, build_batch(copies, responses, pad_id, image_id))
    assert build_batch([shared, shared], responses, pad_id, image_id).row_images == [[0], [0]]
    assert torch.allclose(a, b, atol=1e-5) and torch.isfinite(a).all()


def test_value_head_is_pytorch_default_linear_init_without_bias(tiny_model_dir):
    """ORZ's 'U(-sqrt5, sqrt5), no bias' = nn.Linear's kaiming_uniform(a=sqrt5): U(-1/sqrt(h), 1/sqrt(h))."""
    import math

    from ovr.models.critic import Critic

    hidden = Critic.from_policy(tiny_model_dir, init_range=math.sqrt(5), seed=0).config.text_config.hidden_size
    a = Critic.from_policy(tiny_model_dir, init_range=math.sqrt(5), seed=0).value_head
    b = Critic.from_policy(tiny_model_dir, init_range=math.sqrt(5), seed=0).value_head
    c = Critic.from_policy(tiny_model_dir, init_range=math.sqrt(5), seed=1).value_head
    bound = 1 / math.sqrt(hidden)
    assert a.bias is None
    assert a.weight.abs().max() <= bound and a.weight.abs().max() > 0.8 * bound
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_subject_rewards_are_per_task_means(processor, visual):
    from ovr.schema import Completion, RolloutGroup

    rows = _rows(processor, visual)
    rows[1].score = 1.0  # group 0 (visual[0]): 1, 1; group 1 (visual[1]): 0, 1
    groups = [RolloutGroup(sample_id=s.id, completions=[Completion(text="")] * 2) for s in visual[:2]]
    got = subject_rewards(rows, groups, {s.id: s for s in visual})
    assert visual[0].subject != visual[1].subject
    assert got == {f"reward_mean/{visual[0].subject}": 1.0, f"reward_mean/{visual[1].subject}": 0.5}
