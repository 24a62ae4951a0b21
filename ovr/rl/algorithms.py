"""PPO / GRPO-family math: advantage estimators, policy and value losses, metrics.

Pure tensor functions. Shapes: ``B`` responses, ``T`` response tokens (right-padded); ``mask`` is
``[B, T]`` with 1 on real response tokens and 0 on padding (and on whole responses excluded from
the loss, e.g. truncated ones under DAPO's overlong filtering). ``scores`` is ``[B]``: one scalar
reward per response, placed on its last real token (the verifiable, outcome-only reward).

Advantage estimators and loss aggregations are registered by name (:func:`register_advantage`,
:func:`register_loss_agg`; duplicates rejected) under the names config knows
(``ovr/config/algorithms.py``; a new name is declared there by its registration), and share one
signature; the trainer looks them up from ``cfg.rl.advantage`` / ``cfg.rl.loss_agg``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ovr.config.algorithms import ESTIMATORS, Estimator
from ovr.config.algorithms import LOSS_AGGS as LOSS_AGG_NAMES
from ovr.registry import Registry

Tensor = torch.Tensor


# --------------------------------------------------------------------------- masked statistics
def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` where ``mask`` is 1."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over ``mask``; 0 when the mask is empty."""
    return masked_sum(x, mask, dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor) -> Tensor:
    """Population variance of ``x`` over ``mask`` (0 when fewer than one element)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


Reduce = Callable[[Tensor], Tensor]


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8, reduce: Reduce | None = None) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the masked elements; padding stays 0. ``reduce`` sums
    ``[count, sum, sum of squares]`` over the ranks that hold the rest of the batch, so several ranks
    whiten with the statistics of the whole batch.

    >>> masked_whiten(torch.tensor([[1., 3.]]), torch.ones(1, 2))
    tensor([[-1.,  1.]])
    """
    if reduce is None:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    else:
        m = mask.double()
        n, total, sq = reduce(torch.stack([m.sum(), (x.double() * m).sum(), (x.double() ** 2 * m).sum()])).tolist()
        mean = total / max(n, 1.0)
        var = max(sq / max(n, 1.0) - mean**2, 0.0)
        mean, var = torch.tensor(mean, dtype=x.dtype), torch.tensor(var, dtype=x.dtype)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def last_token_rewards(scores: Tensor, mask: Tensor) -> Tensor:
    """``[B, T]`` token rewards: ``scores[b]`` on the last real token of row ``b``, 0 elsewhere.

    >>> last_token_rewards(torch.tensor([1., 2.]), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    tensor([[0., 1., 0.],
            [2., 0., 0.]])
    """
    lengths = mask.long().sum(-1)
    out = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    rows = torch.nonzero(lengths > 0).squeeze(-1)
    out[rows, lengths[rows] - 1] = scores[rows]
    return out


# --------------------------------------------------------------------------- advantage estimators
@dataclass
class AdvantageInput:
    """What an estimator may use. ``values`` only for critic-based ones; ``group`` is the prompt
    index of each response (responses to the same prompt share it); ``kl`` an optional per-token
    KL already multiplied by its coefficient, subtracted from the token rewards."""

    scores: Tensor  # [B]
    mask: Tensor  # [B, T]
    group: Tensor  # [B] long
    values: Tensor | None = None  # [B, T]
    kl: Tensor | None = None  # [B, T]
    gamma: float = 1.0
    lam: float = 1.0
    eps: float = 1e-6
    reduce: Reduce | None = None  # sums statistics over ranks (batch-level whitening), see masked_whiten


EstimatorFn = Callable[[AdvantageInput], tuple[Tensor, Tensor]]
#: estimators ``fn(AdvantageInput) -> (advantages [B,T], returns [B,T])`` by name
ADVANTAGES: Registry[EstimatorFn] = Registry("advantage estimator")
get_advantage = ADVANTAGES.get


def register_advantage(name: str, *, critic: bool = False, token_rewards: bool = False):
    """Decorator: the estimator ``name``; a new name is declared in config's ESTIMATORS with what it
    needs (``critic``: reads critic values; ``token_rewards``: reads per-token rewards)."""
    spec = Estimator(critic=critic, token_rewards=token_rewards)
    if name not in ESTIMATORS:
        ESTIMATORS.add(name, spec)
    elif ESTIMATORS.get(name) != spec:
        raise ValueError(f"estimator {name!r} is declared in config as {ESTIMATORS.get(name)}, registered as {spec}")
    return ADVANTAGES.register(name)


def _token_rewards(inp: AdvantageInput) -> Tensor:
    rewards = last_token_rewards(inp.scores.float(), inp.mask)
    if inp.kl is not None:
        rewards = rewards - inp.kl * inp.mask
    return rewards


