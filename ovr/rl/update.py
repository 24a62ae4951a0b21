"""The training half of an RL step on one rank: old log-probs/values, advantages, actor and critic updates.

A rank trains on whole prompt groups (:meth:`ovr.distributed.Dist.shard_groups`). Mini-batches are
whole groups too, picked by a seeded shuffle of the *global* group indices, so what an update sees
does not depend on the world size. Within a mini-batch a rank's rows are packed into micro-batches
by token budget (:func:`plan_micro`), each micro-batch one padding-free sequence
(:func:`ovr.rl.packed.pack_batch`). Under ZeRO-3 every rank must run as many forward/backward
passes as the others, so a rank with fewer (or no) rows runs zero-weight passes over a filler row.
Losses use the mini-batch's global token and sequence counts and are multiplied by the world size
(DeepSpeed averages gradients over ranks), so accumulation over micro-batches and ranks equals one
big batch exactly; logged metrics are sums of per-rank shares, i.e. the global values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ovr.distributed import Dist
from ovr.rl import algorithms as A
from ovr.rl.correction import behaviour_weights
from ovr.rl.experience import Experience
from ovr.rl.forward import SeqBatch, critic_values, policy_logprobs, to_device
from ovr.rl.packed import pack_batch


def pad(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows right-padded with 0 into ``[B, T]``; ``[0, 1]`` for no rows (a rank that owns no group)."""
    return pad_sequence(rows, batch_first=True, padding_value=0.0) if rows else torch.zeros((0, 1))


@dataclass
class Batcher:
    """Padding-free device batches for subsets of one rank's rows; ``[]`` is a zero-weight pass
    over ``filler``."""

    rows: list[Experience]
    pad_id: int
    image_token_id: int
    device: str
    dtype: torch.dtype
    filler: Experience | None = None  # any row of the step (a rank may own none)
    budget: int | None = None  # rl.max_tokens_per_micro
    dummy_vision: bool = False  # text-only passes still run the vision tower (ZeRO-3, several ranks)
    dist: Dist = field(default_factory=Dist)

    def __call__(self, idx: list[int]) -> SeqBatch:
        rows = [self.rows[i] for i in idx] or [self.filler or self.rows[0]]
        prompts, responses = [r.prompt for r in rows], [r.response_ids for r in rows]
        b = pack_batch(prompts, responses, self.pad_id, self.image_token_id)
        b.dummy_vision = self.dummy_vision
        return to_device(b, self.device, self.dtype)

    def lengths(self) -> list[int]:
        return [len(r.prompt.input_ids) + len(r.response_ids) for r in self.rows]

    def passes(self, idx: list[int]) -> list[list[int]]:
        """``idx`` packed into micro-batches, padded with zero-weight passes to the ranks' maximum."""
        lengths = self.lengths()
        micros = plan_micro([lengths[i] for i in idx], idx, self.budget)
        return micros + [[]] * (self.dist.max(len(micros)) - len(micros))


def plan_micro(lengths: list[int], idx: list[int], budget: int | None) -> list[list[int]]:
    """Rows ``idx`` (``lengths`` aligned) packed into micro-batches of at most ``budget`` real
    tokens (first-fit, longest row first; a longer row alone); None: one micro-batch.

    >>> plan_micro([10, 30, 20, 5], [0, 1, 2, 3], 60)
    [[1, 2, 0], [3]]
    """
    if budget is None:
        return [list(idx)] if idx else []
    out: list[list[int]] = []
    used: list[int] = []
    for length, i in sorted(zip(lengths, idx), key=lambda t: (-t[0], t[1])):
        k = next((k for k, u in enumerate(used) if u + length <= budget), None)
        if k is None:
            out.append([])
            used.append(0)
            k = len(out) - 1
        out[k].append(i)
        used[k] += length
    return out


@torch.no_grad()
def score_rows(batcher: Batcher, *, actor=None, critic=None, temperature: float = 1.0):
    """Per-row log-probs under ``actor`` and values under ``critic`` (1-D tensors, response length)."""
    n = len(batcher.rows)
    logps, values = [None] * n, [None] * n
    for idx in batcher.passes(list(range(n))):
        b = batcher(idx)
        lengths = b.response_mask.sum(-1).long().tolist()
        if actor is not None:
            lp, _ = policy_logprobs(actor, b, temperature)
            for j, i in enumerate(idx):
                logps[i] = lp[j, : lengths[j]].float().cpu()
        if critic is not None:
            v = critic_values(critic, b)
            for j, i in enumerate(idx):
                values[i] = v[j, : lengths[j]].float().cpu()
    return (logps if actor is not None else []), (values if critic is not None else [])


