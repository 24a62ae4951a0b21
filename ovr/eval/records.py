"""What an evaluation produces: one record per response, scores per benchmark/subject, the result.

``ResponseRecord`` rows go to ``responses.jsonl`` (for inspection); ``EvalResult`` is saved as
``result.json`` beside them and is what ``ovr report`` reads back.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

RESULT_FILE = "result.json"
RESPONSES_FILE = "responses.jsonl"
TABLE_FILE = "results.md"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseRecord(_Model):
    """One sampled response to one eval question, scored and analysed."""

    sample_id: str
    benchmark: str = Field(..., description="The sample's source (benchmark name).")
    subject: str | None = None
    modality: str = Field(..., description="text | image.")
    index: int = Field(..., ge=0, description="Which of the k samples of the question this is.")
    prompt: str
    reference: str
    text: str
    finish_reason: str
    length: int = Field(..., ge=0, description="Response length in tokens.")
    accuracy: float = Field(..., description="1 if the extracted answer matches the reference.")
    extracted: str | None = None
    grading: str | None = Field(
        None, description="Grading path: rule | string | judge | ungraded (ovr.rewards.grading); None = scoring failed."
    )
    group: str | None = Field(None, description="Unit the benchmark's metric groups items by (seed, problem).")
    role: str | None = Field(None, description="The item's role in its group (variant, sub-problem, version).")
    score_error: str | None = None
    keywords: dict[str, int] = Field(default_factory=dict, description="ORZ reflection word counts.")
    behaviours: dict[str, int] = Field(
        default_factory=dict,
        description="Named behaviour counts (ovr.rewards.detectors: reflection, verification, ...).",
    )
    judge: dict[str, int | None] = Field(
        default_factory=dict, description="Judge counts per behaviour; None = judge output unusable."
    )

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class Score(_Model):
    """Accuracy and length statistics of a group of questions (a benchmark or one subject of it)."""

    benchmark: str
    subject: str | None = Field(None, description="None for the whole benchmark.")
    modality: str = Field(..., description="text, image or mixed.")
    questions: int
    responses: int
    avg_at_k: float = Field(..., description="Mean over questions of the mean accuracy of its k samples.")
    pass_at_k: float = Field(..., description="Share of questions with at least one correct sample.")
    truncation_rate: float = Field(..., description="Share of responses cut by the length limit.")
    mean_length: float = Field(..., description="Mean response length in tokens.")


class BenchmarkScore(_Model):
    """One benchmark scored as its leaderboard scores it, with its denominator and grading paths."""

    benchmark: str
    title: str = Field(..., description="VLMEvalKit's dataset name.")
    metric: str = Field(..., description="Name of the headline metric (e.g. 'vision-only accuracy').")
    score: float | None = Field(..., description="Headline metric (0-1), averaged over the k samples.")
    extra: dict[str, float | None] = Field(default_factory=dict, description="The benchmark's other metrics.")
    items: int = Field(..., description="Items scored: the denominator.")
    published: int | None = Field(None, description="Items of the published eval set; None = unknown.")
    grading: dict[str, int] = Field(
        default_factory=dict, description="Items per grading path (rule, string, judge, ungraded)."
    )
    paper: dict[str, float | None] = Field(default_factory=dict, description="The OVR paper's numbers (%).")

    @property
    def complete(self) -> bool | None:
        """Whether the denominator is the published size (None when that size is unknown)."""
        return None if self.published is None else self.items == self.published


class BehaviourRates(_Model):
    """Behaviour emergence in one benchmark (or one modality): share of responses with count > 0."""

    group: str = Field(..., description="Benchmark name, or 'vision' / 'language'.")
    modality: str
    responses: int
    rates: dict[str, float | None] = Field(
        default_factory=dict, description="Emergence rate per behaviour among responses with a known count."
    )
    mean_counts: dict[str, float | None] = Field(default_factory=dict, description="Mean count per behaviour.")
    unknown: dict[str, int] = Field(
        default_factory=dict, description="Responses whose count is unknown (malformed judge output)."
    )
    accuracy_with: dict[str, float | None] = Field(
        default_factory=dict, description="Mean accuracy of the responses showing each behaviour (None: none do)."
    )
    accuracy_without: dict[str, float | None] = Field(
        default_factory=dict, description="Mean accuracy of the responses not showing it (None: all do)."
    )


class EvalResult(_Model):
    """Everything one evaluation of one checkpoint measured."""

    label: str = Field(..., description="Checkpoint label shown in reports (e.g. sft, rl-step-20).")
    step: int = Field(0, description="Training step of the checkpoint (x axis across checkpoints).")
    k: int
    temperature: float
    top_p: float
    max_tokens: int
    benchmarks: list[Score]
    subjects: list[Score]
    leaderboard: list[BenchmarkScore] = Field(
        default_factory=list, description="Per benchmark: its own metric, denominator and grading paths."
    )
    behaviour: list[BehaviourRates] = Field(default_factory=list, description="Per benchmark.")
    behaviour_by_modality: list[BehaviourRates] = Field(default_factory=list, description="vision / language.")
    transfer: dict[str, float | None] = Field(
        default_factory=dict, description="Emergence rate on vision over rate on language, per behaviour."
    )
    questions: int
    responses: int
    wall_s: float
    questions_per_s: float
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds spent generating, scoring, judging.")
    mlflow_run_id: str | None = None
    out_dir: str | None = None

    def save(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / RESULT_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read ``result.json`` (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no eval result at {path} (run `ovr eval` first)")
        return cls.model_validate_json(path.read_text())


def write_records(records: list[ResponseRecord], path: Path) -> None:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n")


def read_records(path: Path) -> list[ResponseRecord]:
    with open(path) as f:
        return [ResponseRecord.model_validate_json(line) for line in f if line.strip()]
