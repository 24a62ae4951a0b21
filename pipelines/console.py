"""The console of a local pipeline run: stage headers, live SFT/RL progress, everything else to a log.

``kfp.local`` runs each task as a subprocess and prints its streamed output through the parent's
``sys.stdout`` (``print`` and a ``logging`` handler it makes on ``sys.stdout`` for every task).
While the DAG runs, :class:`RunConsole` points ``sys.stdout``/``sys.stderr`` (and file descriptors
1 and 2, for anything written below Python) at the run's log file, through
:class:`KfpLogStream`, which also spots kfp's ``Executing task 'x'`` / ``Task 'x' finished`` lines
to print one header per stage on the real terminal. The training stages append their steps to the
progress file named by ``OVR_PROGRESS_FILE`` (:mod:`ovr.progress`), which every task inherits; a
thread tails it and draws the live bar (rich) on a terminal, or a plain line per tenth of the
stage when the output is a file or a pipe.
"""

from __future__ import annotations

import collections
import io
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ovr.progress import PROGRESS_ENV, ProgressEvent, format_duration, read_events

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"^[\d:.]+ - INFO - Executing task '([^']+)'")
FINISHED = re.compile(r"^[\d:.]+ - INFO - Task '([^']+)' finished with status (\w+)")
KFP_NOISE = re.compile(r"^([\d:.]+ - [A-Z]+ - |\s*-{20,}\s*$)")  # kfp's own log lines and rules


@dataclass(frozen=True)
class StageInfo:
    label: str
    what: str


#: kfp task name -> what the console calls it (unknown tasks show their own name)
TASKS = {
    "validate-config": StageInfo("validate", "recipe, data plan, store, services, cluster, MLflow run"),
    "build-data": StageInfo("data", "SFT / RL / eval splits into the store"),
    "train-sft": StageInfo("SFT", "language-only cold start"),
    "launch-sft": StageInfo("SFT", "language-only cold start (multi-node job)"),
    "evaluate-model": StageInfo("eval SFT", "avg@k of the SFT model (vLLM + reward service)"),
    "train-rl": StageInfo("RL", "PPO with vLLM rollouts and the reward service"),
    "launch-rl": StageInfo("RL", "PPO (multi-node job)"),
    "evaluate-model-2": StageInfo("eval RL", "avg@k of the RL model"),
    "make-report": StageInfo("report", "tables, curves, behaviours"),
}
#: metrics shown on a stage's progress line
SHOWN = {"sft": ("loss",), "rl": ("reward_mean", "accuracy")}


def stage_info(task: str) -> StageInfo:
    return TASKS.get(task, StageInfo(task, ""))


def event_text(event: ProgressEvent) -> str:
    """``loss 1.23 | 2.1 step/s  ETA 40s`` for the live bar and the plain lines."""
    keys = SHOWN.get(event.stage, tuple(event.metrics)[:2])
    shown = "  ".join(f"{k.removesuffix('_mean')} {event.metrics[k]:.3f}" for k in keys if k in event.metrics)
    rate = (f"{event.rate:.2f} step/s" if event.rate >= 1 else f"{1 / event.rate:.1f} s/step") if event.rate else ""
    return f"{shown}  {rate}  ETA {format_duration(event.eta)}".strip()


class KfpLogStream(io.TextIOBase):
    """A text stream into the log file that reports kfp's task start/finish lines to ``console``
    and keeps the last lines (shown when a task fails)."""

    def __init__(self, log, console: RunConsole, keep: int = 40):
        self.log, self.console = log, console
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        if line.strip() and not KFP_NOISE.match(line):
            self.tail.append(line)
        if m := STARTED.match(line):
            self.tail.clear()
            self.console.task_started(m.group(1))
        elif m := FINISHED.match(line):
            self.console.task_finished(m.group(1), m.group(2) == "SUCCESS")


