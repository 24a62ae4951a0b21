"""Config sections of the infrastructure a run uses: store, tracking, model, rollout and reward.

Who owns what: on a cluster the rollout replicas and the reward service are the Helm chart's
Deployments, shared by runs. The chart's values own their serving settings (vLLM's
``--max-model-len``, ``--tensor-parallel-size``, GPU memory share, dtype; the reward service's
workers and time limit) and publish what a trainer must know about them (endpoints, served model
name, weight sync mode, tensor parallel size, weights folder) to the pipeline's pods as
``OVR__ROLLOUT__*`` variables, which override the recipe. ``rollout.local_server`` holds the
settings of the one vLLM server a local run starts itself; the reward service a local run starts
takes its settings from ``OVR_REWARD_*`` (``services/reward/settings.py``), as the chart's does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def registered(registry, name: str) -> str:
    """``name`` if ``registry`` knows it, else a ValueError listing the known names."""
    if name not in registry:
        raise ValueError(f"unknown {registry.kind} {name!r}; registered: {registry.names()}")
    return name


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
    attn_implementation: Literal["varlen", "sdpa", "eager", "flash_attention_2"] = Field(
        "varlen",
        description="Attention of the trained models: varlen = ovr's padding-free attention over packed "
        "micro-batches (torch varlen_attn on CUDA, per-row SDPA on CPU; no [L, L] mask), or a transformers kernel.",
    )
    max_pixels: int | None = Field(
        1280 * 28 * 28,
        ge=56 * 56,
        description="Most pixels of one image after the processor's resize (Qwen2.5-VL: 784 per image token, "
        "so the default bounds an image at 1280 tokens); the trainer's processor and the replicas' (vLLM "
        "--mm-processor-kwargs) use min(this, the checkpoint's own); None = the checkpoint's setting.",
    )


class LocalServerConfig(_Section):
    """The vLLM server a local run starts itself when ``rollout.endpoints`` is empty (CPU engine).
    Cluster replicas take these settings from the chart's ``rollout.*`` values instead."""

    max_model_len: int = Field(2048, ge=64, description="vLLM --max-model-len (prompt + longest response).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="vLLM --dtype (auto = the checkpoint's; vLLM on CPU turns float32 into bfloat16)."
    )
    cpu_kvcache_gb: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE of the CPU engine.")
    python: str = Field(".venv-rollout/bin/python", description="Interpreter of the rollout venv.")
    cores: Literal["auto", "split", "shared"] = Field(
        "auto",
        description="How the local servers and the RL trainer beside them share this machine's cores. "
        "'split': the rollout server (its engine's OpenMP threads too) and the reward service run on the upper "
        "half of the cores this process may use, the trainer on the rest (its torch threads sized to match), "
        "so generation overlapping training (async RL) does not oversubscribe them (unpinned on 2 cores, the "
        "demo's async RL trained 3x and generated 6x slower than its sync RL); 'shared': no pinning (sync "
        "RL: the trainer has every core while the server waits); 'auto': split when rl.max_staleness > 0 on "
        "a single trainer process with >= 2 cores, else shared. Eval stages never split.",
    )


class RolloutConfig(_Section):
    """How the trainer and the evaluator reach the vLLM rollout replicas, and how they sample."""

    endpoints: list[str] = Field(
        default_factory=list,
        description="Base URLs of vLLM OpenAI servers (http://host:port); empty = start one locally.",
    )
    served_model_name: str = Field("policy", description="Model name the servers answer to.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature of RL rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of RL rollouts.")
    weight_sync: Literal["folder", "nccl"] = Field(
        "folder", description="How new weights reach the servers (folder reload works everywhere; nccl on GPU)."
    )
    weights_dir: str | None = Field(
        None,
        description="Folder shared with the replicas that folder pushes write to (on a cluster: the "
        "claim both mount); None = a fresh local folder, for servers this run starts.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="Tensor-parallel ranks per replica (NCCL weight transfer talks to each)."
    )
    sync_timeout_s: float = Field(300.0, gt=0, description="Deadline of one weight push.")
    progress_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Longest silence of a streamed generation (no token) while its replica generates "
        "nothing either; then the attempt fails and goes to another replica (no whole-request deadline).",
    )
    stream_interval: int = Field(
        64,
        ge=1,
        le=4096,
        description="Tokens per streamed chunk of each response (vLLM's per-request stream_interval).",
    )
    poll_interval_s: float = Field(
        5.0, gt=0, description="How often the client checks every replica's health, version and progress."
    )
    min_tokens: int = Field(
        0,
        ge=0,
        description="RL rollouts: vLLM's min_tokens (no end of sequence before this many tokens, capped at the "
        "step's max); 0 = off. Benchmarks use it to fix the generation length.",
    )
    max_concurrency: int = Field(64, ge=1, description="In-flight requests per client.")
    max_attempts: int = Field(4, ge=1, description="Tries per prompt across replicas before a batch fails.")
    keep_weight_versions: int = Field(2, ge=1, description="Pushed weight folders kept on the shared volume.")
    nccl_master_address: str | None = Field(
        None, description="Address replicas reach the trainer's NCCL rendezvous at (None = this host's name)."
    )
    nccl_master_port: int = Field(29555, ge=1, le=65535, description="Port of the NCCL weight-transfer rendezvous.")
    token_env: str = Field(
        "OVR_ROLLOUT_TOKEN", min_length=1, description="Env var of the servers' bearer token (unset = none sent)."
    )
    lease_wait_s: float = Field(
        600.0,
        ge=0,
        description="How long a run waits for the install's replicas while another run holds their "
        "lease (ovr/k8s/lease.py) before it fails naming that run; 0 fails at once.",
    )
    lease_duration_s: int = Field(
        300,
        ge=30,
        description="A lease not renewed for this long is free again (its holder died); renewed every third.",
    )
    local_server: LocalServerConfig = Field(default_factory=LocalServerConfig)


class RewardConfig(_Section):
    """The verifiable reward: which function, its options, and where the reward service is."""

    url: str | None = Field(None, description="Reward service base URL; None = start one locally.")
    name: str = Field("ovr_boxed", description="Registered reward function used for RL and eval.")
    format_weight: float = Field(0.0, ge=0, description="Weight of the format reward in `overall`.")
    overlong_buffer: int | None = Field(
        None, ge=1, description="DAPO overlong shaping: penalise responses within N tokens of the limit."
    )
    overlong_penalty: float = Field(1.0, ge=0, description="Overlong penalty at the limit (linear over the buffer).")
    truncated_reward: float = Field(
        0.0,
        description="Base reward of a response cut by the length limit (the paper: 0); overlong "
        "shaping, when on, is added to it.",
    )
    token_env: str = Field("OVR_REWARD_TOKEN", description="Env var of the bearer token, if auth is on.")
    timeout_s: float = Field(600.0, gt=0, description="Deadline of one scoring call (a whole batch).")
    max_request_bytes: int = Field(
        32 * 2**20,
        ge=1024,
        description="Largest request body the client sends (JSON bytes); keep it under the service's "
        "body limit (OVR_REWARD_MAX_BODY_BYTES, 64 MiB by default), which answers 413 above it.",
    )
