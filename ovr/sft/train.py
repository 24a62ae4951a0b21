"""The cold-start SFT stage: ``run_sft(cfg, ctx)`` = data -> packed rows -> Trainer (+DeepSpeed) -> export.

Built on transformers' ``Trainer``, which brings DeepSpeed ZeRO-2/3, gradient accumulation and
checkpointing, schedules with warm-up, and exact resume (optimizer, scheduler, RNG, and the data
position: on resume it skips the batches the interrupted run already consumed). ovr adds what the
Trainer has no notion of (see :mod:`ovr.sft.packing` and :mod:`ovr.sft.callbacks`): rendering of
``Sample`` conversations with assistant-only labels, packing that keeps samples isolated under
Qwen2.5-VL's M-RoPE (4-row position ids, no attention mask), a token-mean loss across
accumulation, checkpoints committed to the store, and MLflow metrics.

Launch: ``ovr sft --recipe R`` (one process: CPU, or one GPU), or ``torchrun --nproc-per-node N
-m ovr.cli sft --recipe R`` / the ``deepspeed`` launcher across GPUs and nodes.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ovr.config import RunConfig, SFTConfig
from ovr.context import RunContext
from ovr.progress import stage_note
from ovr.schema import Sample, StageResult

SCHEDULES = {"cosine": "cosine", "constant": "constant_with_warmup", "linear": "linear"}


@dataclass
class SFTResult:
    """What a finished SFT run hands to the next stage."""

    export_dir: Path | None  # save_pretrained folder + processor files (None: finished earlier, in the store only)
    export_prefix: str  # store prefix of the committed export (kind "sft-export")
    global_step: int
    losses: list[float]  # logged training loss, one per `log_every` steps
    resumed_from: int | None = None  # step of the checkpoint this run continued, if any
    rows_per_step: dict[int, list[int]] = field(default_factory=dict)  # packed rows consumed by step
    real_tokens: int = 0  # non-padding tokens trained on by this process
    train_seconds: float = 0.0  # wall time inside the training loop (this process)
    padding_efficiency: float = 0.0  # real / (real + padding) tokens over the run
    dropped_samples: int = 0  # samples longer than sft.max_seq_len
    checkpoints: list[int] = field(default_factory=list)  # steps committed to the store by this run

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.train_seconds if self.train_seconds else 0.0

    def stage_result(self) -> StageResult:
        metrics = {"final_loss": self.losses[-1]} if self.losses else {}
        return StageResult(export_prefix=self.export_prefix, global_step=self.global_step, metrics=metrics)


# --------------------------------------------------------------------------- pieces
def freeze(model, sft: SFTConfig) -> dict[str, int]:
    """Freeze the vision tower and/or projector (``model.model.visual[.merger]``); returns counts."""
    visual = model.model.visual
    for name, p in visual.named_parameters():
        is_projector = name.startswith("merger.")
        if (is_projector and sft.freeze_projector) or (not is_projector and sft.freeze_vision):
            p.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "frozen": sum(p.numel() for p in model.parameters()) - trainable}


def data_fingerprint(samples: list[Sample], sft: SFTConfig) -> str:
    """Identifies the row layout: a resumed run must see the same samples, packing and lengths."""
    h = hashlib.sha256(f"{sft.max_seq_len}|{sft.packing}|{sft.seed}".encode())
    for s in samples:
        h.update(s.id.encode() + b"\0")
    return h.hexdigest()[:16]


def training_args(cfg: RunConfig, output_dir: Path, progress: bool, world: int):
    """``TrainingArguments`` from the recipe (built before the model: ZeRO-3 partitions at load)."""
    import torch
    from transformers import TrainingArguments

    from ovr.sft.deepspeed import deepspeed_config

    sft = cfg.sft
    per_step = sft.micro_batch_size * world
    if sft.global_batch_size % per_step:
        raise ValueError(
            f"sft.global_batch_size {sft.global_batch_size} is not a multiple of "
            f"micro_batch_size x world size = {per_step}"
        )
    use_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=sft.micro_batch_size,
        gradient_accumulation_steps=sft.global_batch_size // per_step,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps or -1,
        learning_rate=sft.lr,
        lr_scheduler_type=SCHEDULES[sft.scheduler],
        warmup_steps=sft.warmup_ratio,  # a float < 1 is a share of the total steps
        weight_decay=sft.weight_decay,
        adam_beta1=sft.adam_betas[0],
        adam_beta2=sft.adam_betas[1],
        max_grad_norm=sft.grad_clip,
        bf16=cfg.model.dtype == "bfloat16" and not use_cpu,
        fp16=cfg.model.dtype == "float16" and not use_cpu,
        use_cpu=use_cpu,
        deepspeed=deepspeed_config(cfg),
        activation_checkpointing=sft.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if sft.gradient_checkpointing else None,
        logging_steps=sft.log_every,
        save_strategy="steps",
        save_steps=sft.save_every,
        save_total_limit=sft.keep_local_checkpoints,
        seed=sft.seed,
        data_seed=sft.seed,
        report_to=[],
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def resume_checkpoint(
    store, run: str, resume: str, fingerprint: str, output_dir: Path, dist
) -> tuple[str | None, int | None]:
    """The newest complete store checkpoint of the run ``run`` (``<name>/<run id>``) as
    ``output_dir/checkpoint-<step>``: each rank fetches its own partitions, the first rank of the
    folder's node the shared files (call on every rank)."""
    import os

    from ovr.sharded import download_for_rank, ranks_in
    from ovr.store import Kind, step_prefix

    if resume not in ("auto", "never"):
        raise ValueError(f"resume must be 'auto' or 'never', not {resume!r}")
    latest = store.latest(run, kind=Kind.SFT) if resume == "auto" else None
    if latest is None:
        return None, None
    if latest.metadata.get("data_fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint step {latest.step} of run {run!r} was trained on other data or packing "
            f"({latest.metadata.get('data_fingerprint')} != {fingerprint}); start a new run"
        )
    if ranks_in(latest) not in (None, dist.world):
        raise ValueError(
            f"checkpoint step {latest.step} of run {run!r} was written by {ranks_in(latest)} ranks; "
            f"resume it with that many (this run has {dist.world})"
        )
    folder = output_dir / f"checkpoint-{latest.step}"
    first_of_node = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if first_of_node and folder.exists():
        shutil.rmtree(folder)
    dist.barrier()
    download_for_rank(store, step_prefix(run, latest.step, Kind.SFT), folder, dist.rank, shared=first_of_node)
    dist.barrier()
    return str(folder), latest.step


