"""Off-policy correction: the behaviour policy's per-token weight in the PPO loss.

Under async RL (``rl.max_staleness`` > 0) a response was sampled by vLLM with weights up to k
versions older than the ones being updated, and even on-policy vLLM's kernels differ slightly from
the trainer's. The loss is AReaL's decoupled PPO (Fu et al. 2025, arXiv:2505.24298): the clipped
surrogate keeps its trust region around the *proximal* policy ``pi_old`` (the trainer's log-probs
before the update) and each token is weighted by the behaviour ratio
``w = pi_old(y_t) / pi_behav(y_t)`` (``pi_behav``: the log-probs vLLM returned with the token), made
safe in one of two ways:

- ``tis``: ``min(w, cap)`` (truncated importance sampling, Yao et al. 2025; verl's ``rollout_is``,
  AReaL's ``behav_imp_weight_cap``);
- ``icepop``: ``w`` where ``floor <= w <= cap``, else 0 (the token leaves the gradient; IcePop).

The weight is a constant of the loss (no gradient flows through it). On-policy with identical
numerics ``w = 1`` exactly and the loss is plain PPO's.

>>> import torch
>>> w, _ = behaviour_weights(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, -2.0]]), torch.ones(1, 2), "tis", 2.0, 0.5)
>>> w.tolist()
[[1.0, 2.0]]
"""

from __future__ import annotations

import torch
from torch import Tensor


def behaviour_weights(
    old_logp: Tensor, behav_logp: Tensor, mask: Tensor, mode: str, cap: float, floor: float
) -> tuple[Tensor, dict[str, float]]:
    """Per-token weights ``[B, T]`` (1 where ``mode`` is ``none`` or vLLM's log-prob is unknown: NaN)
    and their sums over the ``mask`` tokens that have one: ``is_weight_sum``, ``is_weight_max``,
    ``is_clipped`` (tokens truncated or masked), ``behaviour_gap_sum`` (|log pi_old - log pi_behav|)
    and ``tokens``: sums, so micro-batches and ranks add up before dividing."""
    known = ~torch.isnan(behav_logp)
    m = mask.bool() & known
    log_w = torch.where(known, old_logp.detach().float() - behav_logp.float(), torch.zeros_like(behav_logp.float()))
    raw = torch.exp(log_w.clamp(max=30.0))
    if mode == "none":
        w, clipped = torch.ones_like(raw), torch.zeros_like(m)
    elif mode == "tis":
        w, clipped = raw.clamp(max=cap), raw > cap
    elif mode == "icepop":
        keep = (raw >= floor) & (raw <= cap)
        w, clipped = torch.where(keep, raw, torch.zeros_like(raw)), ~keep
    else:
        raise ValueError(f"unknown behaviour correction {mode!r}: none, tis or icepop")
    w = torch.where(known, w, torch.ones_like(w))
    stats = {
        "is_weight_sum": float(w[m].sum()),
        "is_weight_max": float(raw[m].max()) if m.any() else 0.0,
        "is_clipped": float((clipped & m).sum()),
        "behaviour_gap_sum": float(log_w.abs()[m].sum()),
        "tokens": float(m.sum()),
    }
    return w.to(old_logp.dtype), stats
