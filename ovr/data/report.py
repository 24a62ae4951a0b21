"""What a build tells: rows read and dropped per source with reasons (every dropped row listed), and
a progress line with the rate and the ETA while it runs."""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from ovr.data.spool import DropLog
from ovr.progress import format_duration
from ovr.schema import Sample

EXAMPLES_PER_REASON = 3  # dropped-row examples kept in the manifest per (source, reason)
READ, VERIFY, FILTER = 0, 1, 2  # first element of a drop bucket: the build stage that dropped the row


class Report:
    """Counts of what was read, kept and dropped (with reasons), per source, and every dropped row:
    in memory, or (``log`` given) in a :class:`DropLog` on disk, listed in bucket order."""

    def __init__(self, log: DropLog | None = None) -> None:
        self.read: dict[str, int] = defaultdict(int)
        self.dropped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.examples: list[dict] = []
        self.rows: list[dict] = []
        self.log = log

    def drop(
        self,
        source: str,
        reason: str,
        row: int | str | None = None,
        detail: str | None = None,
        bucket: tuple = (READ,),
    ) -> None:
        self.dropped[source][reason] += 1
        record = {"source": source, "row": row, "reason": reason, "detail": detail}
        if self.log is not None:
            self.log.add(bucket, record)
        else:
            self.rows.append(record)
        if self.dropped[source][reason] <= EXAMPLES_PER_REASON:
            self.examples.append(record)

    def drop_sample(self, sample: Sample, reason: str, bucket: tuple) -> None:
        self.drop(sample.source, reason, sample.provenance.get("row", sample.id), sample.id, bucket)

    def drop_all(self, dropped: list[tuple[Sample, str]], bucket: tuple = (VERIFY,)) -> None:
        for sample, reason in dropped:
            self.drop_sample(sample, reason, bucket)

    @property
    def any_dropped(self) -> bool:
        return bool(self.log) if self.log is not None else bool(self.rows)

    def write_rows(self, path: Path) -> None:
        """Every dropped row as one JSON line; from a drop log, in bucket order (the examples are
        then the first ones of each (source, reason) in that order)."""
        if self.log is not None:
            self.examples = self.log.write(path, EXAMPLES_PER_REASON)
            return
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows), encoding="utf-8")

    def as_dict(self) -> dict:
        return {
            "read": dict(sorted(self.read.items())),
            "dropped": {s: dict(sorted(r.items())) for s, r in sorted(self.dropped.items())},
            "examples": self.examples,
        }


class BuildProgress:
    """Rows read so far, with the rate and the ETA (``total`` None: no ETA): a tqdm bar when
    ``interactive``, else a plain line every ``every_s`` seconds (pod logs), and a last one if it printed any."""

    def __init__(self, total: int | None, interactive: bool, every_s: float = 30.0, desc: str = "build"):
        self.total, self.every_s, self.desc, self.done = total, every_s, desc, 0
        self.bar = tqdm(total=total, desc=desc, unit="row") if interactive else None
        self._t0 = self._last = time.monotonic()
        self.lines = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self._last >= self.every_s:
            self._print()

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if self.total and rate else math.inf
        of = f"/{self.total}" if self.total else ""
        times = f"elapsed {format_duration(elapsed)}  ETA {format_duration(left)}"
        return f"{self.desc}: {self.done}{of} rows  {rate:.0f} rows/s  {times}"

    def _print(self) -> None:
        self._last = time.monotonic()
        self.lines += 1
        print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.lines:
            self._print()
