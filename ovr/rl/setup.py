"""Everything an RL run holds between steps, built once: :func:`setup_rl` -> :class:`RLRun`.

It finds the checkpoint to resume from, loads the actor (and the critic and the frozen reference
when the recipe needs them) with their optimiser engines, and restores the prompt cursor, RNG and
weight version. Models are built in the run's dtype on their device. A resume under DeepSpeed
downloads only this rank's partitions and the small shared files and lets the engine restore the
weights from them (no rank reads the full weights, so a node's host memory holds no model copy per
rank); each optimiser part is fetched just before its load and deleted right after, the rest once
restored. The services the run talks to (rollout replicas, reward service, weight sync) are opened
by :func:`connect` on the main rank only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ovr.config import RLConfig, RunConfig
from ovr.context import RunContext
from ovr.distributed import Dist
from ovr.rl import state as S
from ovr.schema import Sample
from ovr.store import Kind, Store

log = logging.getLogger("ovr.rl")


@dataclass
class RLRun:
    """The models, engines and bookkeeping of one RL run (every rank holds its own)."""

    cfg: RunConfig
    ctx: RunContext  # this run's id (store folder runs/<name>/<run id>), MLflow run, resolved endpoints
    rl: RLConfig  # cfg.rl (resolved from its preset when the config was loaded)
    dist: Dist
    device: str
    dtype: torch.dtype
    store: Store
    samples: list[Sample]
    processor: object
    actor: torch.nn.Module
    actor_engine: object
    critic: torch.nn.Module | None
    critic_engine: object | None
    ref: torch.nn.Module | None
    state: S.TrainState
    work: Path  # local scratch: downloaded checkpoints, checkpoint folders, the export
    resumed_from: int | None = None
    encoded: dict = field(default_factory=dict)  # sample id -> EncodedPrompt (the processor's work, cached)

    @property
    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}

    @property
    def pad_id(self) -> int:
        return self.processor.tokenizer.pad_token_id

    @property
    def image_token_id(self) -> int:
        return self.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")


@dataclass
class Services:
    """What the main rank talks to: the rollout replicas, the reward service, the weight sync."""

    rollout: object  # ovr.rollout.client.RolloutClient
    reward: object  # ovr.rewards.client.RewardClient
    sync: object  # ovr.rollout.weights.WeightSync

    def close(self) -> None:
        self.sync.close()


def _device(cfg: RunConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def _samples(cfg: RunConfig, store: Store, samples: list[Sample] | None) -> list[Sample]:
    if samples is None:
        from ovr.data.reader import load_samples

        samples = load_samples(store, cfg.data.dataset_id, "rl")
    if not samples:
        raise ValueError("no RL prompts: the dataset's rl split is empty")
    return samples


def setup_rl(cfg: RunConfig, ctx: RunContext, samples: list[Sample] | None = None, resume: str = "auto") -> RLRun:
    """Build the run: resume point (the newest checkpoint of this run, unless ``resume`` says
    ``never`` or a step), models and engines, restored state."""
    from ovr.models.attention import resolve as resolve_attention
    from ovr.models.loading import load_processor, resolve_model_path

    rl = cfg.rl
    dist = Dist.from_env(rl.dist_timeout_s, rl.wait_timeout_s, rl.wait_poll_s)
    store = Store.from_config(cfg.store)
    samples = _samples(cfg, store, samples)
    torch.manual_seed(rl.seed)
    init_path = Path(ctx.model_path) if ctx.model_path else resolve_model_path(cfg.model, cfg.store)
    work = Path(tempfile.mkdtemp(prefix="ovr-rl-"))  # removed when the run ends (run_rl)
    try:
        resume_step = S.find_resume(store, ctx.key, resume)
        restores = engine_restores_weights(rl)
        folder = _download(store, dist, ctx.key, resume_step, work, restores) if resume_step is not None else None
        device, dtype = _device(cfg), getattr(torch, cfg.model.dtype)
        load = dict(dtype=dtype, attn_implementation=resolve_attention(cfg.model.attn_implementation))
        actor_path = folder / "actor" if folder else init_path
        actor = _policy(actor_path, device, weights=folder is None or not restores, **load)
        ref = _policy(init_path, device, **load).eval() if rl.uses_reference else None
        run = RLRun(
            cfg=cfg,
            ctx=ctx,
            rl=rl,
            dist=dist,
            device=device,
            dtype=dtype,
            store=store,
            samples=samples,
            processor=load_processor(actor_path, cfg.model.max_pixels),
            actor=actor,
            actor_engine=None,
            critic=None,
            critic_engine=None,
            ref=ref,
            state=S.TrainState(cursor=S.PromptCursor(len(samples), rl.seed)),
            work=work,
            resumed_from=resume_step,
        )
        _engines(run, init_path, folder, weights=not restores)
        if folder is not None:
            _restore(run, folder)
            shutil.rmtree(folder)  # restored: what is left of the download leaves the disk
        return run
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def engine_restores_weights(rl: RLConfig) -> bool:
    """A DeepSpeed engine (ZeRO 2 or 3) restores the weights from its own checkpoint files (the
    float32 master partitions each rank saved), so a resume builds the models without reading the
    full ``actor/`` and ``critic/`` weights, which no rank then downloads."""
    return rl.zero_stage > 0


def _policy(path: Path, device: str, *, weights: bool = True, **load) -> torch.nn.Module:
    """The policy of ``path`` in the run's dtype on ``device``; ``weights=False`` builds it from the
    config alone, allocated and never initialised (its engine restores the weights)."""
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.initialization import no_init_weights

    from ovr.models.attention import attach

    if weights:
        return attach(AutoModelForImageTextToText.from_pretrained(str(path), **load)).to(device)
    with torch.device(device), no_init_weights():
        return attach(AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(str(path)), **load))


OPTIM_PARTS = ("actor_optim", "critic_optim")  # DeepSpeed's (or torch's) optimiser files of each model


def _download(store: Store, dist: Dist, run_name: str, step: int, work: Path, restores: bool) -> Path:
    """This rank's share of checkpoint ``step`` but the optimiser parts (:func:`_restore` fetches
    each when it loads it): the small shared files, and the full weights unless the engine
    ``restores`` them from its partitions; after checking that as many ranks wrote it as this run has."""
    from ovr.sharded import ranks_in
    from ovr.store import step_prefix

    prefix = step_prefix(run_name, step, Kind.RL)
    written = ranks_in(store.read_manifest(prefix))
    if written not in (None, dist.world):
        raise ValueError(
            f"checkpoint {prefix} was written by {written} ranks; resume it with {written} ranks "
            f"(this run has {dist.world}), or start a new run"
        )
    keep = _share(dist.rank, lambda p: p.split("/")[0] not in OPTIM_PARTS and not (restores and _is_weights(p)))
    return store.download(prefix, work / f"resume-{step}", keep)


def _share(rank: int, also):
    """``path -> bool``: files of this rank's share (its own partitions, the shared files) that ``also`` accepts."""
    from ovr.sharded import file_owner

    return lambda path: file_owner(path) in (None, rank) and also(path)


