"""Stage progress a person can follow: one event per training step, to a file or as a log line.

A training stage creates a :class:`StageProgress` and calls :meth:`StageProgress.update` after each
step. Where the event goes depends on where the stage runs:

* **under a local pipeline run** (``ovr demo``, ``ovr run --local``) the runner sets
  ``OVR_PROGRESS_FILE``; every task subprocess inherits it and appends one JSON line per step
  (``stage``, ``step``, ``total``, ``start``, ``metrics``, ``elapsed``); the runner tails the file
  (:func:`read_events`) and draws the live line (:mod:`pipelines.console`);
* **anywhere else** (a KFP pod, a trainer pod of a TrainJob, ``ovr sft train``) it prints a plain
  line at most every ``every_s`` seconds, and at the last step, with the rate and the ETA, so pod
  logs show how far a run is.

Only the main rank (``RANK`` 0 or unset) reports: ``torchrun``-launched stages write one stream.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: the file a local pipeline run tails; unset on a cluster
PROGRESS_ENV = "OVR_PROGRESS_FILE"


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``; non-finite -> ``?``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass(frozen=True)
class ProgressEvent:
    """One finished step of a stage (``step`` counts finished steps, 1-based; ``start``: where this
    invocation began, so a resumed run's rate counts only its own steps)."""

    stage: str
    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    start: int = 0
    note: str = ""  # a line about the stage instead of a step: it resumed, or had nothing to do

    @property
    def rate(self) -> float:
        """Steps per second of this invocation (0 before the first step)."""
        done = self.step - self.start
        return done / self.elapsed if done > 0 and self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the current rate (``inf`` when unknown)."""
        return (self.total - self.step) / self.rate if self.rate > 0 else math.inf

    def to_json(self) -> str:
        return json.dumps(
            {
                "stage": self.stage,
                "step": self.step,
                "total": self.total,
                "start": self.start,
                "metrics": self.metrics,
                "elapsed": round(self.elapsed, 3),
                **({"note": self.note} if self.note else {}),
            }
        )

    @classmethod
    def from_json(cls, line: str) -> ProgressEvent:
        d = json.loads(line)
        metrics = {str(k): float(v) for k, v in (d.get("metrics") or {}).items()}
        return cls(
            stage=str(d["stage"]),
            step=int(d["step"]),
            total=int(d["total"]),
            metrics=metrics,
            elapsed=float(d.get("elapsed", 0.0)),
            start=int(d.get("start", 0)),
            note=str(d.get("note", "")),
        )

    def line(self, text: str | None = None) -> str:
        """The plain log line: ``text`` (default: stage, step/total and the metrics), rate and ETA."""
        if text is None:
            shown = "  ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
            text = f"{self.stage} step {self.step}/{self.total}  {shown}".rstrip()
        rate = f"{self.rate:.2f} step/s" if self.rate >= 1 else f"{1 / self.rate:.1f} s/step" if self.rate else "-"
        return f"{text}  | {rate}  elapsed {format_duration(self.elapsed)}  ETA {format_duration(self.eta)}"


def is_main_rank(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return int(environ.get("RANK", "0") or 0) == 0


class StageProgress:
    """Reports a stage's steps (see the module doc). ``echo=False`` keeps the plain line quiet (an
    interactive progress bar already shows it); the progress file is written regardless."""

    def __init__(
        self,
        stage: str,
        total: int,
        *,
        start: int = 0,
        every_s: float = 30.0,
        echo: bool = True,
        line: Callable[[ProgressEvent], str] | None = None,
        environ: dict[str, str] | None = None,
        printer: Callable[[str], None] | None = None,
    ):
        environ = os.environ if environ is None else environ
        self.stage, self.total, self.start, self.every_s = stage, int(total), int(start), every_s
        self.main = is_main_rank(environ)
        self.path = Path(environ[PROGRESS_ENV]) if environ.get(PROGRESS_ENV) else None
        self.echo = echo and self.path is None
        self._line = line
        self._print = printer or (lambda text: print(text, flush=True))
        self._t0 = time.monotonic()
        self._last_print = -math.inf

    def update(self, step: int, metrics: dict[str, float] | None = None) -> ProgressEvent | None:
        """Step ``step`` (finished steps, 1-based) is done; ``metrics``: the values to show."""
        if not self.main:
            return None
        values = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)}
        now = time.monotonic()
        event = ProgressEvent(self.stage, int(step), self.total, values, now - self._t0, self.start)
        if self.path is not None:
            with open(self.path, "a") as f:  # one short write per line: whole lines for the reader
                f.write(event.to_json() + "\n")
        elif self.echo and (now - self._last_print >= self.every_s or event.step >= self.total):
            self._last_print = now
            self._print(event.line(self._text(event)))
        return event

    def _text(self, event: ProgressEvent) -> str | None:
        """The stage's own line text; the default one if it has none or it fails (a progress line
        never stops a run)."""
        try:
            return self._line(event) if self._line else None
        except (KeyError, ValueError, TypeError):
            return None


def stage_note(stage: str, text: str, *, step: int = 0, total: int = 0, environ: dict[str, str] | None = None) -> None:
    """Say something about a stage as a whole (``sft: resumed run X at step 80 of 160``; ``rl: finished
    earlier, nothing to do``): a line in the log everywhere, and a note event the local run's console
    shows and its summary repeats. Main rank only."""
    environ = os.environ if environ is None else environ
    if not is_main_rank(environ):
        return
    print(f"{stage}: {text}", flush=True)
    if environ.get(PROGRESS_ENV):
        with open(environ[PROGRESS_ENV], "a") as f:
            f.write(ProgressEvent(stage, step, total, note=text).to_json() + "\n")


def read_events(path: str | Path, offset: int = 0) -> tuple[list[ProgressEvent], int]:
    """The complete event lines of ``path`` after byte ``offset`` and the offset after the last one
    (a line still being written is left for the next call; unreadable lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            events.append(ProgressEvent.from_json(raw.decode()))
        except (ValueError, KeyError, TypeError):
            continue
    return events, offset + end