def resave_canonical(folder: Path) -> None:
    """Rewrite a ZeRO-3 export in ``save_pretrained``'s key layout (run on rank 0 after training).

    The Trainer's ZeRO-3 save names keys ``model.model.layers.*``: transformers reads that back,
    vLLM's Qwen2.5-VL name mapping does not. Reloading (outside ZeRO-3's partitioned init, which
    would create empty placeholders) and saving writes the same layout as every other export.
    """
    from transformers import AutoModelForImageTextToText
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # training is over; the next TrainingArguments sets it again
    loaded = AutoModelForImageTextToText.from_pretrained(str(folder), dtype="auto")
    # a model loaded from a file saves back in that file's layout: copy into a fresh one
    fresh = AutoModelForImageTextToText.from_config(loaded.config, dtype=loaded.dtype)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    del loaded
    for f in folder.glob("model*.safetensors*"):
        f.unlink()
    fresh.save_pretrained(str(folder), safe_serialization=True)


# --------------------------------------------------------------------------- the stage
@dataclass
class SFTJob:
    """The pieces of a run before training starts."""

    store: object
    args: object  # TrainingArguments
    processor: object
    model: object
    encoded: list
    rows: list
    fingerprint: str
    log: dict  # counts logged at the start (samples, rows, packing efficiency, parameters)
    work: Path

    @property
    def ckpt_dir(self) -> Path:
        return self.work / "checkpoints"

    @property
    def export_dir(self) -> Path:
        return self.work / "export"


