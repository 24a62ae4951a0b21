"""Typed configuration for every ovr stage, loaded from ``recipes/*.yaml``.

One recipe file holds one experiment. Precedence, lowest first: the model defaults below, the
recipe YAML, environment variables ``OVR__SECTION__FIELD=value`` (e.g. ``OVR__RL__ACTOR_LR=2e-6``),
then CLI overrides ``--set section.field=value``. Values given as strings by env/CLI are parsed as
YAML scalars/lists (``--set rl.max_response_len_schedule='[[0, 64]]'``). Unknown keys are errors.

>>> cfg = load_config("recipes/tiny-cpu.yaml", overrides=["rl.actor_lr=2e-6"])   # doctest: +SKIP
>>> cfg.rl.actor_lr
2e-06
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AnswerType = Literal["math", "choice", "number", "string"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- infrastructure
class StoreConfig(_Section):
    """Where datasets and checkpoints live."""

    uri: str = Field(".ovr/store", description="Local folder, or s3://bucket/prefix for MinIO/S3.")
    endpoint: str | None = Field(
        None, description="S3 endpoint host:port (e.g. minio.ovr.svc:9000); None for a local folder."
    )
    secure: bool = Field(False, description="Use HTTPS to reach the S3 endpoint.")
    region: str | None = Field(None, description="S3 region, if the server needs one.")
    access_key_env: str = Field("OVR_S3_ACCESS_KEY", description="Env var holding the access key.")
    secret_key_env: str = Field("OVR_S3_SECRET_KEY", description="Env var holding the secret key.")
    credentials_file: str | None = Field(
        None,
        description="Folder of a mounted Kubernetes secret with files access_key/secret_key; "
        "read when the env vars are unset.",
    )
    retries: int = Field(5, ge=0, le=20, description="Retries of a failed S3 call before giving up.")
    backoff_s: float = Field(0.5, gt=0, description="First retry delay; doubles each retry.")
    part_size_mb: int = Field(16, ge=5, description="Multipart upload part size (S3 minimum 5 MiB).")


class TrackingConfig(_Section):
    """MLflow tracking."""

    enabled: bool = Field(True, description="Log params, metrics and artifacts to MLflow.")
    uri: str = Field(
        "sqlite:///.ovr/mlflow.db",
        description="MLflow tracking URI: sqlite:///file.db, a folder, or http://server:5000.",
    )
    experiment: str = Field("ovr", description="MLflow experiment name.")
    run_name: str | None = Field(None, description="Run name; defaults to the recipe name.")
    run_id: str | None = Field(
        None, description="Resume this MLflow run (the pipeline passes one run id to every stage)."
    )


class ModelConfig(_Section):
    """The policy's starting point and how it is loaded."""

    path: str = Field(
        ".ovr/models/tiny",
        description="Local folder or s3://bucket/key of a Qwen2.5-VL checkpoint (save_pretrained layout).",
    )
    build_tiny_if_missing: bool = Field(
        False, description="Build the tiny offline model at `path` when the folder does not exist."
    )
    tiny_seed: int = Field(0, description="Seed of the tiny model, when it is built.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for training (bf16 on GPU, fp32 on CPU)."
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="transformers attention kernel."
    )


# --------------------------------------------------------------------------- stages
class DataSourceConfig(_Section):
    """One input of a dataset build."""

    adapter: str = Field(..., description="Registered adapter name (see `ovr data adapters`).")
    name: str | None = Field(
        None, description="Source name in Sample.source and the manifest; defaults to the adapter name."
    )
    path: str | None = Field(
        None, description="Local path, s3:// URI (save_to_disk, parquet, JSONL, JSON, row folders) or "
        "hf://datasets/ORG/NAME (downloaded once, then read from the store's mirror)."
    )
    hf_config: str | None = Field(
        None, description="Configuration (subset) of an hf:// dataset or a downloaded hub folder, e.g. testmini."
    )
    hf_split: str | None = Field(
        None, description="Split of an hf:// dataset, a downloaded hub folder or a save_to_disk DatasetDict; "
        "None = its only one."
    )
    revision: str | None = Field(None, description="Hub revision (tag, branch or commit) of an hf:// dataset.")
    split: Literal["sft", "rl", "eval"] = Field("rl", description="Which set the samples feed.")
    weight: float = Field(
        1.0, ge=0, description="Mixing weight: keeps round(weight * n) of the source's n filtered items "
        "(<1 subsamples, >1 repeats), which sets its share relative to the other sources."
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
        0.9, ge=0, le=1, description="Jaccard similarity of shingles above which items are near-duplicates; None disables."
    )
    decontaminate_ngram: int | None = Field(
        13, ge=3, description="Drop train items sharing an n-gram of this many words with an eval item; None disables."
    )
    pass_rate_band: tuple[float, float] | None = Field(
        None, description="Keep RL items whose measured pass rate lies in [lo, hi]; None keeps all."
    )
    shard_size: int = Field(10_000, ge=1, description="Samples per parquet shard.")
    cache_dir: str = Field(".ovr/cache/sources", description="Local copies of s3:// sources (reused when complete).")
    workers: int = Field(1, ge=1, description="Processes that verify answers (math-verify parsing dominates big builds).")
    seed: int = Field(0, description="Seed of shuffling, mixing and splitting.")

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
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage (0 = plain DDP/CPU).")
    save_every: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    log_every: int = Field(1, ge=1, description="Log metrics every N steps.")
    seed: int = Field(0, description="Training seed.")
    work_dir: str = Field(
        ".ovr/work",
        description="Local scratch for Trainer checkpoints and the export (<work_dir>/<run>/sft); "
        "a shared volume when training spans several nodes.",
    )
    keep_local_checkpoints: int = Field(
        2, ge=1, description="Checkpoint folders kept on local disk (the store keeps every one)."
    )


