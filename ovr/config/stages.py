"""Config sections of the stages: data, cold-start SFT and eval (RL: ovr/config/rl.py).

Every stage's ``seed`` defaults to the run's top-level ``seed`` (set a stage's own to decouple it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator

from ovr.config.behaviours import DEFAULT_BEHAVIOURS, check_behaviours
from ovr.config.infra import _Section


class DataSourceConfig(_Section):
    """One input of a dataset build."""

    adapter: str = Field(..., description="Registered adapter name (see `ovr data adapters`).")
    name: str | None = Field(
        None, description="Source name in Sample.source and the manifest; defaults to the adapter name."
    )
    path: str | None = Field(
        None,
        description="Local path, s3:// URI (save_to_disk, parquet, JSONL, JSON, row folders) or "
        "hf://datasets/ORG/NAME (downloaded once, then read from the store's mirror).",
    )
    hf_config: str | None = Field(
        None, description="Configuration (subset) of an hf:// dataset or a downloaded hub folder, e.g. testmini."
    )
    hf_split: str | None = Field(
        None,
        description="Split of an hf:// dataset, a downloaded hub folder or a save_to_disk DatasetDict; "
        "None = its only one.",
    )
    revision: str | None = Field(None, description="Hub revision (tag, branch or commit) of an hf:// dataset.")
    split: Literal["sft", "rl", "eval"] = Field("rl", description="Which set the samples feed.")
    weight: float = Field(
        1.0,
        ge=0,
        description="Mixing weight: keeps round(weight * n) of the source's n filtered items "
        "(<1 subsamples, >1 repeats), which sets its share relative to the other sources.",
    )
    max_samples: int | None = Field(None, ge=1, description="Cap on samples taken from this source.")
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")


class SyntheticConfig(_Section):
    """Procedural tasks generated offline (ovr/data/synthetic.py)."""

    text_samples: int = Field(0, ge=0, description="Language-only arithmetic/logic samples (cold start).")
    visual_samples: int = Field(0, ge=0, description="Image tasks (RL set).")
    eval_samples: int = Field(0, ge=0, description="Held-out image+text samples for eval.")
    tasks: list[str] = Field(
        default_factory=lambda: ["shape_colour", "count_shapes", "bar_chart", "compare_sizes", "angle"],
        description="Visual task names to draw from.",
    )
    difficulty: int = Field(1, ge=1, le=5, description="Difficulty knob of every task (1 = easiest).")
    image_size: int = Field(112, ge=28, description="Side of generated images in pixels.")
    behaviours: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_BEHAVIOURS),
        description="Shares of the cold-start traces showing each behaviour (sum 1): reflect (a slip, "
        "'Wait, let me recheck: ...', the fix), verify (the result, then 'Let me verify: ...'), direct.",
    )

    @field_validator("behaviours")
    @classmethod
    def _known_behaviours(cls, v: dict[str, float]) -> dict[str, float]:
        return check_behaviours(v)


class DataConfig(_Section):
    """Dataset building: sources -> Samples -> filters -> shards in the store."""

    name: str = Field("ovr-data", description="Dataset name in the store (datasets/<name>/...).")
    sources: list[DataSourceConfig] = Field(default_factory=list, description="Real-data inputs.")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    prompt_template: str = Field(
        "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
        description="Template every prompt is normalised to; must contain {question}.",
    )
    dedup: bool = Field(True, description="Drop exact duplicates (normalised text).")
    near_dup_threshold: float | None = Field(
        0.9,
        ge=0,
        le=1,
        description="Jaccard similarity of shingles above which items are near-duplicates; None disables.",
    )
    decontaminate_ngram: int | None = Field(
        13, ge=3, description="Drop train items sharing an n-gram of this many words with an eval item; None disables."
    )
    pass_rate_band: tuple[float, float] | None = Field(
        None, description="Keep RL items whose measured pass rate lies in [lo, hi]; None keeps all."
    )
    shard_size: int = Field(10_000, ge=1, description="Samples per parquet shard.")
    cache_dir: str = Field(".ovr/cache/sources", description="Local copies of s3:// sources (reused when complete).")
    workers: int | None = Field(
        None,
        ge=1,
        description="Processes that verify answers (math-verify parsing dominates big builds); "
        "None = the CPUs the pod may use (affinity, cgroup quota), at most one per 512 MB of its memory "
        "limit. Small builds check in-process.",
    )
    spool_dir: str | None = Field(
        None,
        description="Local folder for the build's spool files (about the size of the kept rows, "
        "uncompressed); None = the system temp folder (TMPDIR).",
    )
    seed: int = Field(0, description="Seed of shuffling, mixing and splitting; default: the run's seed.")

    @property
    def dataset_id(self) -> str:
        """The dataset's folder in the store (``datasets/<id>``): ``<name>-<hash>`` of every setting that
        shapes its rows (all but ``workers`` and ``cache_dir``). A build with other settings is another
        dataset, never a rewrite of one a running pipeline reads; the same settings reuse the build."""
        content = self.model_dump(mode="json", exclude={"workers", "cache_dir"})
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}"

    @field_validator("prompt_template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("prompt_template must contain {question}")
        return v


class SFTConfig(_Section):
    """Language-only cold-start SFT (the paper: 5 epochs, batch 640, 64k packed, lr 2e-4)."""

    epochs: float = Field(1.0, gt=0, description="Passes over the SFT set.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    global_batch_size: int = Field(8, ge=1, description="Sequences (packed rows) per optimizer step.")
    micro_batch_size: int = Field(2, ge=1, description="Rows per forward pass per rank.")
    max_seq_len: int = Field(1024, ge=16, description="Tokens per (packed) row.")
    packing: bool = Field(True, description="Pack several samples per row without cross-attention.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    scheduler: Literal["cosine", "constant", "linear"] = Field("cosine", description="LR schedule after warm-up.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    grad_clip: float = Field(1.0, gt=0, description="Max global grad norm.")
    freeze_vision: bool = Field(True, description="Freeze the vision tower.")
    freeze_projector: bool = Field(True, description="Freeze the vision-language merger (projector).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward.")
    mlp_tile_tokens: int | None = Field(
        None,
        ge=1,
        description="Run each decoder MLP over tiles of this many tokens, each checkpointed "
        "(ovr/models/tiling.py); None = untiled.",
    )
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage (0 = plain DDP/CPU).")
    save_every: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    log_every: int = Field(1, ge=1, description="Log metrics every N steps.")
    seed: int = Field(0, description="Training seed (data order, init); default: the run's seed.")
    work_dir: str = Field(
        ".ovr/work",
        description="Local scratch for Trainer checkpoints and the export (<work_dir>/<run>/sft); "
        "a shared volume when training spans several nodes.",
    )
    keep_local_checkpoints: int = Field(
        2,
        ge=1,
        description="Newest checkpoint folders kept on each node's local disk (a resumed one included; "
        "every rank deletes its own partitions of older ones; the store keeps every one).",
    )


class JudgeConfig(_Section):
    """LLM judge (any OpenAI-compatible endpoint): behaviour counts, and grading answers no rule reads."""

    enabled: bool = Field(False, description="Ask a judge model to count behaviours.")
    base_url: str | None = Field(None, description="Judge endpoint (http://host:port/v1).")
    model: str = Field("judge", description="Judge model name.")
    api_key_env: str = Field("OVR_JUDGE_API_KEY", description="Env var with the judge API key.")
    max_concurrency: int = Field(16, ge=1, description="In-flight judge requests.")
    behaviours: list[str] = Field(
        default_factory=lambda: [
            "backtracking",
            "verification",
            "subgoal_setting",
            "backward_chaining",
            "visual_reflection",
            "visual_divide_and_conquer",
            "visual_verification",
            "goal_driven_visual_tracing",
        ],
        description="Behaviours to count (ovr.eval.judge.BEHAVIOURS); visual ones only for image questions.",
    )
    max_responses: int | None = Field(
        None, ge=1, description="Count behaviours in at most this many responses per benchmark; None = all."
    )
    temperature: float = Field(0.0, ge=0, description="Judge sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Max tokens of a judge reply.")
    timeout_s: float = Field(120.0, gt=0, description="Deadline of one judge request.")
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed judge request (connection/5xx).")
    grade_answers: bool = Field(
        False,
        description="Grade answers whose reference no rule reads with this judge, not by string match; needs base_url.",
    )


class EvalConfig(_Section):
    """Benchmarks, avg@k and behaviour analysis."""

    benchmarks: list[str] = Field(default_factory=list, description="Eval set names in the dataset.")
    k: int = Field(16, ge=1, description="Samples per question for avg@k.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    max_tokens: int = Field(256, ge=1, description="Max response tokens.")
    max_questions: int | None = Field(None, ge=1, description="Cap per benchmark (smoke runs).")
    reflection_words: list[str] = Field(
        default_factory=lambda: ["wait,", "recheck", "retry", "alternatively,", "however,"],
        description="ORZ's reflection keywords, counted case-insensitively.",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    benchmark_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Sources forming one benchmark: source -> benchmark (DynaMath's variant splits -> dynamath).",
    )

    @field_validator("benchmark_ids")
    @classmethod
    def _benchmark_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k, b in v.items() if not k.strip() or not b.strip())
        if bad or any(b in v for b in v.values()):
            raise ValueError(
                f"eval.benchmark_ids maps source names to benchmark names; fix the entries {bad or sorted(v)} "
                "(no empty names, and a benchmark name is not itself a mapped source)"
            )
        return v