def prepare(cfg: RunConfig, ctx: RunContext, samples: list[Sample] | None, progress: bool) -> SFTJob:
    """World, store and scratch folders; model + processor (vision frozen); samples -> packed rows."""
    import torch
    from transformers import AutoModelForImageTextToText

    from ovr.models.attention import attach, resolve
    from ovr.models.loading import load_processor, resolve_model_path
    from ovr.sft.deepspeed import ensure_single_process_env, world_size
    from ovr.sft.encode import encode_all
    from ovr.sft.packing import pack_rows, padding_efficiency, single_rows
    from ovr.store import Store

    sft = cfg.sft
    if sft.zero_stage:
        ensure_single_process_env()
    store = Store.from_config(cfg.store)
    work = Path(sft.work_dir) / ctx.key / "sft"
    args = training_args(cfg, work / "checkpoints", progress, world_size())  # before the model: ZeRO-3 init
    if sft.zero_stage:
        # The Trainer's arguments set up torch.distributed but not DeepSpeed's communicator, and
        # without it DeepSpeed sizes its batches for one rank (seen at 2 ranks: 4 != 2 * 1 * 1).
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    model_dir = Path(ctx.model_path) if ctx.model_path else resolve_model_path(cfg.model, cfg.store)
    processor = load_processor(model_dir, cfg.model.max_pixels)
    model = AutoModelForImageTextToText.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation=resolve(cfg.model.attn_implementation)
    )
    attach(model)  # the vision tower on the same attention
    model.config.use_cache = False
    counts = freeze(model, sft)
    if sft.mlp_tile_tokens:
        from ovr.models.tiling import tile_mlps

        tile_mlps(model, sft.mlp_tile_tokens)
    if samples is None:
        from ovr.data.reader import load_samples

        samples = load_samples(store, cfg.data.dataset_id, "sft")
    if not samples:
        raise ValueError("no SFT samples to train on")
    encoded, dropped = encode_all(processor, samples, sft.max_seq_len, model.model.get_rope_index, progress)
    if not encoded:
        raise ValueError(f"all {len(samples)} samples are longer than sft.max_seq_len={sft.max_seq_len}")
    lengths = [len(e) for e in encoded]
    rows = pack_rows(lengths, sft.max_seq_len) if sft.packing else single_rows(len(encoded))
    log = {
        "samples": len(encoded),
        "dropped_samples": dropped,
        "rows": len(rows),
        "pack_efficiency": padding_efficiency(lengths, rows, sft.max_seq_len),
        "trainable_params": counts["trainable"],
        "frozen_params": counts["frozen"],
    }
    return SFTJob(store, args, processor, model, encoded, rows, data_fingerprint(samples, sft), log, work)


def export(cfg: RunConfig, ctx: RunContext, job: SFTJob, trainer, final: dict) -> str:
    """Save the trained model + processor (one gathered state dict under ZeRO-3) and commit it."""
    from ovr.store import Kind, export_prefix

    step, rank0 = trainer.state.global_step, trainer.is_world_process_zero()
    if job.export_dir.exists() and rank0:
        shutil.rmtree(job.export_dir)
    trainer.save_model(str(job.export_dir))  # collective under ZeRO-3
    if rank0:
        if cfg.sft.zero_stage == 3:
            resave_canonical(job.export_dir)
        job.processor.save_pretrained(str(job.export_dir))
        job.store.commit_checkpoint(
            ctx.key,
            step,
            job.export_dir,
            kind=Kind.SFT_EXPORT,
            metadata={"data_fingerprint": job.fingerprint, "metrics": {**final, "global_step": step}},
        )
    return export_prefix(ctx.key, "sft", step)