def advantages(
    rows: list[Experience],
    rl,
    values: list[torch.Tensor] | None,
    kl: list[torch.Tensor] | None,
    dist: Dist | None = None,
):
    """Advantages and returns per row (after the recipe's normalisation), plus the loss mask.

    ``kl``: per-token ``log pi_old - log ref`` of each row, folded into the token rewards scaled by
    ``rl.kl_reward_coef`` (the reward-side KL); None when that KL is off. Batch whitening uses the
    statistics of every rank's rows (``dist``); rows hold whole groups, so group statistics are local.
    A rank with no rows still takes part in those reductions (its sums are 0)."""
    mask = pad([torch.ones(max(1, len(r.response_ids))) * (len(r.response_ids) > 0) for r in rows])
    if rl.mask_truncated:
        mask = mask * torch.tensor([0.0 if r.truncated else 1.0 for r in rows])[:, None]
    reduce = None if dist is None or dist.world == 1 else (lambda t: torch.tensor(dist.sum(t.tolist()), dtype=t.dtype))
    inp = A.AdvantageInput(
        scores=torch.tensor([r.score for r in rows], dtype=torch.float32),
        mask=mask,
        group=torch.tensor([r.group for r in rows], dtype=torch.long),
        values=pad(values) if values is not None else None,
        kl=pad(kl) * rl.kl_reward_coef if kl is not None else None,
        gamma=rl.gamma,
        lam=rl.lam,
        reduce=reduce,
    )
    adv, ret = A.get_advantage(rl.advantage)(inp)
    adv = A.normalize_advantages(adv, mask, inp.group, rl.adv_norm, reduce=reduce)
    return adv, ret, mask


def mini_batches(groups: list[int], n_groups: int, n_mini: int, seed: int) -> list[list[int]]:
    """Local row indices of each mini-batch: the global groups ``0..n_groups-1`` shuffled with
    ``seed`` and split into ``n_mini`` parts (``groups``: the global group of each local row)."""
    order = list(range(n_groups))
    random.Random(seed).shuffle(order)
    parts = [set(p.tolist()) for p in np.array_split(order, min(n_mini, max(1, n_groups)))]
    return [[i for i, g in enumerate(groups) if g in part] for part in parts]


def _row_slice(t: torch.Tensor, idx: list[int], T: int, device) -> torch.Tensor:
    out = t[idx, :T] if idx else torch.zeros((1, T), dtype=t.dtype)
    if out.shape[1] < T:
        out = torch.nn.functional.pad(out, (0, T - out.shape[1]))
    return out.to(device)


def _totals(dist: Dist, mask: torch.Tensor, mini: list[int]) -> tuple[float, float]:
    """Loss tokens and sequences of a mini-batch over every rank."""
    tokens, seqs = dist.sum([float(mask[mini].sum()) if mini else 0.0, float(len(mini))])
    return max(tokens, 1.0), max(seqs, 1.0)