def _group_stats(scores: Tensor, group: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-response mean, unbiased std and size of its group (std 1 for groups of one)."""
    ids, inverse = torch.unique(group, return_inverse=True)
    k = len(ids)
    count = torch.zeros(k, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, torch.ones_like(scores))
    total = torch.zeros(k, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, scores)
    mean = total / count
    sq = torch.zeros(k, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, (scores - mean[inverse]) ** 2)
    std = torch.where(count > 1, (sq / (count - 1).clamp(min=1)).sqrt(), torch.ones_like(sq))
    return mean[inverse], std[inverse], count[inverse]


@register_advantage("gae", critic=True, token_rewards=True)
def gae(inp: AdvantageInput) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation with a critic.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` (``V`` past the last token is 0),
    ``A_t = delta_t + gamma * lam * A_{t+1}``, returns ``R_t = A_t + V_t``. With gamma = lam = 1 and
    a final-token reward ``r``: ``A_t = r - V_t`` and ``R_t = r`` (Open-Reasoner-Zero's setting).
    """
    if inp.values is None:
        raise ValueError("gae needs critic values")
    mask = inp.mask.float()
    values = inp.values.float() * mask
    rewards = _token_rewards(inp)
    T = mask.shape[1]
    adv = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + inp.gamma * next_v - values[:, t]
        last = (delta + inp.gamma * inp.lam * last) * mask[:, t]
        adv[:, t] = last
    return adv * mask, (adv + values) * mask


@register_advantage("grpo")
def grpo(inp: AdvantageInput) -> tuple[Tensor, Tensor]:
    """GRPO: ``A_i = (r_i - mean(group)) / (std(group) + eps)`` on every token of response ``i``
    (unbiased std; a group of one gets A = 0)."""
    scores = inp.scores.float()
    mean, std, _ = _group_stats(scores, inp.group)
    adv = ((scores - mean) / (std + inp.eps))[:, None] * inp.mask
    return adv, adv


@register_advantage("dr_grpo")
def dr_grpo(inp: AdvantageInput) -> tuple[Tensor, Tensor]:
    """Dr. GRPO: ``A_i = r_i - mean(group)`` (no std division; pair with ``seq_sum_norm``)."""
    scores = inp.scores.float()
    mean, _, _ = _group_stats(scores, inp.group)
    adv = (scores - mean)[:, None] * inp.mask
    return adv, adv


@register_advantage("rloo")
def rloo(inp: AdvantageInput) -> tuple[Tensor, Tensor]:
    """REINFORCE leave-one-out: ``A_i = r_i - mean_{j != i} r_j = n/(n-1) * (r_i - mean)``
    (0 for a group of one)."""
    scores = inp.scores.float()
    mean, _, count = _group_stats(scores, inp.group)
    scale = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.zeros_like(count))
    adv = (scale * (scores - mean))[:, None] * inp.mask
    return adv, adv


@register_advantage("reinforce_pp", token_rewards=True)
def reinforce_pp(inp: AdvantageInput) -> tuple[Tensor, Tensor]:
    """REINFORCE++: discounted return-to-go ``G_t = sum_{k>=t} gamma^(k-t) r_k`` (KL folded into
    ``r``), then whitened over every real token of the batch: ``A = (G - mean) / std``."""
    mask = inp.mask.float()
    rewards = _token_rewards(inp)
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(mask.shape[1])):
        running = rewards[:, t] + inp.gamma * running
        returns[:, t] = running
    returns = returns * mask
    return masked_whiten(returns, mask, eps=inp.eps, reduce=inp.reduce), returns


def normalize_advantages(
    adv: Tensor, mask: Tensor, group: Tensor, mode: str, eps: float = 1e-8, reduce: Reduce | None = None
) -> Tensor:
    """``batch``: whiten over every real token of the batch (of every rank, with ``reduce``);
    ``group``: whiten within each prompt's responses; ``none``: unchanged."""
    if mode == "none":
        return adv
    if mode == "batch":
        return masked_whiten(adv, mask, eps, reduce)
    if mode == "group":
        out = torch.zeros_like(adv)
        for g in torch.unique(group):
            rows = group == g
            out[rows] = masked_whiten(adv[rows], mask[rows], eps)
        return out
    raise ValueError(f"unknown advantage normalisation {mode!r}")


# --------------------------------------------------------------------------- losses
Aggregation = Callable[..., Tensor]
#: token-loss reductions ``fn(loss, mask, *, total_tokens, total_seqs, norm_len) -> scalar`` by name
LOSS_AGGS: Registry[Aggregation] = Registry("loss aggregation")


