"""Pieces of an RL step without servers: DAPO's refill, the reward-side and the loss-side KL."""

from __future__ import annotations

import pytest
import torch

from ovr.config import RLConfig
from ovr.rl.algorithms import kl_penalty
from ovr.rl.experience import Experience
from ovr.rl.forward import encode_prompt
from ovr.rl.sampling import collect
from ovr.rl.state import PromptCursor
from ovr.rl.update import Batcher, actor_update, advantages, pad, score_rows
from ovr.rollout.scoring import Scored
from ovr.schema import Completion, RolloutGroup, Sample, ScoreResult


def _prompts(n: int) -> list[Sample]:
    return [Sample(id=f"p{i}", source="t", split="rl", prompt=f"q{i}", answer="1") for i in range(n)]


def _fake_sampler(informative: set[str], calls: list[int]):
    """Scores each prompt's 2 responses 0/1 when it is in ``informative``, else 1/1."""

    def sample(batch: list[Sample]) -> Scored:
        calls.append(len(batch))
        groups = [RolloutGroup(sample_id=s.id, completions=[Completion(text="a"), Completion(text="b")]) for s in batch]
        results = [
            ScoreResult(overall=v, accuracy=v)
            for s in batch
            for v in ((0.0, 1.0) if s.id in informative else (1.0, 1.0))
        ]
        return Scored(groups, results, rollout_s=1.0, reward_s=0.5)

    return sample


def test_dapo_refills_the_batch_with_informative_groups():
    prompts = _prompts(40)
    informative = {f"p{i}" for i in range(0, 40, 2)}  # every other prompt teaches something
    calls: list[int] = []
    cursor = PromptCursor(len(prompts), seed=0)
    got = collect(_fake_sampler(informative, calls), prompts, cursor, want=8, dynamic=True, max_rounds=5)
    groups, results = got.kept()
    assert len(groups) == 8 and all(g.sample_id in informative for g in groups)
    assert len(results) == 16 and got.rounds >= 2 and calls[0] == 8
    assert calls[1] <= 8 and calls[1] > 8 - sum(1 for g in got.groups[:8] if g.sample_id in informative)
    assert cursor.index == sum(calls)  # every sampled prompt was consumed from the cursor
    assert got.rollout_s == pytest.approx(got.rounds * 1.0)


def test_dapo_stops_after_max_rounds_and_trains_on_what_it_has():
    calls: list[int] = []
    got = collect(
        _fake_sampler({"p3"}, calls), _prompts(40), PromptCursor(40, seed=1), want=8, dynamic=True, max_rounds=2
    )
    assert got.rounds == 2 and len(got.kept()[0]) <= 2


def test_without_dynamic_sampling_every_group_trains_in_one_round():
    calls: list[int] = []
    got = collect(
        _fake_sampler(set(), calls), _prompts(10), PromptCursor(10, seed=0), want=4, dynamic=False, max_rounds=3
    )
    assert calls == [4] and len(got.kept()[0]) == 4  # uniform groups kept: critics learn from them


