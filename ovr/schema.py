"""The data contract shared by every stage and service.

Stages and services exchange these pydantic models (and their JSON): a data build writes
``Sample`` rows; the rollout client returns ``Completion`` objects grouped in a ``RolloutBatch``;
the reward service takes a ``ScoreRequest`` and answers a ``ScoreResponse``; checkpoints are
described by ``CheckpointManifest``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

AnswerType = Literal["math", "choice", "number", "string"]
Modality = Literal["text", "image"]
Split = Literal["sft", "rl", "eval"]
FinishReason = Literal["stop", "length", "abort", "error"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- samples
class ImageRef(_Model):
    """An image carried by a sample: inline bytes (PNG/JPEG) or a key in the store."""

    data: bytes | None = Field(None, description="Encoded image bytes (PNG/JPEG).")
    key: str | None = Field(None, description="Store key of the encoded image, when not inline.")
    sha256: str | None = Field(None, description="Hash of the encoded bytes.")

    @field_validator("key")
    @classmethod
    def _one_source(cls, v, info):
        if v is None and info.data.get("data") is None:
            raise ValueError("an image needs inline data or a store key")
        return v

    @field_serializer("data", when_used="json")
    def _b64(self, v: bytes | None):
        return None if v is None else base64.b64encode(v).decode()

    @field_validator("data", mode="before")
    @classmethod
    def _from_b64(cls, v):
        if isinstance(v, str):
            return base64.b64decode(v)
        return v

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageRef:
        return cls(data=data, sha256=hashlib.sha256(data).hexdigest())

    def data_url(self) -> str:
        """``data:image/...;base64,...`` for OpenAI-style chat requests (inline images only)."""
        if self.data is None:
            raise ValueError("image is stored by key; resolve it through the store first")
        mime = "image/jpeg" if self.data[:3] == b"\xff\xd8\xff" else "image/png"
        return f"data:{mime};base64,{base64.b64encode(self.data).decode()}"


class Message(_Model):
    """A chat turn; images are referenced by index into ``Sample.images`` through
    ``<image>`` placeholders in the order they appear."""

    role: Literal["system", "user", "assistant"]
    content: str


class Sample(_Model):
    """One training or evaluation item, whatever its source."""

    id: str = Field(..., description="Stable id: source + source-side id or content hash.")
    source: str = Field(..., description="Adapter/source name, e.g. geometry3k.")
    split: Split = Field(..., description="sft | rl | eval.")
    modality: Modality = Field("text", description="text, or image when images are attached.")
    prompt: str = Field(..., description="User prompt after template normalisation; '<image>' marks images.")
    messages: list[Message] | None = Field(
        None, description="Full conversation for SFT (user + assistant turns); None for RL/eval prompts."
    )
    images: list[ImageRef] = Field(default_factory=list, description="Images in prompt order.")
    answer: str = Field(..., description="Reference answer (checked by the reward functions).")
    answer_type: AnswerType = Field("math", description="Chooses the checker: math, choice, number, string.")
    choices: list[str] | None = Field(None, description="Options for choice questions (A, B, ... order).")
    subject: str | None = Field(None, description="Subject/category for per-subject tables.")
    difficulty: float | None = Field(None, description="Source difficulty level, if any.")
    pass_rate: float | None = Field(None, ge=0, le=1, description="Measured pass rate of the policy.")
    provenance: dict[str, Any] = Field(default_factory=dict, description="Source file, row, license...")

    @model_validator(mode="after")
    def _modality_matches_images(self) -> Sample:
        if (self.modality == "image") != bool(self.images):
            raise ValueError("modality must be 'image' exactly when images are attached")
        if self.answer_type == "choice" and not self.choices:
            raise ValueError("choice samples need their choices")
        return self


# --------------------------------------------------------------------------- rollouts
class Completion(_Model):
    """One sampled response."""

    text: str
    token_ids: list[int] = Field(default_factory=list, description="Completion token ids.")
    logprobs: list[float] = Field(default_factory=list, description="Sampler log-prob of each token.")
    finish_reason: FinishReason = "stop"
    weight_version: int = Field(0, description="Policy weight version the server sampled with (the oldest, async).")
    weight_version_max: int | None = Field(
        None, description="Async: newest weight version whose tokens the response may hold (a push mid-request)."
    )

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class RolloutGroup(_Model):
    """All responses to one prompt."""

    sample_id: str
    prompt_token_ids: list[int] = Field(default_factory=list)
    completions: list[Completion]


class RolloutBatch(_Model):
    groups: list[RolloutGroup]


# --------------------------------------------------------------------------- rewards
class ScoreItem(_Model):
    """One response to score."""

    response: str = Field(..., description="The model's full response text.")
    reference: str = Field(..., description="Reference answer.")
    answer_type: AnswerType = Field("math", description="Which checker compares the answers.")
    reward: str = Field("ovr_boxed", description="Registered reward function name.")
    truncated: bool = Field(False, description="The response hit the length limit (scores 0 accuracy).")
    choices: list[str] | None = Field(None, description="Options of a choice question.")
    response_tokens: int | None = Field(None, ge=0, description="Length in tokens (overlong shaping).")
    max_tokens: int | None = Field(None, ge=1, description="The length limit in force (overlong shaping).")
    options: dict[str, Any] = Field(default_factory=dict, description="Reward-specific options.")


class ScoreResult(_Model):
    """Typed result of a reward function."""

    overall: float = Field(..., description="The scalar the RL loop optimises.")
    accuracy: float = Field(..., description="1 if the extracted answer matches the reference.")
    format: float = Field(0.0, description="Format reward component.")
    extracted: str | None = Field(None, description="The answer extracted from the response.")
    grading: Literal["rule", "string", "ungraded"] | None = Field(
        None, description="How the reference was compared: rule checker, normalised string match, or not at all."
    )
    timed_out: bool = Field(False, description="Verification exceeded its time limit (scored 0).")
    error: str | None = Field(None, description="Why scoring failed, if it did.")
    reflection: dict[str, int] = Field(default_factory=dict, description="ORZ reflection word counts.")
    extra: dict[str, float] = Field(default_factory=dict, description="Other named components.")


class ScoreRequest(_Model):
    items: list[ScoreItem]


class ScoreResponse(_Model):
    results: list[ScoreResult]


# --------------------------------------------------------------------------- checkpoints
class FileEntry(_Model):
    path: str = Field(..., description="Path relative to the checkpoint root.")
    size: int = Field(..., ge=0)
    sha256: str


class CheckpointManifest(_Model):
    """Written last: its presence is what makes a checkpoint visible."""

    run: str
    step: int = Field(..., ge=0)
    kind: str = Field("checkpoint", description="checkpoint | export | dataset ...")
    files: list[FileEntry]
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: float = Field(..., description="Unix time of the commit.")


# --------------------------------------------------------------------------- stage results
class StageResult(_Model):
    """What a training stage (SFT, RL) hands to the next, whether it ran in the task's pod or as a
    multi-node job: the store prefix of its exported model, its last step, its final metrics."""

    export_prefix: str | None = Field(..., description="Store prefix of the exported model; None if unfinished.")
    global_step: int = Field(..., ge=0, description="Optimizer steps done (SFT) or RL steps done.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Final metrics (final_loss, reward_mean...).")

    @classmethod
    def from_manifest(cls, prefix: str, manifest: CheckpointManifest) -> StageResult:
        """The result recorded in an export's manifest (its metadata carries the metrics)."""
        metrics = {k: float(v) for k, v in manifest.metadata.get("metrics", {}).items() if v is not None}
        return cls(export_prefix=prefix, global_step=manifest.step, metrics=metrics)
