"""The RL stage: ``run_rl(cfg, ctx)`` = setup, then ``rl.max_steps`` steps, then the final policy.

Each step (``ovr/rl/step.py``) samples prompts, generates responses on the rollout replicas,
scores them with the reward service, builds advantages, updates the actor (and the critic), and
pushes the new weights back to the replicas; every ``rl.save_every`` steps a checkpoint goes to
the store under the run's own folder (``runs/<name>/<run id>``), and an interrupted run resumes from
its newest one exactly. The replicas and the reward service are the ones the run context names
(the install's, or local ones ``services/local.py`` starts).

Runs as one process on CPU (tests, the local demo) or as ``torchrun`` ranks with DeepSpeed ZeRO on
GPUs: rank 0 talks to the services and sends each rank only its share of the scored groups (the others
wait polled, ovr/distributed.py); every rank trains on its share.

With ``rl.max_staleness`` = k >= 1 generation and training overlap: a producer thread on rank 0
samples and scores up to k steps ahead with the newest pushed weights (ovr/rl/producer.py), and a
checkpoint keeps its queue of generated, untrained groups so a resumed run trains them next.

>>> result = run_rl(cfg, RunContext.for_config(cfg))   # doctest: +SKIP
>>> result.history[-1]["reward_mean"]            # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from ovr.config import RunConfig
from ovr.context import RunContext
from ovr.progress import StageProgress, stage_note
from ovr.rl.checkpoint import export_final, save_checkpoint
from ovr.rl.metrics import progress_line
from ovr.rl.producer import Producer
from ovr.rl.setup import connect, setup_rl
from ovr.rl.step import push_weights, rl_step
from ovr.schema import Sample, StageResult
from ovr.store import Kind, Store, export_prefix


@dataclass
class RLResult:
    """What an RL run leaves behind."""

    export_prefix: str | None  # the final policy's store prefix (kind "rl-export"); None if not finished
    global_step: int  # steps done so far (== rl.max_steps when finished)
    history: list[dict] = field(default_factory=list)  # per-step metrics of this invocation
    final_metrics: dict = field(default_factory=dict)  # the last step's metrics
    checkpoint_steps: list[int] = field(default_factory=list)
    resumed_from: int | None = None
    run_id: str | None = None

    def stage_result(self) -> StageResult:
        metrics = {k: v for k, v in self.final_metrics.items() if k != "step"}
        return StageResult(export_prefix=self.export_prefix, global_step=self.global_step, metrics=metrics)


def run_rl(
    cfg: RunConfig,
    ctx: RunContext,
    *,
    samples: list[Sample] | None = None,
    resume: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> RLResult:
    """Train ``cfg.model.path`` (or ``ctx.model_path``) with RL as the run ``ctx``: it continues from the
    run's newest checkpoint, and a run that already exported its final policy does nothing more.
    ``stop_after`` ends this invocation after that many steps (a simulated interruption for resume
    tests; the run itself still ends at ``rl.max_steps``). Each step is reported by
    :class:`ovr.progress.StageProgress` (a log line, or the local run's progress file); ``progress``
    adds the rollout's interactive bar."""
    finished = finished_export(cfg, ctx)
    if finished is not None:
        return finished
    run = setup_rl(cfg, ctx, samples, resume)
    try:
        return _train(run, progress, stop_after)
    finally:
        # every rank's scratch, however the run ended: what is left of checkpoints and the export is in
        # the store (at 7B the export alone is ~15 GB of a node's disk, every run)
        shutil.rmtree(run.work, ignore_errors=True)


def _train(run, progress: bool, stop_after: int | None) -> RLResult:
    """The steps of :func:`run_rl` on a set-up run: services, tracking, steps, checkpoints, export."""
    ctx = run.ctx
    rl, state = run.rl, run.state
    if run.resumed_from is not None:
        stage_note("rl", f"resumed run {ctx.run_id} from its checkpoint at step {state.step} of {rl.max_steps}")
    svc = connect(run)
    push_weights(run, svc)  # step 0 samples the policy being trained, not what the replicas loaded
    producer = Producer.start(run, svc) if rl.max_staleness and svc is not None else None
    tracker = _tracker(run)
    result = RLResult(
        export_prefix=None,
        global_step=state.step,
        resumed_from=run.resumed_from,
        run_id=tracker.run_id if tracker else None,
    )
    last = rl.max_steps if stop_after is None else min(rl.max_steps, state.step + stop_after)
    status = "FAILED"
    # every step: the local run's progress file, else a log line with rate and ETA (pods, the CLI)
    reporter = StageProgress(
        "rl",
        rl.max_steps,
        start=state.step,
        every_s=0.0,
        line=lambda ev: progress_line(ev.step - 1, ev.total, ev.metrics),
    )
    try:
        for step in range(state.step, last):
            metrics = rl_step(run, svc, step, progress, producer)
            state.step = step + 1
            metrics = {k: float(v) for k, v in metrics.items()}
            result.history.append({"step": step, **metrics})
            if tracker is not None:
                tracker.log_metrics(metrics, step=step)
            if run.dist.is_main:
                reporter.update(state.step, metrics)
            if state.step % rl.save_every == 0 or state.step == rl.max_steps:
                save_checkpoint(run, metrics, producer.save if producer is not None else None)
                result.checkpoint_steps.append(state.step)
        result.global_step = state.step
        result.final_metrics = result.history[-1] if result.history else {}
        if run.dist.is_main and state.step == rl.max_steps:
            result.export_prefix = export_final(run)
            if tracker is not None:
                tracker.log_text(result.export_prefix, "rl/export_prefix.txt")
        status = "FINISHED"
    finally:
        if producer is not None:
            producer.stop()
        if tracker is not None:
            tracker.close(status)
        if svc is not None:
            svc.close()
    return result


def finished_export(cfg: RunConfig, ctx: RunContext) -> RLResult | None:
    """The result of a run that already exported its final policy (said on the console), else None."""
    store = Store.from_config(cfg.store)
    done = store.latest(ctx.key, Kind.RL_EXPORT)
    if done is None or done.step < cfg.rl.max_steps:
        return None
    prefix = export_prefix(ctx.key, "rl", done.step)
    stage_note(
        "rl",
        f"run {ctx.run_id} finished earlier (step {done.step} of {cfg.rl.max_steps}): nothing to do, "
        f"its final policy is {prefix}",
    )
    metrics = {k: float(v) for k, v in (done.metadata.get("metrics") or {}).items()}
    return RLResult(export_prefix=prefix, global_step=done.step, final_metrics=metrics, run_id=ctx.mlflow_run_id)


def _tracker(run):
    """The MLflow run of this stage on the main rank: the run context's, else the one an interrupted
    invocation of this run logged into (its checkpoint remembers it), else a new one."""
    from ovr.tracking import Tracker

    if not run.dist.is_main:
        return None
    ctx = run.ctx
    if ctx.mlflow_run_id is None and run.state.mlflow_run_id:
        ctx = ctx.with_(mlflow_run_id=run.state.mlflow_run_id)
    tracker = Tracker.open(run.cfg, "rl", ctx)
    run.state.mlflow_run_id = tracker.run_id
    return tracker
