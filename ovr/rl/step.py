"""One RL step, top to bottom: sample -> score -> share -> advantages -> update -> sync.

The main rank samples and scores through the services (or, async, takes the batch its producer
generated ahead: :mod:`ovr.rl.producer`), computes the step's metrics and cuts the kept groups into
one share per rank (:mod:`ovr.rl.share`); every other rank waits polled for its own share (never a
collective for the length of a rollout) and receives only it. Each rank trains on its share in
lockstep (DeepSpeed ZeRO under ``torchrun``); the new weights are pushed to the replicas. Returns
the step's metrics.
"""

from __future__ import annotations

import time

import torch

from ovr.rl.experience import Experience, build_experience
from ovr.rl.metrics import advantage_stats, behaviour_metrics, logprob_drift, rollout_metrics, subject_rewards
from ovr.rl.sampling import Collected, collect, sampling_extra
from ovr.rl.setup import RLRun, Services
from ovr.rl.share import RowShare, StepShare, cut_step, encode_groups, share_rows, split_rows
from ovr.rl.update import Batcher, actor_update, advantages, critic_update, mini_batches, pad, score_rows
from ovr.rollout.scoring import sample_and_score_sync


def rl_step(run: RLRun, svc: Services | None, step: int, progress: bool = False, producer=None) -> dict[str, float]:
    t0 = time.perf_counter()
    max_tokens = run.rl.max_tokens_at(step)

    # 1-3. sample prompts, generate n responses each, score them (async: the producer's batch for
    #      this step), metrics (main rank); each rank receives only its share of the kept groups
    shares = None
    if svc is not None:
        extra = {}
        if producer is None:
            run.dist.announce(f"step {step}: rollout and scoring")
            got = sample_step(run, svc, max_tokens, progress)
        else:
            run.dist.announce(f"step {step}: waiting for the producer's batch")
            got, extra = producer.take(step)
        extra["rollout_wire_bytes_per_token"] = svc.rollout.wire_bytes_per_token()  # since the run started
        extra["rollout_busy_seconds"] = svc.rollout.busy_s  # since the run started: requests in flight
        shares = cut_step(run, got, step_metrics(run, got) | extra, run.dist.world)
        run.dist.announce(f"step {step}: sending shares")
    share: StepShare = run.dist.scatter(shares, f"step {step}: waiting for the main rank's rollout")
    run.state.cursor = share.cursor
    metrics = dict(share.metrics)
    rows = share_rows(run, share)

    # 4-5. advantages and updates
    t1 = time.perf_counter()
    if rows.n_groups:
        metrics |= train_share(run, rows, max_tokens, step)
    t2 = time.perf_counter()

    # 6. push the new weights to the replicas (async: the producer may then go one batch further)
    if rows.n_groups:
        push_weights(run, svc)
    if producer is not None:
        producer.done(step)
    step_s = time.perf_counter() - t0
    tokens = metrics.pop("tokens")
    if svc is not None:
        metrics["sync_pause_seconds"] = svc.sync.last_pause_s if rows.n_groups else 0.0
    return metrics | {
        "step_seconds": step_s,
        "train_seconds": t2 - t1,
        "sync_seconds": time.perf_counter() - t2,
        "tokens_per_s": tokens / max(step_s, 1e-9),
        "weight_version": run.state.weight_version,
        "max_tokens": max_tokens,
        "epoch": run.state.cursor.epoch,
        "updated": float(bool(rows.n_groups)),
    }


def step_metrics(run: RLRun, got: Collected) -> dict[str, float]:
    """Metrics of everything sampled this step (main rank), the rollout client's wire figures included."""
    encode_groups(run, got.groups)
    every = build_experience(got.groups, run.encoded, got.results)
    kept, _ = got.kept()
    tokens = sum(len(c.token_ids) for g in got.groups for c in g.completions)
    metrics = rollout_metrics(every, got.results, run.cfg.eval.reflection_words, run.state.weight_version)
    metrics |= subject_rewards(every, got.groups, run.by_id)
    metrics |= behaviour_metrics(got.groups, got.results, run.by_id)
    return metrics | {
        "groups_kept_frac": len(kept) / len(got.groups),
        "generation_rounds": got.rounds,
        "rollout_seconds": got.rollout_s,
        "reward_seconds": got.reward_s,
        "rollout_tokens_per_s": tokens / max(got.rollout_s, 1e-9),
        "tokens": tokens,
    }


def sample_step(run: RLRun, svc: Services, max_tokens: int, progress: bool) -> Collected:
    """Prompts from the cursor, sampled and scored (refilled under dynamic sampling)."""
    rl = run.rl

    def sample(batch):
        return sample_and_score_sync(
            svc.rollout,
            svc.reward,
            batch,
            n=rl.samples_per_prompt,
            max_tokens=max_tokens,
            cfg=run.cfg,
            progress=progress,
            extra=sampling_extra(run.cfg.rollout, max_tokens),
        )

    return collect(
        sample,
        run.samples,
        run.state.cursor,
        want=rl.prompts_per_step,
        dynamic=rl.dynamic_sampling,
        max_rounds=rl.max_generation_rounds,
    )