def actor_update(
    engine,
    batcher: Batcher,
    rl,
    *,
    old_logp: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None,
    temperature: float,
    norm_len: int,
    minis: list[list[int]],
    behav_logp: torch.Tensor | None = None,
) -> dict:
    """One optimiser step per mini-batch of the PPO clip loss, plus the loss-side KL
    ``rl.kl_loss_coef * k3(pi || ref)`` when ``ref_logp`` is given and the coefficient > 0.

    ``old_logp`` None: the old policy is provably the one being updated (one mini-batch; see
    ``rl.skip_old_logprobs``), so the update's own log-probs, detached, stand for it. ``behav_logp``:
    vLLM's log-prob of each token (NaN where unknown): the loss is weighted per token by
    ``rl.is_correction`` (:mod:`ovr.rl.correction`), with the weights' statistics and the
    trainer-vs-vLLM gap (``logprob_drift``) among the metrics."""
    dist = batcher.dist
    stats: dict[str, float] = {}
    seen: dict[str, float] = {}
    peak = 0.0
    norms = []
    for mini in minis:
        tokens, seqs = _totals(dist, mask, mini)
        passes = batcher.passes(mini)
        agg = dict(total_tokens=tokens, total_seqs=seqs, norm_len=norm_len)
        for k, idx in enumerate(passes):
            b = batcher(idx)
            logp, ent = policy_logprobs(
                engine.module, b, temperature, with_entropy=True, entropy_grad=rl.entropy_coef > 0
            )
            T = logp.shape[1]
            m = b.response_mask * _row_slice(mask, idx, T, logp.device) * float(bool(idx))
            old = logp.detach() if old_logp is None else _row_slice(old_logp, idx, T, logp.device)
            weight = None
            if behav_logp is not None:
                behav = _row_slice(behav_logp, idx, T, logp.device)
                weight, part = behaviour_weights(old, behav, m, rl.is_correction, rl.is_cap, rl.is_floor)
                peak = max(peak, part.pop("is_weight_max"))
                for name, v in part.items():
                    _add(seen, name, v)
            loss, met = A.ppo_policy_loss(
                logp,
                old,
                _row_slice(adv, idx, T, logp.device),
                m,
                clip_low=rl.clip_low,
                clip_high=rl.clip_high,
                agg=rl.loss_agg,
                weight=weight if rl.is_correction != "none" else None,
                **agg,
            )
            entropy = A.aggregate(ent, m, rl.loss_agg, **agg)
            if rl.entropy_coef > 0:
                loss = loss - rl.entropy_coef * entropy
            if ref_logp is not None and rl.kl_loss_coef > 0:
                kl_term = A.aggregate(
                    A.kl_penalty(logp, _row_slice(ref_logp, idx, T, logp.device)), m, rl.loss_agg, **agg
                )
                loss = loss + rl.kl_loss_coef * kl_term
                _add(stats, "kl_ref", float(kl_term.detach()))
            engine.backward(loss * dist.world, last=k == len(passes) - 1)
            w = float(m.sum()) / tokens
            _add(stats, "policy_loss", float(loss.detach()))
            _add(stats, "entropy", float(entropy.detach()))
            for name, v in met.items():
                _add(stats, name, float(v) * w)
        norms.append(engine.step())
    out = dict(zip(stats, (v / len(minis) for v in dist.sum(list(stats.values())))))
    if behav_logp is not None:
        out |= _behaviour_stats(dist, seen, peak)
    return out | {"actor_grad_norm": float(np.mean(norms))} | _rates(engine)


def _rates(engine) -> dict[str, float]:
    """``actor_lr``, and ``vision_lr`` where the vision tower has its own group (``rl.vision_lr``)."""
    lrs = engine.lrs
    return {"actor_lr": lrs[0]} | ({"vision_lr": lrs[1]} if len(lrs) > 1 else {})


def _behaviour_stats(dist: Dist, seen: dict[str, float], peak: float) -> dict[str, float]:
    """The behaviour weights' mean, max and clipped fraction, and the mean |trainer - vLLM| log-prob,
    over every rank's tokens that carry vLLM's log-prob."""
    keys = ("is_weight_sum", "is_clipped", "behaviour_gap_sum", "tokens")
    total = dict(zip(keys, dist.sum([seen.get(k, 0.0) for k in keys])))
    n = total["tokens"]
    if not n:
        return {}
    return {
        "is_weight_mean": total["is_weight_sum"] / n,
        "is_weight_max": dist.fmax([peak])[0],
        "is_clip_frac": total["is_clipped"] / n,
        "logprob_drift": total["behaviour_gap_sum"] / n,
    }


def critic_update(
    engine,
    batcher: Batcher,
    rl,
    *,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    minis: list[list[int]],
) -> dict:
    """One optimiser step per mini-batch of the clipped value loss."""
    dist = batcher.dist
    stats: dict[str, float] = {}
    norms = []
    for mini in minis:
        tokens, _ = _totals(dist, mask, mini)
        passes = batcher.passes(mini)
        for k, idx in enumerate(passes):
            b = batcher(idx)
            v = critic_values(engine.module, b)
            T = v.shape[1]
            m = b.response_mask * _row_slice(mask, idx, T, v.device) * float(bool(idx))
            loss, met = A.value_loss(
                v,
                _row_slice(old_values, idx, T, v.device),
                _row_slice(returns, idx, T, v.device),
                m,
                clip=rl.value_clip,
                agg="token_mean",
                total_tokens=tokens,
            )
            engine.backward(loss * dist.world, last=k == len(passes) - 1)
            _add(stats, "value_loss", float(loss.detach()))
            _add(stats, "value_clip_frac", float(met["value_clip_frac"]) * float(m.sum()) / tokens)
        norms.append(engine.step())
    out = dict(zip(stats, (v / len(minis) for v in dist.sum(list(stats.values())))))
    return out | {"critic_grad_norm": float(np.mean(norms)), "critic_lr": engine.lr}


def _add(stats: dict[str, float], key: str, value: float) -> None:
    stats[key] = stats.get(key, 0.0) + value
