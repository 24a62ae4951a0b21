"""The Trainer subclass and callbacks that tie SFT to ovr: packed batches, metrics, store checkpoints.

* :class:`PackedTrainer` unpacks ovr's batch layout (see :mod:`ovr.sft.packing`), records which rows
  each optimizer step consumed and counts real vs padded tokens; its forward hands the loss the LM
  head's input instead of full logits (:func:`ovr.models.lm_head.capture_head_input`).
* :class:`MetricsCallback` sends loss, lr, grad-norm, tokens/s and padding efficiency to MLflow.
* :class:`StageProgressCallback` reports each optimizer step (loss, rate, ETA) through
  :class:`ovr.progress.StageProgress`: to the local run's progress file, or as a periodic log line.
* :class:`StoreCheckpointCallback` commits every checkpoint folder the Trainer writes (weights in
  safetensors or DeepSpeed shards, optimizer, scheduler, RNG, trainer state = data position) to the
  store, manifest last, so ``--resume auto`` can pick up the newest complete one anywhere.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

from ovr.models.lm_head import capture_head_input
from ovr.store import Kind, Store
from ovr.tracking import Tracker

OVR_STATE = "ovr_sft_state.json"


class PackedTrainer(Trainer):
    """``Trainer`` fed by :class:`ovr.sft.packing.PackedCollator` batches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_log: dict[int, list[int]] = {}
        self.real_tokens = 0
        self.padded_tokens = 0

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Reload weights through ``from_pretrained`` (non-DeepSpeed resume).

        transformers writes Qwen2.5-VL in its original key layout (``visual.*``, ``model.layers.*``)
        and converts keys only inside ``from_pretrained``; the Trainer's plain ``load_state_dict``
        would match no key at all and silently keep the initial weights.
        """
        model = model or self.model
        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        step = self.state.global_step + 1
        self.row_log.setdefault(step, []).extend(inputs.pop("row_ids").tolist())
        self.real_tokens += int(inputs.pop("real_tokens"))
        self.padded_tokens += inputs["input_ids"].numel()
        inputs["position_ids"] = inputs["position_ids"].permute(1, 0, 2)  # (B, 4, L) -> (4, B, L)
        inputs["use_cache"] = False
        # the forward goes through the wrapper (DeepSpeed/DDP hooks run); the loss reads outputs["head_input"]
        with capture_head_input(self.model, wrapper=model):
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )


class MetricsCallback(TrainerCallback):
    """Trainer logs + throughput -> MLflow (``sft/...``) and ``losses`` for the caller."""

    def __init__(self, trainer: PackedTrainer, tracker: Tracker):
        self.trainer = trainer
        self.tracker = tracker
        self.losses: list[float] = []
        self.train_seconds = 0.0
        self._t = None
        self._tokens = 0
        self._padded = 0

    def on_train_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()
        self._tokens, self._padded = self.trainer.real_tokens, self.trainer.padded_tokens

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" not in logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        dt = max(now - self._t, 1e-9)
        real = self.trainer.real_tokens - self._tokens
        padded = self.trainer.padded_tokens - self._padded
        self.train_seconds += dt
        self._t, self._tokens, self._padded = now, self.trainer.real_tokens, self.trainer.padded_tokens
        self.losses.append(float(logs["loss"]))
        metrics = {
            "loss": logs["loss"],
            "lr": logs.get("learning_rate", float("nan")),
            "grad_norm": logs.get("grad_norm", float("nan")),
            "epoch": logs.get("epoch", float("nan")),
            # per rank: multiply by the world size for the job's total
            "tokens_per_s": real / dt,
            "padding_efficiency": real / padded if padded else 0.0,
        }
        self.tracker.log_metrics(metrics, step=state.global_step)


class StageProgressCallback(TrainerCallback):
    """Step, loss, rate and ETA of the run (``echo=False``: no plain line, a tqdm bar shows it)."""

    def __init__(self, echo: bool = True, every_s: float = 30.0):
        self.echo, self.every_s = echo, every_s
        self.progress = None
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kw):
        from ovr.progress import StageProgress

        self.progress = StageProgress(
            "sft", state.max_steps, start=state.global_step, echo=self.echo, every_s=self.every_s
        )

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            self._report(state)

    def on_step_end(self, args, state, control, **kw):
        if not control.should_log:  # a logging step reports from on_log, with this step's loss
            self._report(state)

    def _report(self, state) -> None:
        if self.progress is not None:
            self.progress.update(state.global_step, {} if self.loss is None else {"loss": self.loss})


class StoreCheckpointCallback(TrainerCallback):
    """Commit ``checkpoint-<step>`` folders to the store as kind ``sft``: every rank uploads the
    files it owns (its DeepSpeed partitions and RNG state), the main rank writes the manifest after
    all of them (:mod:`ovr.sharded`), so ``output_dir`` need not be shared between nodes. Then every
    rank deletes its own files of the folders beyond the newest ``keep_local`` (the Trainer's
    ``save_total_limit`` rotates on the main process only: a node without it kept every partition
    its ranks wrote), and the first rank of each node removes what is left of them."""

    def __init__(self, store: Store, run: str, metadata: dict, dist, keep_local: int = 2):
        self.store = store
        self.run = run
        self.metadata = metadata
        self.dist = dist
        self.keep_local = keep_local
        self.committed: list[int] = []

    def on_save(self, args, state, control, **kw):
        from ovr.sharded import commit_sharded
        from ovr.store import step_prefix

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero:
            (folder / OVR_STATE).write_text(json.dumps({**self.metadata, "global_step": state.global_step}))
        self.dist.barrier()  # every rank's files are on disk
        commit_sharded(
            self.store,
            self.dist,
            step_prefix(self.run, state.global_step, Kind.SFT),
            folder,
            run=self.run,
            step=state.global_step,
            kind=Kind.SFT,
            metadata={**self.metadata, "epoch": state.epoch},
        )
        self.committed.append(state.global_step)
        self.prune(Path(args.output_dir))

    def prune(self, output_dir: Path) -> list[Path]:
        """Local checkpoint folders beyond the newest ``keep_local`` leave this node (call on every
        rank); returns the folders this rank pruned."""
        import shutil

        from ovr.sharded import delete_own_files

        def step(folder: Path) -> int:
            tail = folder.name.removeprefix("checkpoint-")
            return int(tail) if tail.isdigit() else -1

        folders = sorted((p for p in output_dir.glob("checkpoint-*") if step(p) >= 0), key=step)
        old = folders[: -self.keep_local]
        for folder in old:
            delete_own_files(folder, self.dist.rank)
        self.dist.barrier()  # every rank's own files are gone
        if self.dist.local_rank == 0:
            for folder in old:
                shutil.rmtree(folder, ignore_errors=True)
        return old


class AlreadyFinished(Exception):
    """Raised by :class:`StopAtMaxSteps` instead of the step the Trainer would take past ``max_steps``."""


class StopAtMaxSteps(TrainerCallback):
    """A run resumed from a checkpoint taken at ``max_steps`` has nothing left to train, but the
    Trainer's loop (transformers 5.x) takes one more step when the checkpoint falls inside an epoch
    (it checks ``should_training_stop`` only after a step). Stop it before that step."""

    def on_step_begin(self, args, state, control, **kw):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise AlreadyFinished(f"step {state.global_step} of {state.max_steps}")
