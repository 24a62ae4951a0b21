"""No ``[L, L]``-sized attention mask is built for an RL micro-batch: the actor's and the critic's
forward (and backward) over a micro-batch of several rows of different lengths, text and image
rows, loaded the way the trainer loads them (``model.attn_implementation`` of the default config)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ovr.config import ModelConfig, RLConfig
from ovr.models.critic import Critic
from ovr.models.loading import load_policy
from ovr.rl.experience import Experience
from ovr.rl.forward import EncodedPrompt, encode_prompt
from ovr.rl.update import Batcher, actor_update, advantages, pad, score_rows

sys.path.insert(0, str(Path(__file__).parent))
from attention_probe import record_masks


def _batcher(processor, visual) -> Batcher:
    tok = processor.tokenizer
    image_prompt = encode_prompt(processor, visual[0])
    text_prompt = EncodedPrompt(tok("What is 2 + 3?")["input_ids"], None, None)
    responses = [[40 + i for i in range(n)] for n in (23, 4, 11, 7)]
    prompts = [image_prompt, image_prompt, text_prompt, text_prompt]
    rows = [
        Experience(p, r, float(i % 2), float(i % 2), i // 2, False, [], 0)
        for i, (p, r) in enumerate(zip(prompts, responses))
    ]
    return Batcher(rows, tok.pad_token_id, tok.convert_tokens_to_ids("<|image_pad|>"), "cpu", torch.float32)


def test_no_square_mask_reaches_the_attention_of_actor_or_critic(processor, visual, tiny_model_dir):
    from ovr.rl.engine import TorchEngine

    actor = load_policy(tiny_model_dir, ModelConfig())
    critic = Critic.from_policy(tiny_model_dir, init_range=5**0.5, seed=0, **_attn())
    batcher = _batcher(processor, visual)
    assert batcher.passes([0, 1, 2, 3]) == [[0, 1, 2, 3]]  # one micro-batch of rows of different lengths
    rl = RLConfig(algorithm="ppo", warmup_steps=0)  # the preset applies at validation
    engine = TorchEngine(actor, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0, warmup_steps=0, grad_clip=1.0)
    with record_masks() as log:
        old, _ = score_rows(batcher, actor=actor)
        _, values = score_rows(batcher, critic=critic)
        adv, _, mask = advantages(batcher.rows, rl, values, None)
        actor_update(
            engine, batcher, rl, old_logp=pad(old), adv=adv, mask=mask, ref_logp=None,
            temperature=1.0, norm_len=32, minis=[[0, 1, 2, 3]],
        )  # fmt: skip
    assert log.calls > 0
    assert log.square() == [], f"[L, L]-sized masks reached the attention: {sorted(set(log.square()))}"


def _attn() -> dict:
    """The trainer's attention for the critic (today's code: the critic's own default)."""
    import inspect

    default = ModelConfig().attn_implementation
    return (
        {"attn_implementation": default}
        if "attn_implementation" in inspect.signature(Critic.from_policy).parameters
        else {}
    )
