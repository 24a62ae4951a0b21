"""Config sections of the stages: data, cold-start SFT, RL and eval.

Every stage's ``seed`` defaults to the run's top-level ``seed`` (set a stage's own to decouple it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ovr.config.infra import _Section


def _registered(registry, name: str) -> str:
    """``name`` if ``registry`` knows it, else a ValueError listing the known names."""
    if name not in registry:
        raise ValueError(f"unknown {registry.kind} {name!r}; registered: {registry.names()}")
    return name


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
        default_factory=lambda: {"reflect": 0.25, "verify": 0.25, "direct": 0.5},
        description="Shares of the cold-start traces showing each behaviour (sum 1): reflect (a slip, "
        "'Wait, let me recheck: ...', the fix), verify (the result, then 'Let me verify: ...'), direct.",
    )

    @field_validator("behaviours")
    @classmethod
    def _known_behaviours(cls, v: dict[str, float]) -> dict[str, float]:
        from ovr.data.synthetic import check_behaviours  # lazy: the data stage imports the config

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
        2, ge=1, description="Checkpoint folders kept on local disk (the store keeps every one)."
    )


class LengthStage(_Section):
    """One stage of the staged max response length."""

    from_step: int = Field(..., ge=0, description="First RL step of the stage.")
    max_tokens: int = Field(..., ge=1, description="Max response tokens from that step on.")


class RLConfig(_Section):
    """Multimodal RL with verifiable rewards (the paper: ORZ-style vanilla PPO with a critic)."""

    algorithm: str = Field(
        "ppo",
        description="Preset (ovr.rl.presets) that fills the estimator, loss aggregation and "
        "defaults this section leaves unset: ppo, grpo, dapo, dr_grpo, rloo, reinforce_pp, ...",
    )
    advantage: str = Field("gae", description="Advantage estimator, a name registered in ovr.rl.algorithms.ADVANTAGES.")
    loss_agg: str = Field(
        "token_mean", description="Token-loss reduction, a name registered in ovr.rl.algorithms.LOSS_AGGS."
    )
    adv_norm: Literal["batch", "group", "none"] = Field("batch", description="Advantage normalisation.")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(1.0, ge=0, le=1, description="GAE lambda.")
    clip_low: float = Field(0.2, gt=0, description="PPO ratio clip below 1 (epsilon_low).")
    clip_high: float = Field(0.2, gt=0, description="PPO ratio clip above 1 (epsilon_high; DAPO: 0.28).")
    value_clip: float | None = Field(0.2, gt=0, description="Value clipping range; None disables.")
    kl_reward_coef: float = Field(
        0.0,
        ge=0,
        description="Reward-side KL: coef * (log pi - log ref) subtracted from each token's "
        "reward before advantages (token-reward estimators: gae, reinforce_pp). 0 = off.",
    )
    kl_loss_coef: float = Field(
        0.0,
        ge=0,
        description="Loss-side KL: coef * k3(pi || ref) added to the policy loss (GRPO style). "
        "0 = off; a reference model is loaded when either KL coefficient is > 0.",
    )
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus.")
    actor_lr: float = Field(1e-6, gt=0, description="Policy learning rate.")
    critic_lr: float = Field(5e-6, gt=0, description="Critic learning rate.")
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas (both models).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(50, ge=0, description="Linear warm-up steps, then constant.")
    grad_clip: float = Field(1.0, gt=0, description="Max global grad norm.")
    prompts_per_step: int = Field(512, ge=1, description="Prompts sampled per RL step.")
    samples_per_prompt: int = Field(16, ge=1, description="Responses per prompt (n).")
    policy_updates: int = Field(1, ge=1, description="Actor optimizer updates per generation.")
    critic_updates: int = Field(4, ge=0, description="Critic optimizer updates per generation.")
    max_tokens_per_micro: int | None = Field(
        None,
        ge=1,
        description="Token budget of one forward/backward pass per rank: rows (longest first) are "
        "packed into micro-batches of at most this many padded tokens (rows x longest row), one row at least; "
        "None = all of a rank's rows in one pass (tiny CPU runs).",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (actor and critic).")
    mlp_tile_tokens: int | None = Field(
        None,
        ge=1,
        description="Run each decoder MLP over tiles of this many tokens, each checkpointed "
        "(ovr/models/tiling.py: the peak of a long sequence's backward); None = untiled.",
    )
    dist_timeout_s: float = Field(
        1800.0, gt=0, description="Timeout of the training process group's collectives (DeepSpeed's)."
    )
    wait_timeout_s: float = Field(
        4 * 3600.0,
        gt=0,
        description="Timeout of the CPU group where ranks wait for the main rank's rollouts, "
        "weight pushes and checkpoint uploads.",
    )
    max_steps: int = Field(900, ge=1, description="RL steps.")
    max_response_len_schedule: list[LengthStage] = Field(
        default_factory=lambda: [LengthStage(from_step=0, max_tokens=256)],
        description="Staged max response length; the stage with the largest from_step <= step applies.",
    )
    dynamic_sampling: bool = Field(
        False,
        description="DAPO dynamic sampling: drop groups whose rewards are all equal and sample more "
        "prompts until prompts_per_step informative groups are collected.",
    )
    max_generation_rounds: int = Field(
        3,
        ge=1,
        description="Most generation rounds of one step under dynamic_sampling (DAPO's "
        "max_num_gen_batches); the step trains on what it has after the last round.",
    )
    skip_uniform_batches: bool = Field(
        True, description="With a critic, skip the actor update of a batch whose responses all scored the same."
    )
    mask_truncated: bool = Field(
        False, description="Leave responses cut by the length limit out of the loss (DAPO overlong filtering)."
    )
    value_head_init: float = Field(
        5**0.5,
        gt=0,
        description="Critic value head (no bias) initialised kaiming_uniform(a=this): U(-b, b) with "
        "b = sqrt(6 / ((1 + a^2) * hidden)); the papers' 'U(-sqrt5, sqrt5)' is PyTorch's default "
        "Linear init, a = sqrt(5), i.e. b = 1/sqrt(hidden).",
    )
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage for actor and critic.")
    save_every: int = Field(50, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int | None = Field(None, ge=1, description="Keep only the newest N; None keeps all.")
    average_last: int = Field(1, ge=1, description="Final model = uniform average of the last N checkpoints.")
    seed: int = Field(0, description="RL seed (prompt order, critic init, shuffles); default: the run's seed.")

    @field_validator("algorithm")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        from ovr.rl.presets import PRESETS  # lazy: presets import this module

        return _registered(PRESETS, v)

    @field_validator("advantage")
    @classmethod
    def _known_estimator(cls, v: str) -> str:
        from ovr.rl.algorithms import ADVANTAGES

        return _registered(ADVANTAGES, v)

    @field_validator("loss_agg")
    @classmethod
    def _known_aggregation(cls, v: str) -> str:
        from ovr.rl.algorithms import LOSS_AGGS

        return _registered(LOSS_AGGS, v)

    @field_validator("max_response_len_schedule")
    @classmethod
    def _schedule_sorted(cls, v: list[LengthStage]) -> list[LengthStage]:
        steps = [s.from_step for s in v]
        if not v or steps[0] != 0 or steps != sorted(set(steps)):
            raise ValueError("max_response_len_schedule must start at step 0 and increase strictly")
        return v

    def max_tokens_at(self, step: int) -> int:
        """Max response length in force at ``step``."""
        return [s.max_tokens for s in self.max_response_len_schedule if s.from_step <= step][-1]


class JudgeConfig(_Section):
    """LLM judge for behaviour analysis (any OpenAI-compatible endpoint)."""

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
        None, ge=1, description="Judge at most this many responses per benchmark (cost cap); None = all."
    )
    temperature: float = Field(0.0, ge=0, description="Judge sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Max tokens of a judge reply.")
    timeout_s: float = Field(120.0, gt=0, description="Deadline of one judge request.")
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed judge request (connection/5xx).")


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