class RolloutConfig(_Section):
    """The vLLM rollout servers and sampling."""

    endpoints: list[str] = Field(
        default_factory=list,
        description="Base URLs of vLLM OpenAI servers (http://host:port); empty = start one locally.",
    )
    served_model_name: str = Field("policy", description="Model name the servers answer to.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    max_tokens: int = Field(256, ge=1, description="Default max new tokens per response.")
    max_model_len: int = Field(2048, ge=64, description="vLLM --max-model-len.")
    weight_sync: Literal["folder", "nccl"] = Field(
        "folder", description="How new weights reach the servers (folder reload works everywhere; nccl on GPU)."
    )
    sync_timeout_s: float = Field(300.0, gt=0, description="Deadline of one weight push.")
    request_timeout_s: float = Field(600.0, gt=0, description="Deadline of one generation request.")
    max_concurrency: int = Field(64, ge=1, description="In-flight requests per client.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallelism per replica.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM GPU memory share.")
    cpu_kvcache_gb: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE on CPU servers.")
    python: str = Field(
        ".venv-rollout/bin/python", description="Interpreter of the rollout venv (local servers only)."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="vLLM --dtype (auto = the checkpoint's; vLLM on CPU turns float32 into bfloat16)."
    )
    max_attempts: int = Field(4, ge=1, description="Tries per prompt across replicas before a batch fails.")
    keep_weight_versions: int = Field(2, ge=1, description="Pushed weight folders kept on the shared volume.")
    nccl_master_address: str | None = Field(
        None, description="Address replicas reach the trainer's NCCL rendezvous at (None = this host's name)."
    )
    nccl_master_port: int = Field(29555, ge=1, le=65535, description="Port of the NCCL weight-transfer rendezvous.")


class RewardConfig(_Section):
    """The verifiable reward and the reward service."""

    url: str | None = Field(None, description="Reward service base URL; None = start one locally.")
    name: str = Field("ovr_boxed", description="Registered reward function used for RL.")
    time_limit_s: float = Field(5.0, gt=0, description="Per-item verification time limit.")
    workers: int = Field(2, ge=1, description="Worker processes of the service.")
    format_weight: float = Field(0.0, ge=0, description="Weight of the format reward in `overall`.")
    overlong_buffer: int | None = Field(
        None, ge=1, description="DAPO overlong shaping: penalise the last N tokens before the limit."
    )
    token_env: str = Field("OVR_REWARD_TOKEN", description="Env var of the bearer token, if auth is on.")


class LengthStage(_Section):
    """One stage of the staged max response length."""

    from_step: int = Field(..., ge=0, description="First RL step of the stage.")
    max_tokens: int = Field(..., ge=1, description="Max response tokens from that step on.")


class RLConfig(_Section):
    """Multimodal RL with verifiable rewards (the paper: ORZ-style vanilla PPO with a critic)."""

    algorithm: Literal["ppo", "grpo", "dapo", "dr_grpo", "rloo", "reinforce_pp"] = Field(
        "ppo", description="Preset that picks estimator, loss aggregation and defaults."
    )
    advantage: Literal["gae", "grpo", "dr_grpo", "rloo", "reinforce_pp"] = Field(
        "gae", description="Advantage estimator (registered name)."
    )
    loss_agg: Literal["token_mean", "seq_mean", "seq_sum_norm"] = Field(
        "token_mean", description="How token losses are reduced."
    )
    adv_norm: Literal["batch", "group", "none"] = Field("batch", description="Advantage normalisation.")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(1.0, ge=0, le=1, description="GAE lambda.")
    clip_low: float = Field(0.2, gt=0, description="PPO ratio clip below 1 (epsilon_low).")
    clip_high: float = Field(0.2, gt=0, description="PPO ratio clip above 1 (epsilon_high; DAPO: 0.28).")
    value_clip: float | None = Field(0.2, gt=0, description="Value clipping range; None disables.")
    kl_coef: float = Field(0.0, ge=0, description="KL penalty to the reference model (0 = no ref model).")
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
    mini_batch_size: int | None = Field(
        None, ge=1, description="Responses per forward pass; None = whole batch in one pass."
    )
    max_steps: int = Field(900, ge=1, description="RL steps.")
    max_response_len_schedule: list[LengthStage] = Field(
        default_factory=lambda: [LengthStage(from_step=0, max_tokens=256)],
        description="Staged max response length; the stage with the largest from_step <= step applies.",
    )
    dynamic_sampling: bool = Field(False, description="Drop groups whose rewards are all equal (DAPO).")
    skip_uniform_batches: bool = Field(
        True, description="With a critic, skip the actor update of a batch whose responses all scored the same."
    )
    mask_truncated: bool = Field(
        False, description="Leave responses cut by the length limit out of the loss (DAPO overlong filtering)."
    )
    truncated_reward: float = Field(0.0, description="Reward of a response cut by the length limit.")
    value_head_init: float = Field(
        5 ** 0.5, gt=0,
        description="Critic value head (no bias) initialised kaiming_uniform(a=this): U(-b, b) with "
        "b = sqrt(6 / ((1 + a^2) * hidden)); the papers' 'U(-sqrt5, sqrt5)' is PyTorch's default "
        "Linear init, a = sqrt(5), i.e. b = 1/sqrt(hidden).",
    )
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage for actor and critic.")
    save_every: int = Field(50, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int | None = Field(None, ge=1, description="Keep only the newest N; None keeps all.")
    average_last: int = Field(1, ge=1, description="Final model = uniform average of the last N checkpoints.")
    seed: int = Field(0, description="RL seed.")

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
            "backtracking", "verification", "subgoal_setting", "backward_chaining",
            "visual_reflection", "visual_divide_and_conquer", "visual_verification", "goal_driven_visual_tracing",
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


class RunConfig(_Section):
    """A whole experiment: every stage's settings."""

    name: str = Field("ovr", description="Run name: prefixes store keys and names the MLflow run.")
    seed: int = Field(0, description="Global seed.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where trainers run.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.sft.global_batch_size % self.sft.micro_batch_size:
            raise ValueError("sft.global_batch_size must be a multiple of sft.micro_batch_size")
        longest = max(s.max_tokens for s in self.rl.max_response_len_schedule)
        if self.rollout.max_model_len < longest:
            raise ValueError(
                f"rollout.max_model_len ({self.rollout.max_model_len}) is shorter than the longest "
                f"RL response ({longest})"
            )
        return self


# --------------------------------------------------------------------------- loading
def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else ""


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted}: {key} is not a section")
    node[keys[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> list[str]:
    """``OVR__RL__ACTOR_LR=2e-6`` -> ``rl.actor_lr=2e-6`` (double underscores separate levels)."""
    environ = os.environ if environ is None else environ
    out = []
    for key, value in environ.items():
        if key.startswith("OVR__") and len(key) > 5:
            out.append(key[5:].lower().replace("__", ".") + "=" + value)
    return sorted(out)


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value")
        path, _, raw = item.partition("=")
        _set_path(tree, path.strip(), _parse_scalar(raw))
    return tree


def load_config(
    recipe: str | Path | None = None,
    overrides: list[str] | None = None,
    use_env: bool = True,
) -> RunConfig:
    """Load a recipe YAML (or the defaults), apply env then CLI overrides, validate."""
    tree: dict = {}
    if recipe is not None:
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(f"recipe not found: {path}")
        tree = yaml.safe_load(path.read_text()) or {}
        if not isinstance(tree, dict):
            raise ValueError(f"recipe {path} must be a mapping at the top level")
    apply_overrides(tree, (env_overrides() if use_env else []) + list(overrides or []))
    return RunConfig.model_validate(tree)


RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file path, or a recipe name looked up in ``$OVR_RECIPES_DIR`` or ``recipes/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folder = Path(os.environ.get("OVR_RECIPES_DIR", RECIPES_DIR))
    for candidate in (folder / path, folder / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise FileNotFoundError(f"recipe {name_or_path!r} not found (known in {folder}: {', '.join(known)})")


def dump_config(cfg: RunConfig) -> str:
    """The fully resolved config as YAML (what `ovr config show` prints and runs log)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def flat_params(cfg: RunConfig) -> dict[str, str]:
    """Config flattened to ``section.field -> str`` for MLflow params."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = str(node)[:500]

    walk("", cfg.model_dump(mode="json"))
    return out