def _rows(processor, visual):
    prompts = [encode_prompt(processor, s) for s in visual[:2]]
    responses = [[40, 41, 42], [60, 61, 62, 63], [70, 71], [80, 81, 82]]
    scores = [1.0, 0.0, 0.0, 1.0]
    return [
        Experience(prompts[i // 2], r, s, s, i // 2, False, [], 0) for i, (r, s) in enumerate(zip(responses, scores))
    ]


def test_kl_reward_is_folded_into_token_rewards(processor, visual):
    """GAE(1, 1) with zero values: A_t = score - coef * sum_{k >= t} kl_k (then batch-whitened)."""
    rows = _rows(processor, visual)
    rl = RLConfig(algorithm="ppo", kl_reward_coef=0.5, adv_norm="none")
    values = [torch.zeros(len(r.response_ids)) for r in rows]
    kl = [torch.full((len(r.response_ids),), 0.2) for r in rows]
    adv, _ret, _mask = advantages(rows, rl, values, kl)
    n = len(rows[0].response_ids)
    expected = torch.tensor([1.0 - 0.5 * 0.2 * (n - t) for t in range(n)])
    assert torch.allclose(adv[0, :n], expected, atol=1e-6)
    plain, _, _ = advantages(rows, rl.model_copy(update={"kl_reward_coef": 0.0}), values, None)
    assert torch.allclose(plain[0, :n], torch.ones(n))


def test_kl_loss_pulls_the_policy_towards_the_reference(processor, visual, actor, tiny_model_dir):
    """With zero advantages the only gradient is the loss-side KL: log-probs move towards the reference."""
    from transformers import AutoModelForImageTextToText

    from ovr.rl.engine import TorchEngine

    tok = processor.tokenizer
    rows = _rows(processor, visual)
    batcher = Batcher(rows, tok.pad_token_id, tok.convert_tokens_to_ids("<|image_pad|>"), "cpu", torch.float32)
    ref = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a policy that has drifted from the reference
        for p in actor.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    ref_logp, _ = score_rows(batcher, actor=ref)
    old, _ = score_rows(batcher, actor=actor)
    rl = RLConfig(algorithm="grpo", kl_loss_coef=1.0, warmup_steps=0)
    adv, _, mask = advantages(rows, rl, None, None)
    engine = TorchEngine(actor, lr=1e-5, betas=(0.9, 0.95), weight_decay=0.0, warmup_steps=0, grad_clip=1.0)
    stats = actor_update(
        engine,
        batcher,
        rl,
        old_logp=pad(old),
        adv=adv * 0,
        mask=mask,
        ref_logp=pad(ref_logp),
        temperature=1.0,
        norm_len=4,
        minis=[[0, 1, 2, 3]],
    )
    new, _ = score_rows(batcher, actor=actor)
    k3 = lambda lps: float(sum(kl_penalty(a, b).sum() for a, b in zip(lps, ref_logp)))  # noqa: E731
    assert stats["kl_ref"] > 0 and k3(new) < k3(old)  # the estimate the loss term minimises went down


def test_behaviour_metrics_per_modality_and_accuracy_with_without():
    from ovr.data.synthetic import visual_samples
    from ovr.rl.metrics import behaviour_metrics

    image = visual_samples(1, seed=0, tasks=["count_shapes"])[0].model_copy(update={"id": "img"})
    samples = {"img": image, "txt": Sample(id="txt", source="t", split="rl", modality="text", prompt="q", answer="1")}
    texts = {
        "img": ["Wait, let me recheck: \\boxed{1}", "\\boxed{2}", "Let me verify: \\boxed{1}", "\\boxed{1}"],
        "txt": ["\\boxed{1}", "\\boxed{3}"],
    }
    acc = {"img": [1.0, 0.0, 1.0, 0.0], "txt": [1.0, 0.0]}
    groups = [RolloutGroup(sample_id=k, completions=[Completion(text=t) for t in v]) for k, v in texts.items()]
    results = [ScoreResult(overall=a, accuracy=a) for k in texts for a in acc[k]]
    m = behaviour_metrics(groups, results, samples)
    assert m["behaviour/image/responses"] == 4 and m["behaviour/text/responses"] == 2
    assert m["behaviour/image/reflection"] == 0.25 and m["behaviour/image/verification"] == 0.25
    assert m["behaviour/image/backtracking"] == 0.0 and m["behaviour/text/reflection"] == 0.0
    assert m["behaviour/image/accuracy_with/reflection"] == 1.0
    assert m["behaviour/image/accuracy_without/reflection"] == pytest.approx(1 / 3)
    assert "behaviour/text/accuracy_with/reflection" not in m  # no text response reflects
    with pytest.raises(ValueError, match="scores for"):
        behaviour_metrics(groups, results[:-1], samples)