def _is_weights(path: str) -> bool:
    """A file of the gathered ``actor/`` or ``critic/`` weights."""
    return path.split("/")[0] in ("actor", "critic") and ".safetensors" in path


def _engines(run: RLRun, init_path, folder: Path | None, weights: bool = True) -> None:
    """The actor's engine; the critic (initialised from the policy, or resumed: in the run's dtype on
    its device; ``weights=False`` leaves it to the engine) and its engine."""
    from ovr.models.critic import Critic
    from ovr.rl.engine import make_engine

    rl, world = run.rl, run.dist.world
    run.actor_engine = make_engine(
        run.actor, lr=rl.actor_lr, rl=rl, device=run.device, world=world, vision_lr=rl.vision_lr
    )
    if not rl.uses_critic:
        return
    attn = run.cfg.model.attn_implementation  # the actor's: both run the same packed micro-batches
    critic = (
        Critic.load(folder / "critic", run.dtype, attn_implementation=attn, device=run.device, weights=weights)
        if folder
        else Critic.from_policy(
            init_path, init_range=rl.value_head_init, seed=rl.seed, dtype=run.dtype, attn_implementation=attn
        )
    )
    run.critic = critic.to(run.device)
    run.critic_engine = make_engine(run.critic, lr=rl.critic_lr, rl=rl, device=run.device, world=world)


def _restore(run: RLRun, folder: Path) -> None:
    """Optimiser states, schedule, RNG, prompt cursor and weight version of a checkpoint. Each
    model's optimiser part is downloaded (this rank's share), loaded and deleted before the next:
    the disk holds one part at a time."""
    from ovr.store import step_prefix

    prefix = step_prefix(run.ctx.key, run.resumed_from, Kind.RL)
    engines = {"actor_optim": run.actor_engine, "critic_optim": run.critic_engine}
    for part, engine in engines.items():
        if engine is None:
            continue
        run.store.download(prefix, folder, _share(run.dist.rank, lambda p, part=part: p.startswith(part + "/")))
        engine.load_optim(folder / part)
        shutil.rmtree(folder / part)
    run.state = S.load_state(folder)
    if run.state.cursor.n != len(run.samples):
        raise ValueError(f"checkpoint walked {run.state.cursor.n} prompts, this run has {len(run.samples)}")


def connect(run: RLRun) -> Services | None:
    """Open the rollout and reward clients and the weight sync (main rank; None elsewhere)."""
    if not run.dist.is_main:
        return None
    from ovr.rewards.client import RewardClient
    from ovr.rollout.client import RolloutClient
    from ovr.rollout.weights import make_weight_sync

    ro, endpoints = run.cfg.rollout, list(run.ctx.rollout_endpoints)
    if not endpoints:
        raise ValueError("no rollout endpoints: set rollout.endpoints to the replicas (or run through local_services)")
    if ro.weight_sync == "folder" and not run.ctx.weights_dir:
        # a folder only this pod sees would reach no replica (and leave a full model per push behind)
        raise ValueError(
            "rollout.weight_sync=folder needs rollout.weights_dir: the folder the replicas load pushed weights "
            "from (the chart's shared volume; local runs get one from services/local.py)"
        )
    sync = make_weight_sync(ro, endpoints, run.ctx.weights_dir)
    rollout = RolloutClient(endpoints, ro, keeper=sync)  # a restarted replica gets the current weights
    longest = max(s.max_tokens for s in run.rl.max_response_len_schedule)

    async def check():
        try:
            await rollout.check_context(longest)
        finally:
            await rollout.close()

    asyncio.run(check())
    return Services(rollout=rollout, reward=RewardClient.from_config(run.cfg.reward, run.ctx.reward_url), sync=sync)
