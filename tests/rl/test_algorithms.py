"""Advantage estimators and losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ovr.rl import algorithms as A

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def inp(**kw):
    base = dict(scores=torch.tensor([1.0, 0.0]), mask=MASK, group=torch.tensor([0, 0]))
    base.update(kw)
    return A.AdvantageInput(**base)


def test_registry_rejects_duplicates_and_unknown():
    with pytest.raises(ValueError, match="already registered"):
        A.register_advantage("gae", critic=True, token_rewards=True)(lambda i: i)
    with pytest.raises(ValueError, match="declared in config"):
        A.register_advantage("gae")(lambda i: i)  # gae reads values: declared so in config
    with pytest.raises(KeyError, match="unknown advantage"):
        A.get_advantage("nope")
    assert {"gae", "grpo", "dr_grpo", "rloo", "reinforce_pp"} <= set(A.ADVANTAGES)


def test_last_token_rewards_skips_empty_rows():
    r = A.last_token_rewards(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]]))
    assert r.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 3]]


def test_gae_gamma_lambda_one_is_reward_minus_value():
    values = torch.tensor([[0.5, 0.2, -0.1], [0.3, 0.4, 9.0]])  # 9.0 sits on padding: ignored
    adv, ret = A.gae(inp(values=values))
    assert torch.allclose(adv, torch.tensor([[0.5, 0.8, 1.1], [-0.3, -0.4, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))


def test_gae_general_gamma_lambda_by_hand():
    # one row, T=3, reward 1 at the end, V = [0.5, 0.2, -0.1], gamma 0.9, lambda 0.5
    values = torch.tensor([[0.5, 0.2, -0.1]])
    adv, ret = A.gae(
        A.AdvantageInput(torch.tensor([1.0]), torch.ones(1, 3), torch.tensor([0]), values, gamma=0.9, lam=0.5)
    )
    d2 = 1.0 - (-0.1)  # 1.1
    d1 = 0.0 + 0.9 * -0.1 - 0.2  # -0.29
    d0 = 0.0 + 0.9 * 0.2 - 0.5  # -0.32
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2]]))
    assert torch.allclose(ret, adv + values)


def test_gae_needs_values():
    with pytest.raises(ValueError, match="critic values"):
        A.gae(inp())


def test_grpo_group_normalisation():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 5.0])
    group = torch.tensor([0, 0, 0, 0, 1, 2])
    mask = torch.ones(6, 2)
    adv, _ = A.grpo(A.AdvantageInput(scores, mask, group, eps=0.0))
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    assert torch.allclose(adv[:4, 0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std)
    assert adv[4:].abs().sum() == 0  # groups of one: no signal
    assert torch.equal(adv[:, 0], adv[:, 1])


def test_dr_grpo_and_rloo():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0])
    group = torch.zeros(4, dtype=torch.long)
    mask = torch.tensor([[1.0, 0.0]] * 4)
    adv, _ = A.dr_grpo(A.AdvantageInput(scores, mask, group))
    assert adv[:, 0].tolist() == [0.5, -0.5, -0.5, 0.5] and adv[:, 1].abs().sum() == 0
    adv, _ = A.rloo(A.AdvantageInput(scores, mask, group))
    # r_i - mean of the other three: 1 - 1/3, 0 - 2/3
    assert torch.allclose(adv[:, 0], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))


def test_reinforce_pp_returns_and_whitening():
    adv, ret = A.reinforce_pp(inp(gamma=0.5, eps=0.0))
    assert torch.allclose(ret, torch.tensor([[0.25, 0.5, 1.0], [0.0, 0.0, 0.0]]))
    vals = torch.tensor([0.25, 0.5, 1.0, 0.0, 0.0])
    expect = (vals - vals.mean()) / vals.var(unbiased=False).sqrt()
    assert torch.allclose(adv[MASK.bool()], expect, atol=1e-6)
    assert adv[1, 2] == 0


def test_batch_and_group_normalisation_ignore_padding():
    adv = torch.tensor([[1.0, 3.0, 100.0], [2.0, 2.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    out = A.normalize_advantages(adv, mask, torch.tensor([0, 1]), "batch")
    assert torch.allclose(out, torch.tensor([[-1.4142, 1.4142, 0.0], [0.0, 0.0, 0.0]]), atol=1e-4)
    out = A.normalize_advantages(adv, mask, torch.tensor([0, 1]), "group")
    assert torch.allclose(out[0], torch.tensor([-1.0, 1.0, 0.0]), atol=1e-4)
    assert out[1].abs().max() < 1e-3
    assert torch.equal(A.normalize_advantages(adv, mask, torch.tensor([0, 1]), "none"), adv)


def test_aggregations_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    assert A.aggregate(loss, MASK, "token_mean").item() == pytest.approx(15 / 5)
    assert A.aggregate(loss, MASK, "seq_mean").item() == pytest.approx((2.0 + 4.5) / 2)
    assert A.aggregate(loss, MASK, "seq_sum_norm", norm_len=10).item() == pytest.approx(15 / 20)
    # micro-batches with the global counts sum to the full-batch value
    parts = [A.aggregate(loss[i : i + 1], MASK[i : i + 1], "token_mean", total_tokens=5.0) for i in range(2)]
    assert sum(parts).item() == pytest.approx(3.0)
    parts = [A.aggregate(loss[i : i + 1], MASK[i : i + 1], "seq_mean", total_seqs=2) for i in range(2)]
    assert sum(parts).item() == pytest.approx(3.25)


def test_ppo_policy_loss_clipping_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 1.5]]))  # ratios
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, m = A.ppo_policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # token losses: max(-1.5, -1.28) = -1.28 ; max(0.5, 0.8) = 0.8 ; max(-1.1, -1.1) = -1.1
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 1.1) / 3, abs=1e-6)
    assert m["clip_frac"].item() == pytest.approx(2 / 3)
    r = torch.tensor([1.5, 0.5, 1.1])
    assert m["approx_kl"].item() == pytest.approx(((r - 1) - r.log()).mean().item(), abs=1e-6)


def test_ppo_gradient_sign_pushes_up_positive_advantage():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = A.ppo_policy_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    assert logp.grad[0, 0] < 0 < logp.grad[0, 1]  # descent raises logp where A > 0


def test_value_loss_clipped_and_plain():
    v = torch.tensor([[1.0, 0.0]])
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[2.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0]])
    loss, m = A.value_loss(v, old, ret, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (2.0 - 0.2) ** 2)  # clipped branch is larger
    assert m["value_clip_frac"].item() == 1.0
    loss, _ = A.value_loss(v, old, ret, mask, clip=None)
    assert loss.item() == pytest.approx(0.5 * 1.0)


def test_entropy_kl_explained_variance():
    uniform = torch.zeros(2, 4)
    assert torch.allclose(A.entropy_from_logits(uniform), torch.full((2,), math.log(4)))
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])
    assert A.kl_penalty(logp, ref, "k1").item() == pytest.approx(1.0)
    assert A.kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-1) + 1 - 1)
    ret = torch.tensor([[1.0, 0.0, 1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert A.explained_variance(ret, ret, mask).item() == pytest.approx(1.0)
    assert A.explained_variance(torch.zeros_like(ret) + 2 / 3, ret, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_presets_fill_only_unset_fields():
    from ovr.config import RLConfig

    dapo = RLConfig(algorithm="dapo", clip_high=0.3)
    assert (dapo.advantage, dapo.clip_high, dapo.dynamic_sampling, dapo.loss_agg) == ("grpo", 0.3, True, "token_mean")
    assert not dapo.uses_critic
    ppo = RLConfig()
    assert ppo.advantage == "gae" and ppo.uses_critic and ppo.adv_norm == "batch"
    assert RLConfig(algorithm="dr_grpo").loss_agg == "seq_sum_norm"


def test_every_declared_name_has_an_implementation():
    """Config's names (ovr/config/algorithms.py) and the RL stage's implementations are the same sets."""
    from ovr.config.algorithms import ESTIMATORS, LOSS_AGGS

    assert set(ESTIMATORS) == set(A.ADVANTAGES)
    assert set(LOSS_AGGS) == set(A.LOSS_AGGS)