class RunConsole:
    """The run's console (see the module doc); use as a context manager around the DAG run.

    ``console``: where a person reads (default: the real stdout); ``redirect_fds``: also point file
    descriptors 1 and 2 at the log (off in tests, which keep their own capture)."""

    def __init__(
        self,
        log_path: Path,
        progress_path: Path,
        console: Console | None = None,
        redirect_fds: bool = True,
        poll_s: float = 0.5,
    ):
        self.log_path, self.progress_path = Path(log_path), Path(progress_path)
        self.redirect_fds, self.poll_s = redirect_fds, poll_s
        self._console_arg = console
        self.console: Console | None = console
        self.live = bool(console and console.is_terminal)
        self._lock = threading.RLock()
        self._offset = 0
        self._task: str | None = None
        self._t_task = 0.0
        self._last: dict[str, ProgressEvent] = {}
        self._shown_decile: dict[str, int] = {}
        self._bars: dict[str, int] = {}
        self._stop = threading.Event()
        self.events: list[ProgressEvent] = []  # every event of the run, for the summary
        self.notes: list[str] = []  # what stages said of themselves: resumed, nothing to do

    # ------------------------------------------------------------------ set-up / tear-down
    def __enter__(self) -> RunConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.progress_path.write_text("")
        self._log = open(self.log_path, "a", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved_streams = sys.stdout, sys.stderr
        self._saved_fds = None
        if self.console is None:
            self.console = Console(file=os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1))
        self.live = self.console.is_terminal
        if self.redirect_fds:
            self._saved_fds = os.dup(1), os.dup(2)
            os.dup2(self._log.fileno(), 1)
            os.dup2(self._log.fileno(), 2)
        self.stream = KfpLogStream(self._log, self)
        sys.stdout = sys.stderr = self.stream
        self._saved_env = os.environ.get(PROGRESS_ENV)
        os.environ[PROGRESS_ENV] = str(self.progress_path)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.live,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.progress.start()
        self._thread = threading.Thread(target=self._tail, name="ovr-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain()
        if exc is not None and self._task is not None:
            self._failed(self._task, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        self.progress.stop()
        sys.stdout, sys.stderr = self._saved_streams
        if self._saved_fds is not None:
            for fd, saved in zip((1, 2), self._saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
        if self._saved_env is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = self._saved_env
        self._log.close()

    def print(self, *items, **kw) -> None:
        with self._lock:
            self.console.print(*items, **kw)

    # ------------------------------------------------------------------ kfp task lines
    def task_started(self, task: str) -> None:
        info = stage_info(task)
        with self._lock:
            self._task, self._t_task = task, time.monotonic()
            self.console.print(f"[bold cyan]▶ {info.label}[/]  [dim]{info.what}[/]".rstrip())
            self._bars[task] = self.progress.add_task(info.label, total=None, info="")

    def task_finished(self, task: str, ok: bool) -> None:
        if not ok:
            return self._failed(task)
        self.drain()
        info = stage_info(task)
        with self._lock:
            self._close_bars()
            done = [e for e in self._last.values() if e.step >= e.total]
            steps = "; ".join(f"{e.step} steps, {event_text(e).split('ETA')[0].strip()}" for e in done)
            self._last.clear()
            wall = format_duration(time.monotonic() - self._t_task)
            self.console.print(
                f"[green]✓ {info.label}[/] {wall}" + (f"  [dim]{steps}[/]" if steps else ""), soft_wrap=True
            )
            self._task = None

    def _failed(self, task: str, how: str = "failed") -> None:
        with self._lock:
            self._close_bars()
            self.console.print(
                f"[bold red]✗ {stage_info(task).label} {how}[/] after "
                f"{format_duration(time.monotonic() - self._t_task)}; its last log lines:"
            )
            for line in list(self.stream.tail)[-15:]:
                self.console.print(f"  {line.strip()[:200]}", markup=False, highlight=False, soft_wrap=True)
            self.console.print(f"full log: {self.log_path}", markup=False, soft_wrap=True)
            self._task = None

    def _close_bars(self) -> None:
        for bar in self._bars.values():
            self.progress.remove_task(bar)
        self._bars.clear()

    # ------------------------------------------------------------------ progress events
    def _tail(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.drain()

    def drain(self) -> None:
        """Read and show the progress events written since the last call."""
        with self._lock:
            events, self._offset = read_events(self.progress_path, self._offset)
            for event in events:
                self._show(event)

    def _show(self, event: ProgressEvent) -> None:
        if event.note:  # a stage resumed, or had nothing to do: a line of its own, repeated in the summary
            self.notes.append(f"{event.stage}: {event.note}")
            self.console.print(f"  {event.stage}: {event.note}", markup=False, highlight=False, soft_wrap=True)
            return
        self.events.append(event)
        self._last[event.stage] = event
        key = self._task if self._task in self._bars else f"progress:{event.stage}"  # the running task's bar
        if self.live:
            if key not in self._bars:
                self._bars[key] = self.progress.add_task(event.stage.upper(), total=event.total, info="")
            self.progress.update(self._bars[key], completed=event.step, total=event.total, info=event_text(event))
            return
        decile = event.step * 10 // max(event.total, 1)
        if decile > self._shown_decile.get(event.stage, -1) and event.step < event.total:
            self._shown_decile[event.stage] = decile
            self.console.print(
                f"  {event.stage} {event.step}/{event.total}  {event_text(event)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
