"""The RL loop: prompts -> rollout -> reward -> dynamic sampling -> old log-probs/values ->
advantages -> updates -> push weights -> metrics -> checkpoint.

Runs as one process on CPU (tests, the local demo) or as ``torchrun`` ranks with DeepSpeed ZeRO on
GPUs: rank 0 talks to the rollout and reward services and broadcasts the scored experience; every
rank trains on its share of the rows in lockstep; rank 0 pushes the gathered weights.

>>> result = run_rl(cfg, rollout_endpoints=[vllm.url], reward_url=reward.url, weights_dir=tmp)  # doctest: +SKIP
>>> result.history[-1]["reward_mean"]                                                           # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ovr.config import RunConfig
from ovr.rl import state as S
from ovr.rl.distributed import Dist
from ovr.rl.experience import build_experience, dynamic_filter, rollout_metrics, score_items, subject_rewards
from ovr.rl.forward import encode_prompt
from ovr.rl.presets import resolve, uses_critic
from ovr.rl.update import Batcher, actor_update, advantages, critic_update, pad, score_rows
from ovr.schema import Sample
from ovr.store import step_prefix

log = logging.getLogger("ovr.rl")


@dataclass
class RLResult:
    """What an RL run leaves behind."""

    export_dir: Path | None  # the final policy (uniform average of the last checkpoints); None if not finished
    export_prefix: str | None  # its store prefix (kind "rl-export")
    global_step: int  # steps done so far (== rl.max_steps when finished)
    history: list[dict] = field(default_factory=list)  # per-step metrics of this invocation
    final_metrics: dict = field(default_factory=dict)  # the last step's metrics
    checkpoint_steps: list[int] = field(default_factory=list)
    resumed_from: int | None = None
    run_id: str | None = None


def _device(cfg: RunConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def _load_samples(cfg: RunConfig, store, samples: list[Sample] | None) -> list[Sample]:
    if samples is None:
        from ovr.data.reader import load_samples

        samples = load_samples(store, cfg.data.name, "rl")
    if not samples:
        raise ValueError("no RL prompts: the dataset's rl split is empty")
    return samples


def run_rl(
    cfg: RunConfig,
    *,
    rollout_endpoints: list[str],
    reward_url: str,
    weights_dir: Path,
    samples: list[Sample] | None = None,
    resume: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> RLResult:
    """Train ``cfg.model.path`` with RL; ``stop_after`` ends this invocation after that many steps
    (a simulated interruption for resume tests; the run itself still ends at ``rl.max_steps``)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ovr.models.critic import Critic
    from ovr.models.loading import resolve_model_path
    from ovr.rewards.client import RewardClient
    from ovr.rl.engine import make_engine
    from ovr.rollout.client import RolloutClient
    from ovr.rollout.weights import make_weight_sync
    from ovr.store import Store
    from ovr.tracking import Tracker

    # ------------------------------------------------------------------ setup
    rl = resolve(cfg.rl)
    dist = Dist.from_env()
    device = _device(cfg)
    dtype = getattr(torch, cfg.model.dtype)
    endpoints = cfg.rollout.endpoints or rollout_endpoints
    reward_url = cfg.reward.url or reward_url
    store = Store.from_config(cfg.store)
    samples = _load_samples(cfg, store, samples)
    by_id = {s.id: s for s in samples}
    torch.manual_seed(rl.seed)
    model_path = init_path = resolve_model_path(cfg.model, cfg.store)

    start_step, resumed_folder = 0, None
    resume_step = S.find_resume(store, cfg.name, resume)
    work = Path(tempfile.mkdtemp(prefix="ovr-rl-"))
    if resume_step is not None:
        resumed_folder = store.download_checkpoint(cfg.name, resume_step, work / f"resume-{resume_step}", S.CHECKPOINT_KIND)
        model_path = resumed_folder / "actor"
    processor = AutoProcessor.from_pretrained(str(model_path))
    actor = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=dtype,
                                                        attn_implementation=cfg.model.attn_implementation).to(device)
    micro = rl.mini_batch_size or rl.prompts_per_step * rl.samples_per_prompt
    actor_engine = make_engine(actor, lr=rl.actor_lr, rl=rl, micro_batch=micro, device=device)
    critic = critic_engine = None
    if uses_critic(rl):
        critic = (Critic.load(resumed_folder / "critic", dtype) if resumed_folder else
                  Critic.from_policy(model_path, init_range=rl.value_head_init, seed=rl.seed, dtype=dtype)).to(device)
        critic_engine = make_engine(critic, lr=rl.critic_lr, rl=rl, micro_batch=micro, device=device)
    ref = None
    if rl.kl_coef > 0:
        ref = AutoModelForImageTextToText.from_pretrained(str(init_path), dtype=dtype).to(device).eval()
    state = S.TrainState(cursor=S.PromptCursor(len(samples), rl.seed))
    if resumed_folder is not None:
        actor_engine.load_optim(resumed_folder / "actor_optim")
        if critic_engine is not None:
            critic_engine.load_optim(resumed_folder / "critic_optim")
        state = S.load_state(resumed_folder)
        if state.cursor.n != len(samples):
            raise ValueError(f"checkpoint walked {state.cursor.n} prompts, this run has {len(samples)}")
        start_step = state.step
    pad_id = processor.tokenizer.pad_token_id
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    encoded: dict[str, object] = {}

    sync = rollout = reward = None
    if dist.is_main:
        sync = make_weight_sync(cfg.rollout, endpoints, weights_dir)
        rollout = RolloutClient(endpoints, cfg.rollout)
        reward = RewardClient(reward_url, token=os.environ.get(cfg.reward.token_env))
        if resumed_folder is not None or sync.version != state.weight_version:
            sync.push_weights(actor)  # the servers must sample from the resumed policy
        state.weight_version = sync.version

    result = RLResult(export_dir=None, export_prefix=None, global_step=start_step, resumed_from=resume_step)
    last_step = rl.max_steps if stop_after is None else min(rl.max_steps, start_step + stop_after)
    if state.mlflow_run_id and not cfg.tracking.run_id:  # continue the interrupted run's curves
        cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"run_id": state.mlflow_run_id})})
    tracker = Tracker.open(cfg, "rl") if dist.is_main else None
    result.run_id = state.mlflow_run_id = tracker.run_id if tracker else None
    try:
        for step in range(start_step, last_step):
            t0 = time.perf_counter()
            max_tokens = rl.max_tokens_at(step)
            batch_ids = [samples[i].id for i in state.cursor.take(rl.prompts_per_step)]

            # -------------------------------------------------- rollout + reward (rank 0)
            payload = None
            if dist.is_main:
                batch = [by_id[i] for i in batch_ids]
                groups = asyncio.run(_generate(rollout, batch, rl.samples_per_prompt, max_tokens, progress))
                t_rollout = time.perf_counter() - t0
                items = score_items(groups, by_id, cfg.reward.name, max_tokens)
                results = reward.score_sync(items)
                t_reward = time.perf_counter() - t0 - t_rollout
                payload = (groups, results, t_rollout, t_reward)
            groups, results, t_rollout, t_reward = dist.broadcast(payload)
            t1 = time.perf_counter()
            for g in groups:
                if g.sample_id not in encoded:
                    encoded[g.sample_id] = encode_prompt(processor, by_id[g.sample_id], g.prompt_token_ids)
            rows = build_experience(groups, encoded, results, rl.truncated_reward)
            metrics = rollout_metrics(rows, results, cfg.eval.reflection_words, state.weight_version)
            metrics |= subject_rewards(rows, groups, by_id)
            kept_groups = len(groups)
            if rl.dynamic_sampling:
                rows, kept_groups, _ = dynamic_filter(rows)
            metrics["groups_kept_frac"] = kept_groups / len(groups)

            # -------------------------------------------------- old log-probs, values, advantages
            if rows:
                shard = dist.shard_indices(len(rows))
                mine = [rows[i] for i in shard]
                batcher = Batcher(mine, pad_id, image_token_id, device, dtype)
                actor.eval()
                old_logp, _ = score_rows(batcher, micro, actor=actor_engine.module, temperature=cfg.rollout.temperature)
                values = score_rows(batcher, micro, critic=critic_engine.module)[1] if critic is not None else None
                ref_logp = score_rows(batcher, micro, actor=ref)[0] if ref is not None else None
                kl = [a - b for a, b in zip(old_logp, ref_logp)] if ref_logp is not None else None
                if critic is None and kl is None:  # group baselines need every row, not one rank's share
                    adv, ret, mask = (t[shard] for t in advantages(rows, rl, None, None, rl.mask_truncated))
                else:
                    adv, ret, mask = advantages(mine, rl, values, kl, rl.mask_truncated)
                metrics |= _logprob_drift(mine, old_logp)
                metrics |= _adv_stats(adv, ret, mask, values)

                # ---------------------------------------------- updates
                actor.train()
                norm_len = max_tokens
                # A batch whose scores are all equal says nothing about the reward; with batch-normalised
                # GAE its advantages would be pure critic noise at unit scale, so the actor waits.
                informative = len({r.score for r in rows}) > 1 or critic is None or not rl.skip_uniform_batches
                metrics["actor_updated"] = float(informative)
                if informative:
                    metrics |= actor_update(actor_engine, batcher, rl, old_logp=pad(old_logp), adv=adv, mask=mask,
                                            ref_logp=pad(ref_logp) if ref_logp else None,
                                            temperature=cfg.rollout.temperature, norm_len=norm_len, micro=micro,
                                            seed=rl.seed * 100003 + step)
                if critic is not None and rl.critic_updates > 0:
                    critic.train()
                    metrics |= critic_update(critic_engine, batcher, rl, old_values=pad(values), returns=ret,
                                             mask=mask, micro=micro, seed=rl.seed * 100003 + step)
            t_train = time.perf_counter() - t1

            # -------------------------------------------------- push weights
            t2 = time.perf_counter()
            full = actor_engine.full_state_dict() if rl.zero_stage == 3 and rows else None
            if dist.is_main and rows:
                state.weight_version = sync.push_weights(actor if full is None else _Gathered(actor, full))
            t_sync = time.perf_counter() - t2
            state.step = step + 1

            # -------------------------------------------------- metrics
            tokens = sum(len(g.completions[i].token_ids) for g in groups for i in range(len(g.completions)))
            step_s = time.perf_counter() - t0
            metrics |= {
                "step_seconds": step_s, "rollout_seconds": t_rollout, "reward_seconds": t_reward,
                "train_seconds": t_train, "sync_seconds": t_sync, "rollout_tokens_per_s": tokens / max(t_rollout, 1e-9),
                "tokens_per_s": tokens / max(step_s, 1e-9), "weight_version": state.weight_version,
                "max_tokens": max_tokens, "epoch": state.cursor.epoch, "updated": float(bool(rows)),
            }
            metrics = {k: float(v) for k, v in metrics.items()}
            result.history.append({"step": step, **metrics})
            if tracker is not None:
                tracker.log_metrics(metrics, step=step)
            if progress and dist.is_main:
                print(_progress_line(step, rl.max_steps, metrics), flush=True)

            # -------------------------------------------------- checkpoint
            if state.step % rl.save_every == 0 or state.step == rl.max_steps:
                _checkpoint(cfg, store, work, state, actor, processor, actor_engine, critic, critic_engine, dist,
                            metrics)
                result.checkpoint_steps.append(state.step)
        result.global_step = state.step
        result.final_metrics = result.history[-1] if result.history else {}

        # ------------------------------------------------------------------ final model
        if dist.is_main and state.step == rl.max_steps:
            result.export_dir, result.export_prefix = _export(cfg, store, work, rl.average_last, state.step)
            if tracker is not None:
                tracker.log_text(str(result.export_dir), "rl/export_dir.txt")
    except BaseException:
        if tracker is not None:
            tracker.close("FAILED")
            tracker = None
        raise
    finally:
        if tracker is not None:
            tracker.close()
        if sync is not None:
            sync.close()
    return result


