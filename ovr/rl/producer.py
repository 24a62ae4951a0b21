"""The async producer (``rl.max_staleness`` = k >= 1): on the main rank, a thread samples and scores
the batches of the next steps with the newest pushed weights while the ranks train.

Bounded staleness by construction: the batch of step ``b`` starts only once step ``b - k - 1`` has
finished and pushed its weights, so its requests start under a policy at most ``k`` versions older
than the one step ``b`` updates (k = 1: one-step-off, generation of step b+1 overlaps training of
step b). Pushes do not stop the replicas for long: vLLM pauses in keep mode, reloads, resumes, and
requests in flight go on with the new weights (or are aborted and sent again,
``rl.inflight_on_push``); each response keeps the versions it spans (:mod:`ovr.rollout.client`). A
group older than k versions when its step comes (a resumed queue under a smaller bound) is dropped
and counted (:func:`ovr.rl.async_queue.drop_stale`).

The prompt cursor the producer walks is committed batch by batch: a checkpoint saves the queued
batches and the cursor after the last of them (:meth:`Producer.save`); a batch still being generated
is sampled again after a resume, from the same prompts.

>>> producer = Producer.start(run, svc)        # doctest: +SKIP  (main rank, after the first push)
>>> got, metrics = producer.take(step)         # doctest: +SKIP
>>> producer.done(step)                        # doctest: +SKIP  (after the step's push)
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ovr.rl import async_queue as Q
from ovr.rl.sampling import Collected, collect, sampling_extra
from ovr.rollout.scoring import Scored, sample_and_score
from ovr.schema import Sample

log = logging.getLogger("ovr.rl")
WAIT_LOG_S = 60.0  # the trainer says it is waiting for the producer this often


class Producer:
    """Generates the batches of the coming steps in a thread; the trainer takes them in order."""

    def __init__(self, run, svc, sample: Callable[[list[Sample], int], Scored] | None = None, restored=None):
        self.run, self.svc = run, svc
        self.k = run.rl.max_staleness
        first = run.state.step
        policy = restored.policy_version if restored is not None else first
        self.offset = policy - run.state.weight_version  # policy version = replica version + offset
        self.queue: deque[Q.Batch] = deque(restored.batches if restored is not None else [])
        self.cursor = copy.deepcopy(restored.cursor if restored is not None else run.state.cursor)
        self.next_step = first + len(self.queue)  # the step of the batch to generate next
        self.finished = first  # steps done (and pushed)
        self.trained: list[dict] = []  # groups trained since the last checkpoint
        self.sample = sample or self._sample
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.stopping = False
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None
        self.thread = threading.Thread(target=self._loop, name="ovr-rl-producer", daemon=True)

    @classmethod
    def start(cls, run, svc, sample=None) -> Producer:
        """The producer of ``run`` (its queue restored when the run resumed from an async checkpoint),
        started; the weight sync set to push without stopping generation, the client to keep
        responses that span a push."""
        svc.sync.pause_mode = "keep" if run.rl.inflight_on_push == "continue" else "abort"
        svc.rollout.spans = True
        producer = cls(run, svc, sample, restored=restored_queue(run))
        producer.thread.start()
        return producer

    @property
    def policy_version(self) -> int:
        """The policy version of the weights the replicas were last given (the trainer's now)."""
        return self.run.state.weight_version + self.offset

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            while (step := self._gate()) is not None:
                cursor = copy.deepcopy(self.cursor)
                rl, t0 = self.run.rl, time.perf_counter()
                max_tokens = rl.max_tokens_at(step)
                got = collect(
                    lambda prompts, limit=max_tokens: self.sample(prompts, limit),
                    self.run.samples,
                    cursor,
                    want=rl.prompts_per_step,
                    dynamic=rl.dynamic_sampling,
                    max_rounds=rl.max_generation_rounds,
                )
                batch = Q.Batch(step, got, self.offset, time.perf_counter() - t0)
                with self.cond:
                    self.queue.append(batch)
                    self.cursor = copy.deepcopy(cursor)
                    self.next_step += 1
                    self.cond.notify_all()
        except BaseException as e:  # handed to the trainer, which raises it
            with self.cond:
                if not self.stopping:
                    self.error = e
                self.cond.notify_all()

    def _gate(self) -> int | None:
        """The next step to generate for, once the staleness bound allows it; None when done or stopping."""
        last = self.run.rl.max_steps
        with self.cond:
            self.cond.wait_for(
                lambda: self.stopping or self.next_step >= last or self.finished >= self.next_step - self.k
            )
            return None if self.stopping or self.next_step >= last else self.next_step

    def _sample(self, prompts: list[Sample], max_tokens: int) -> Scored:
        """One round through the services, cancellable by :meth:`stop`."""
        svc, rl, cfg = self.svc, self.run.rl, self.run.cfg

        async def go() -> Scored:
            with self.cond:
                if self.stopping:
                    raise asyncio.CancelledError
                self._task = (asyncio.get_running_loop(), asyncio.current_task())
            try:
                return await sample_and_score(
                    svc.rollout,
                    svc.reward,
                    prompts,
                    n=rl.samples_per_prompt,
                    max_tokens=max_tokens,
                    cfg=cfg,
                    extra=sampling_extra(cfg.rollout, max_tokens),
                )
            finally:
                with self.cond:
                    self._task = None
                await svc.rollout.close()
                await svc.reward.aclose()

        return asyncio.run(go())

    # ------------------------------------------------------------------ the trainer's side
    def take(self, step: int) -> tuple[Collected, dict[str, float]]:
        """Step ``step``'s batch (waiting for it), without the groups staler than the bound, and the
        step's async metrics."""
        t0 = time.monotonic()
        with self.cond:
            while not self.queue and self.error is None:
                if not self.cond.wait(timeout=WAIT_LOG_S):
                    log.info("step %d: waited %.0f s for the producer's batch", step, time.monotonic() - t0)
            if self.error is not None:
                raise RuntimeError(f"the async producer failed before step {step}'s batch") from self.error
            ready = len(self.queue)
            batch = self.queue.popleft()
        if batch.step != step:
            raise RuntimeError(f"the producer's next batch is for step {batch.step}, not {step}")
        ages, dropped = Q.drop_stale(batch, self.policy_version, self.k)
        spanning = [c.weight_version_max is not None for g in batch.got.groups for c in g.completions]
        self.trained.append(Q.trained_record(step, batch))
        metrics = {
            "staleness_mean": sum(ages) / max(len(ages), 1),
            "staleness_max": float(max(ages, default=0)),
            "async/dropped_stale_groups": float(dropped),
            "async/wait_seconds": time.monotonic() - t0,
            "async/batches_ready": float(ready),
            "async/generation_seconds": batch.generation_s,
            "async/spanning_push_frac": sum(spanning) / max(len(spanning), 1),
        }
        return batch.got, metrics

    def done(self, step: int) -> None:
        """Step ``step`` finished and pushed its weights: the producer may go one batch further."""
        with self.cond:
            self.finished = step + 1
            self.cond.notify_all()

    def save(self, folder: Path) -> None:
        """Write the queue (batches generated, not trained), the producer's cursor, the policy version
        and the groups trained since the last checkpoint into checkpoint ``folder``."""
        with self.cond:
            state = Q.QueueState(self.policy_version, copy.deepcopy(self.cursor), list(self.queue), self.trained)
            self.trained = []
        (Path(folder) / Q.FILE).write_bytes(Q.dump(state))

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop generating (a request in flight is cancelled) and wait for the thread."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
            task = self._task
        if task is not None:
            loop, t = task
            loop.call_soon_threadsafe(t.cancel)
        self.thread.join(timeout_s)


def restored_queue(run) -> Q.QueueState | None:
    """The queue saved with the checkpoint ``run`` resumed from (main rank), if it has one."""
    if run.resumed_from is None:
        return None
    from ovr.store import Kind, step_prefix

    prefix = step_prefix(run.ctx.key, run.resumed_from, Kind.RL)
    manifest = run.store.read_manifest(prefix)
    if manifest is None or Q.FILE not in {f.path for f in manifest.files}:
        return None
    state = Q.load(run.store.get_bytes(f"{prefix}/{Q.FILE}"))
    log.info("resumed the async queue: %d batch(es) for steps %s", len(state.batches), [b.step for b in state.batches])
    return state