def run_sft(
    cfg: RunConfig,
    ctx: RunContext,
    *,
    samples: list[Sample] | None = None,
    resume: str = "auto",
    progress: bool = True,
    callbacks: list | None = None,
) -> SFTResult:
    """Train ``cfg.model`` (or ``ctx.model_path``) on the SFT split (or ``samples``) as the run ``ctx``;
    commit checkpoints and the export under the run's folder. The run continues from its newest
    checkpoint; a run that already exported does nothing more (and says so)."""
    finished = finished_export(cfg, ctx)
    if finished is not None:
        return finished
    from ovr.distributed import Dist
    from ovr.sft.callbacks import (
        AlreadyFinished,
        MetricsCallback,
        PackedTrainer,
        StageProgressCallback,
        StopAtMaxSteps,
        StoreCheckpointCallback,
    )
    from ovr.sft.loss import step_loss
    from ovr.sft.packing import PackedCollator, RowDataset
    from ovr.tracking import Tracker

    # 1. model, data rows, trainer, resume point
    job = prepare(cfg, ctx, samples, progress)
    trainer = PackedTrainer(
        model=job.model,
        args=job.args,
        train_dataset=RowDataset(job.rows),
        data_collator=PackedCollator(job.encoded, job.rows, job.processor.tokenizer.pad_token_id),
        compute_loss_func=step_loss,
    )
    rank0 = trainer.is_world_process_zero()
    dist = Dist.from_env()  # the launcher's group is up (the Trainer set it up); adds the CPU group
    ckpt, resumed_from = resume_checkpoint(job.store, ctx.key, resume, job.fingerprint, job.ckpt_dir, dist)
    if resumed_from is not None:
        stage_note("sft", f"resumed run {ctx.run_id} from its checkpoint at step {resumed_from}")

    # 2. train (the Trainer resumes optimizer, schedule, RNG and data position from `ckpt`)
    with Tracker.open(cfg, "sft", ctx) if rank0 else Tracker(cfg, "sft", None, None) as tracker:
        metrics = MetricsCallback(trainer, tracker)
        meta = {"data_fingerprint": job.fingerprint, "rows": len(job.rows)}
        saver = StoreCheckpointCallback(job.store, ctx.key, meta, dist, keep_local=cfg.sft.keep_local_checkpoints)
        for cb in [metrics, saver, StageProgressCallback(echo=not progress), StopAtMaxSteps(), *(callbacks or [])]:
            trainer.add_callback(cb)
        tracker.log_metrics(job.log, step=resumed_from or 0)
        if job.args.deepspeed:
            import json

            tracker.log_text(
                json.dumps(job.args.hf_deepspeed_config.config, indent=1, default=str), "sft/deepspeed.json"
            )
        try:
            trainer.train(resume_from_checkpoint=ckpt)
        except AlreadyFinished:  # resumed at max_steps (killed before the export): export as it is
            stage_note("sft", f"run {ctx.run_id} had trained all {trainer.state.global_step} steps: exporting it")

        # 3. export: weights + processor, committed to the store
        final = {"final_loss": metrics.losses[-1]} if metrics.losses else {}
        prefix = export(cfg, ctx, job, trainer, final)
        tracker.log_metrics({"final_step": trainer.state.global_step}, step=trainer.state.global_step)
    return SFTResult(
        export_dir=job.export_dir,
        export_prefix=prefix,
        global_step=trainer.state.global_step,
        losses=metrics.losses,
        resumed_from=resumed_from,
        rows_per_step=trainer.row_log,
        real_tokens=trainer.real_tokens,
        train_seconds=metrics.train_seconds,
        padding_efficiency=trainer.real_tokens / trainer.padded_tokens if trainer.padded_tokens else 0.0,
        dropped_samples=job.log["dropped_samples"],
        checkpoints=saver.committed,
    )


def finished_export(cfg: RunConfig, ctx: RunContext) -> SFTResult | None:
    """The result of a run that already exported its cold-start model (said on the console), else None."""
    from ovr.store import Kind, Store, export_prefix

    store = Store.from_config(cfg.store)
    done = store.latest(ctx.key, Kind.SFT_EXPORT)
    if done is None or (cfg.sft.max_steps is not None and done.step < cfg.sft.max_steps):
        return None
    prefix = export_prefix(ctx.key, "sft", done.step)
    stage_note("sft", f"run {ctx.run_id} finished earlier (step {done.step}): nothing to do, its model is {prefix}")
    metrics = done.metadata.get("metrics") or {}
    losses = [float(metrics["final_loss"])] if "final_loss" in metrics else []
    return SFTResult(export_dir=None, export_prefix=prefix, global_step=done.step, losses=losses)