class _Gathered:
    """The actor seen with its gathered ZeRO-3 weights (what a folder weight push saves)."""

    def __init__(self, model, state_dict):
        self._model, self._state = model, state_dict

    def save_pretrained(self, path, **kw):
        return self._model.save_pretrained(path, state_dict=self._state, **kw)

    def __getattr__(self, name):
        return getattr(self._model, name)


async def _generate(client, batch, n, max_tokens, progress):
    try:
        return await client.generate(batch, n=n, max_tokens=max_tokens, progress=progress)
    finally:
        await client.close()


def _logprob_drift(rows, old_logp) -> dict:
    """Mean |trainer - sampler| log-prob per token: ~0 when both sides see the same tokens and weights."""
    diffs = [(lp - torch.tensor(r.sampler_logprobs[: len(lp)])).abs() for r, lp in zip(rows, old_logp)
             if r.sampler_logprobs and len(r.sampler_logprobs) == len(lp)]
    if not diffs:
        return {}
    return {"logprob_drift": float(torch.cat(diffs).mean())}


def _adv_stats(adv, ret, mask, values) -> dict:
    from ovr.rl.algorithms import explained_variance, masked_mean

    m = mask.bool()
    a = adv[m]
    out = {"adv_mean": float(a.mean()), "adv_std": float(a.std()) if a.numel() > 1 else 0.0,
           "adv_min": float(a.min()), "adv_max": float(a.max()), "return_mean": float(masked_mean(ret, mask))}
    if values:
        v = pad(values)
        out["value_mean"] = float(masked_mean(v, mask))
        out["explained_variance"] = float(explained_variance(v, ret, mask))
    return out