def register_loss_agg(name: str, description: str = ""):
    """Decorator: the token-loss aggregation ``name`` (declared in config's LOSS_AGGS if new)."""
    if name not in LOSS_AGG_NAMES:
        LOSS_AGG_NAMES.add(name, description or name)
    return LOSS_AGGS.register(name)


@register_loss_agg("token_mean")
def _token_mean(loss: Tensor, mask: Tensor, *, total_tokens=None, total_seqs=None, norm_len=None) -> Tensor:
    """``sum(l * m) / N_tokens`` (DAPO, ORZ): every token weighs the same."""
    denom = total_tokens if total_tokens is not None else mask.sum().clamp(min=1)
    return masked_sum(loss, mask) / denom


@register_loss_agg("seq_mean")
def _seq_mean(loss: Tensor, mask: Tensor, *, total_tokens=None, total_seqs=None, norm_len=None) -> Tensor:
    """``mean_b( sum_t(l * m) / len_b )`` (GRPO): every response weighs the same."""
    per_seq = masked_sum(loss, mask, -1) / mask.sum(-1).clamp(min=1)
    denom = total_seqs if total_seqs is not None else loss.shape[0]
    return per_seq.sum() / denom


@register_loss_agg("seq_sum_norm")
def _seq_sum_norm(loss: Tensor, mask: Tensor, *, total_tokens=None, total_seqs=None, norm_len=None) -> Tensor:
    """``sum(l * m) / (B * norm_len)`` (Dr. GRPO; ``norm_len`` a constant such as the max response
    length, default ``T``)."""
    seqs = total_seqs if total_seqs is not None else loss.shape[0]
    return masked_sum(loss, mask) / (seqs * (norm_len or loss.shape[1]))


def aggregate(
    loss: Tensor,
    mask: Tensor,
    mode: str,
    *,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    norm_len: float | None = None,
) -> Tensor:
    """Reduce token losses ``[B, T]`` to a scalar with the registered aggregation ``mode``.

    ``total_tokens``/``total_seqs`` let a micro-batch use the whole mini-batch's counts, so summing
    micro-batch losses gives exactly the mini-batch loss (gradient accumulation).
    """
    return LOSS_AGGS.get(mode)(
        loss, mask.to(loss.dtype), total_tokens=total_tokens, total_seqs=total_seqs, norm_len=norm_len
    )


def ppo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token_mean",
    weight: Tensor | None = None,
    **agg_kw,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate with decoupled clip range (DAPO's clip-higher).

    ``ratio = exp(logp - old_logp)``; token loss
    ``max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))``, times ``weight`` when given
    (the behaviour correction of decoupled PPO, :mod:`ovr.rl.correction`), reduced by ``agg``.
    Metrics: ``clip_frac`` (tokens where the clipped branch is active), ``approx_kl``
    (k3 estimator ``mean((r - 1) - log r)``) and the mean ratio.
    """
    log_ratio = (logp - old_logp) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    token_loss = torch.maximum(unclipped, clipped)
    if weight is not None:
        token_loss = token_loss * weight.detach()
    loss = aggregate(token_loss, mask, agg, **agg_kw)
    with torch.no_grad():
        m = mask.float()
        metrics = {
            "clip_frac": masked_mean((clipped > unclipped).float(), m),
            "approx_kl": masked_mean((ratio - 1) - log_ratio, m),
            "ratio_mean": masked_mean(ratio, m),
        }
    return loss, metrics


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip: float | None = 0.2,
    agg: str = "token_mean",
    **agg_kw,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss: ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``;
    plain ``0.5 * (V - R)^2`` when ``clip`` is None."""
    err = (values - returns) ** 2
    if clip is not None:
        v_clip = old_values + torch.clamp(values - old_values, -clip, clip)
        err_clip = (v_clip - returns) ** 2
        token = torch.maximum(err, err_clip)
        frac = masked_mean((err_clip > err).float(), mask.float()).detach()
    else:
        token, frac = err, torch.zeros(())
    return 0.5 * aggregate(token, mask, agg, **agg_kw), {"value_clip_frac": frac}


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax over the last axis: ``logsumexp(z) - sum(softmax(z) * z)``."""
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.logsumexp(logits.float(), dim=-1) - (probs * logits.float()).sum(-1)


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: Literal["k1", "k3"] = "k3") -> Tensor:
    """Per-token KL(pi || ref) estimate: ``k1 = logp - ref``; ``k3 = exp(ref - logp) - (ref - logp) - 1``."""
    diff = ref_logp - logp
    return -diff if kind == "k1" else torch.exp(diff) - diff - 1


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var(R - V) / Var(R)`` over the masked tokens (1 = perfect critic, <= 0 useless)."""
    var_r = masked_var(returns, mask)
    return 1 - masked_var(returns - values, mask) / var_r.clamp(min=1e-8)
