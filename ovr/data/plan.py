"""What a dataset build will read, known before it reads anything: its plan, and whether it can work.

:func:`dataset_plan` lists the configured sources and procedural sets per split and refuses a config
that cannot give the run what it needs: no source at all (an empty dataset that every later stage
would fail on, after GPUs were spent), a split the run trains on with nothing in it, an unknown
adapter or a source without a path, an eval benchmark no source provides. The pipeline's Validate
config and ``ovr config validate`` call it; the build itself (:mod:`ovr.data.build`) then reads
exactly these sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovr.config import DataConfig, RunConfig
from ovr.data.synthetic import TEXT_SOURCE, VISUAL_SOURCE

SPLITS = ("sft", "rl", "eval")


class DatasetPlanError(ValueError):
    """The data config cannot give the run what it needs; the message says what to add."""


@dataclass(frozen=True)
class PlannedSource:
    """One input of the build: a source (hub id, store path, folder) or a procedural set."""

    name: str
    split: str
    adapter: str
    path: str
    weight: float = 1.0
    max_samples: int | None = None

    def __str__(self) -> str:
        cap = f", at most {self.max_samples}" if self.max_samples else ""
        weight = f", weight {self.weight:g}" if self.weight != 1.0 else ""
        return f"{self.split:4} {self.name} <- {self.path} ({self.adapter}{weight}{cap})"


@dataclass
class DatasetPlan:
    """The build's inputs per split."""

    name: str
    sources: list[PlannedSource] = field(default_factory=list)

    def split(self, split: str) -> list[PlannedSource]:
        return [s for s in self.sources if s.split == split]

    def render(self) -> str:
        lines = [f"dataset {self.name}: {len(self.sources)} inputs"]
        return "\n".join(lines + [f"  {s}" for s in self.sources])


def _synthetic(dc: DataConfig) -> list[PlannedSource]:
    sc, out = dc.synthetic, []
    if sc.text_samples:
        out.append(PlannedSource(TEXT_SOURCE, "sft", "procedural", f"{sc.text_samples} generated", 1.0))
    if sc.visual_samples:
        out.append(PlannedSource(VISUAL_SOURCE, "rl", "procedural", f"{sc.visual_samples} generated", 1.0))
    if sc.eval_samples:
        for name in (VISUAL_SOURCE, TEXT_SOURCE):
            out.append(PlannedSource(name, "eval", "procedural", f"{sc.eval_samples} generated", 1.0))
    return out


def dataset_plan(cfg: RunConfig, needs: tuple[str, ...] = SPLITS) -> DatasetPlan:
    """The plan of ``cfg.data``; :class:`DatasetPlanError` when a split in ``needs`` would be empty, an
    eval benchmark has no source, or a source cannot be read as configured."""
    from ovr.data.registry import get_adapter

    dc = cfg.data
    plan = DatasetPlan(dc.name)
    problems = []
    for src in dc.sources:
        name = src.name or src.adapter
        try:
            get_adapter(src.adapter)
        except (KeyError, ValueError) as err:
            problems.append(f"source {name}: {err}")
        if not src.path:
            problems.append(
                f"source {name} ({src.adapter}) has no path: a hub id hf://datasets/ORG/NAME or a store path"
            )
        if src.weight == 0:
            continue
        plan.sources.append(PlannedSource(name, src.split, src.adapter, src.path or "-", src.weight, src.max_samples))
    plan.sources += _synthetic(dc)
    if not plan.sources:
        raise DatasetPlanError(
            f"data.sources of {cfg.name!r} is empty and data.synthetic generates nothing: the dataset would be "
            "empty. List the recipe's sources (hub ids hf://datasets/ORG/NAME, or s3:// store paths, with their "
            "adapter; `ovr data adapters` lists them) or set data.synthetic.text_samples/visual_samples"
        )
    empty = [s for s in needs if s != "eval" and not plan.split(s)]
    if empty:
        problems.append(
            f"no source feeds split(s) {', '.join(empty)}: add a source with split: {empty[0]} "
            "(or the procedural set: data.synthetic.text_samples for sft, visual_samples for rl)"
        )
    provided = {s.name for s in plan.split("eval")}
    missing = [b for b in cfg.eval.benchmarks if b not in provided] if "eval" in needs else []
    if missing:
        problems.append(
            f"eval.benchmarks {missing} have no eval source of that name (eval sources: {sorted(provided) or 'none'}): "
            "add them with split: eval and that name, or drop them from eval.benchmarks"
        )
    if problems:
        raise DatasetPlanError("; ".join(problems))
    return plan