def _progress_line(step: int, total: int, m: dict) -> str:
    return (f"rl step {step + 1}/{total}  reward {m['reward_mean']:.3f}  acc {m['accuracy']:.3f}  "
            f"len {m['response_len_mean']:.1f}  drift {m.get('logprob_drift', 0):.4f}  "
            f"rollout {m['rollout_seconds']:.1f}s reward {m['reward_seconds']:.1f}s train {m['train_seconds']:.1f}s "
            f"sync {m['sync_seconds']:.1f}s")


def _checkpoint(cfg, store, work, state, actor, processor, actor_engine, critic, critic_engine, dist, metrics):
    folder = work / f"ckpt-{state.step:08d}"
    S.save_checkpoint(folder, actor=actor, processor=processor, actor_engine=actor_engine, critic=critic,
                      critic_engine=critic_engine, state=state, is_main=dist.is_main)
    if dist.is_main:
        S.commit(store, cfg.name, state.step, folder, cfg.rl.keep_checkpoints, metrics)
    dist.barrier()


def _export(cfg, store, work, average_last: int, step: int) -> tuple[Path, str]:
    """The final policy: the uniform average of the last ``average_last`` checkpoints."""
    from ovr.rl.averaging import average_models

    done = store.checkpoints(cfg.name, S.CHECKPOINT_KIND)[-average_last:]
    folders = []
    for m in done:
        local = work / f"avg-{m.step:08d}"
        if not local.exists():
            store.download_checkpoint(cfg.name, m.step, local, S.CHECKPOINT_KIND)
        folders.append(local / "actor")
    out = average_models(folders, work / "export")
    metrics = done[-1].metadata.get("metrics", {}) if done else {}
    store.commit_checkpoint(cfg.name, step, out, kind=S.EXPORT_KIND,
                            metadata={"averaged_steps": [m.step for m in done], "metrics": metrics})
    return out, step_prefix(cfg.name, step, S.EXPORT_KIND)