def train_on(run: RLRun, rows, max_tokens: int, step: int) -> dict[str, float]:
    """:func:`train_share` of this rank's whole groups of ``rows`` (every rank holds all of them)."""
    n_groups = max(r.group for r in rows) + 1
    costs = [0.0] * n_groups
    for r in rows:
        costs[r.group] += len(r.prompt.input_ids) + len(r.response_ids)
    return train_share(run, split_rows(rows, costs, run.dist.rank, run.dist.world), max_tokens, step)


def train_share(run: RLRun, share: RowShare, max_tokens: int, step: int) -> dict[str, float]:
    """Old log-probs (and values, reference log-probs) of this rank's groups, advantages, then the
    actor and critic updates (every rank in lockstep; see ovr/rl/update.py). A rank that owns no
    group still enters every collective (zero-weight passes, empty statistics)."""
    rl, dist, temperature = run.rl, run.dist, run.cfg.rollout.temperature
    mine, n_groups = share.mine, share.n_groups
    batcher = Batcher(
        mine,
        run.pad_id,
        run.image_token_id,
        run.device,
        run.dtype,
        filler=share.filler,
        budget=rl.max_tokens_per_micro,
        dummy_vision=rl.zero_stage == 3,
        dist=dist,
    )
    run.actor.eval()
    # the old policy is the one the update starts from: with one update its log-probs are the update's own
    old_logp = None
    if not old_logprobs_are_current(run):
        old_logp, _ = score_rows(batcher, actor=run.actor_engine.module, temperature=temperature)
    values = score_rows(batcher, critic=run.critic_engine.module)[1] if run.critic is not None else None
    ref_logp = score_rows(batcher, actor=run.ref, temperature=temperature)[0] if run.ref is not None else None
    kl = [a - b for a, b in zip(old_logp, ref_logp)] if ref_logp is not None and rl.kl_reward_coef > 0 else None
    adv, ret, mask = advantages(mine, rl, values, kl, dist)
    metrics = logprob_drift(mine, old_logp, dist) if old_logp is not None else {}
    metrics |= advantage_stats(adv, ret, mask, pad(values) if run.critic is not None else None, dist)
    metrics["old_logprobs_skipped"] = float(old_logp is None)

    run.actor.train()
    # A batch whose scores are all equal says nothing about the reward; with batch-normalised GAE
    # its advantages would be pure critic noise at unit scale, so the actor waits.
    informative = share.scores_differ or run.critic is None or not rl.skip_uniform_batches
    metrics["actor_updated"] = float(informative)
    groups = [r.group for r in mine]
    seed = rl.seed * 100003 + step
    if informative:
        minis = mini_batches(groups, n_groups, rl.policy_updates, seed)
        metrics |= actor_update(
            run.actor_engine,
            batcher,
            rl,
            old_logp=pad(old_logp) if old_logp is not None else None,
            behav_logp=behaviour_logprobs(mine),
            adv=adv,
            mask=mask,
            ref_logp=pad(ref_logp) if ref_logp is not None else None,
            temperature=temperature,
            norm_len=max_tokens,
            minis=minis,
        )
    if run.critic is not None and rl.critic_updates > 0:
        run.critic.train()
        minis = mini_batches(groups, n_groups, rl.critic_updates, seed + 1)
        metrics |= critic_update(
            run.critic_engine, batcher, rl, old_values=pad(values), returns=ret, mask=mask, minis=minis
        )
    return metrics


def old_logprobs_are_current(run: RLRun) -> bool:
    """Whether the old policy's log-probs provably equal those the actor update computes itself
    (``rl.skip_old_logprobs``): one optimiser step per generation (its single mini-batch starts
    from the policy the old log-probs would be computed with), no reward-side KL (advantages would
    need them first) and no dropout (the update runs in train mode, the old forward in eval mode)."""
    rl = run.rl
    if not rl.skip_old_logprobs or rl.policy_updates != 1 or rl.kl_reward_coef > 0:
        return False
    return not has_dropout(run.actor)


def has_dropout(model: torch.nn.Module) -> bool:
    """A dropout module or a ``*dropout*`` config value (of the model or a sub-config) above 0."""
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True

    def walk(d) -> bool:
        if isinstance(d, dict):
            return any(
                (("dropout" in str(k) and isinstance(v, (int, float)) and v > 0) or walk(v)) for k, v in d.items()
            )
        return False

    config = getattr(model, "config", None)
    return walk(config.to_dict()) if config is not None else False


def behaviour_logprobs(rows: list[Experience]) -> torch.Tensor:
    """vLLM's log-prob of every response token, ``[B, T]`` (NaN for a row that came without them)."""
    return pad(
        [
            torch.tensor(r.sampler_logprobs, dtype=torch.float32)
            if len(r.sampler_logprobs) == len(r.response_ids)
            else torch.full((len(r.response_ids),), float("nan"))
            for r in rows
        ]
    )


def push_weights(run: RLRun, svc: Services | None) -> None:
    """Make the replicas serve the actor's current weights (call on every rank: under ZeRO-3 the
    weights are gathered a layer at a time, the main rank streams or writes them, the others drain)."""
    nccl = run.cfg.rollout.weight_sync == "nccl"
    grouping = None
    if nccl:
        from ovr.rl.gathered import vllm_grouping as grouping
    weights = run.actor_engine.weights(run.actor, grouping)
    if svc is not None:
        run.state.weight_version = svc.sync.push_weights(weights)
    else:
        weights.drain()
