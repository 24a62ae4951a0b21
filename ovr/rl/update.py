"""The training half of an RL step: old log-probs/values, advantages, actor and critic updates.

Rows are processed in micro-batches of ``mini_batch_size`` responses (gradient accumulation);
one optimiser step per mini-batch, the batch split into ``policy_updates`` (actor) or
``critic_updates`` (critic) mini-batches. Losses of micro-batches use the whole mini-batch's token
and sequence counts, so accumulation equals one big batch exactly.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ovr.rl import algorithms as A
from ovr.rl.experience import Experience
from ovr.rl.forward import SeqBatch, build_batch, critic_values, policy_logprobs, to_device


def pad(rows: list[torch.Tensor]) -> torch.Tensor:
    return pad_sequence(rows, batch_first=True, padding_value=0.0)


def chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


class Batcher:
    """Builds device batches for subsets of the experience rows."""

    def __init__(self, rows: list[Experience], pad_id: int, image_token_id: int, device, dtype):
        self.rows, self.pad_id, self.image_token_id, self.device, self.dtype = rows, pad_id, image_token_id, device, dtype

    def __call__(self, idx: list[int]) -> SeqBatch:
        b = build_batch([self.rows[i].prompt for i in idx], [self.rows[i].response_ids for i in idx],
                        self.pad_id, self.image_token_id)
        return to_device(b, self.device, self.dtype)


@torch.no_grad()
def score_rows(batcher: Batcher, micro: int, *, actor=None, critic=None, temperature: float = 1.0):
    """Per-row log-probs under ``actor`` and values under ``critic`` (1-D tensors, response length)."""
    logps, values = [], []
    for idx in chunks(list(range(len(batcher.rows))), micro):
        b = batcher(idx)
        lengths = b.response_mask.sum(-1).long().tolist()
        if actor is not None:
            lp, _ = policy_logprobs(actor, b, temperature)
            logps += [lp[i, :n].float().cpu() for i, n in enumerate(lengths)]
        if critic is not None:
            v = critic_values(critic, b)
            values += [v[i, :n].float().cpu() for i, n in enumerate(lengths)]
    return logps, values


def advantages(rows: list[Experience], rl, values: list[torch.Tensor] | None, kl: list[torch.Tensor] | None):
    """Advantages and returns per row (after the recipe's normalisation), plus the loss mask.

    ``kl``: per-token ``log pi_old - log ref`` of each row, folded into the token rewards scaled by
    ``rl.kl_reward_coef`` (the reward-side KL); None when that KL is off."""
    mask = pad([torch.ones(max(1, len(r.response_ids))) * (len(r.response_ids) > 0) for r in rows])
    if rl.mask_truncated:
        mask = mask * torch.tensor([0.0 if r.truncated else 1.0 for r in rows])[:, None]
    inp = A.AdvantageInput(
        scores=torch.tensor([r.score for r in rows], dtype=torch.float32),
        mask=mask,
        group=torch.tensor([r.group for r in rows]),
        values=pad(values) if values else None,
        kl=pad(kl) * rl.kl_reward_coef if kl else None,
        gamma=rl.gamma,
        lam=rl.lam,
    )
    adv, ret = A.get_advantage(rl.advantage)(inp)
    adv = A.normalize_advantages(adv, mask, inp.group, rl.adv_norm)
    return adv, ret, mask


def _row_slice(t: torch.Tensor, idx: list[int], T: int, device) -> torch.Tensor:
    out = t[idx, :T]
    if out.shape[1] < T:
        out = torch.nn.functional.pad(out, (0, T - out.shape[1]))
    return out.to(device)


def actor_update(engine, batcher: Batcher, rl, *, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                 ref_logp: torch.Tensor | None, temperature: float, norm_len: int, micro: int, seed: int) -> dict:
    """``rl.policy_updates`` optimiser steps of the PPO clip loss over shuffled mini-batches, plus the
    loss-side KL ``rl.kl_loss_coef * k3(pi || ref)`` when ``ref_logp`` is given and the coefficient > 0."""
    order = list(range(len(batcher.rows)))
    random.Random(seed).shuffle(order)
    n_mini = min(rl.policy_updates, len(order))
    stats: dict[str, list[float]] = {}
    for mini in np.array_split(order, n_mini):
        mini = mini.tolist()
        tokens = float(mask[mini].sum().clamp(min=1))
        for idx in chunks(mini, micro):
            b = batcher(idx)
            logp, ent = policy_logprobs(engine.module, b, temperature, with_entropy=True)
            T = logp.shape[1]
            m = b.response_mask * _row_slice(mask, idx, T, logp.device)
            loss, met = A.ppo_policy_loss(
                logp, _row_slice(old_logp, idx, T, logp.device), _row_slice(adv, idx, T, logp.device), m,
                clip_low=rl.clip_low, clip_high=rl.clip_high, agg=rl.loss_agg,
                total_tokens=tokens, total_seqs=len(mini), norm_len=norm_len,
            )
            entropy = A.aggregate(ent, m, rl.loss_agg, total_tokens=tokens, total_seqs=len(mini), norm_len=norm_len)
            if rl.entropy_coef > 0:
                loss = loss - rl.entropy_coef * entropy
            if ref_logp is not None and rl.kl_loss_coef > 0:
                kl = A.kl_penalty(logp, _row_slice(ref_logp, idx, T, logp.device))
                kl_term = A.aggregate(kl, m, rl.loss_agg, total_tokens=tokens, total_seqs=len(mini), norm_len=norm_len)
                loss = loss + rl.kl_loss_coef * kl_term
                stats.setdefault("kl_ref", []).append(float(kl_term.detach()) * len(idx) / len(mini))
            engine.backward(loss)
            w = float(m.sum()) / tokens
            stats.setdefault("policy_loss", []).append(float(loss.detach()))
            stats.setdefault("entropy", []).append(float(entropy.detach()))
            for k, v in met.items():
                stats.setdefault(k, []).append(float(v) * w)
        stats.setdefault("actor_grad_norm", []).append(engine.step())
    # loss/entropy pieces are already mini-batch shares; clip_frac/approx_kl token-weighted shares
    out = {k: float(np.sum(v)) / n_mini for k, v in stats.items() if k != "actor_grad_norm"}
    out["actor_grad_norm"] = float(np.mean(stats["actor_grad_norm"]))
    out["actor_lr"] = engine.lr
    return out


def critic_update(engine, batcher: Batcher, rl, *, old_values: torch.Tensor, returns: torch.Tensor,
                  mask: torch.Tensor, micro: int, seed: int) -> dict:
    """``rl.critic_updates`` optimiser steps of the clipped value loss over shuffled mini-batches."""
    order = list(range(len(batcher.rows)))
    random.Random(seed + 1).shuffle(order)
    n_mini = min(rl.critic_updates, len(order))
    losses, fracs, norms = [], [], []
    for mini in np.array_split(order, n_mini):
        mini = mini.tolist()
        tokens = float(mask[mini].sum().clamp(min=1))
        for idx in chunks(mini, micro):
            b = batcher(idx)
            v = critic_values(engine.module, b)
            T = v.shape[1]
            m = b.response_mask * _row_slice(mask, idx, T, v.device)
            loss, met = A.value_loss(v, _row_slice(old_values, idx, T, v.device), _row_slice(returns, idx, T, v.device),
                                     m, clip=rl.value_clip, agg="token_mean", total_tokens=tokens)
            engine.backward(loss)
            losses.append(float(loss.detach()))
            fracs.append(float(met["value_clip_frac"]) * float(m.sum()) / tokens)
        norms.append(engine.step())
    return {"value_loss": float(np.sum(losses)) / n_mini, "value_clip_frac": float(np.sum(fracs)) / n_mini,
            "critic_grad_norm": float(np.mean(norms)), "critic_lr": engine.lr}
