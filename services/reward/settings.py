"""Settings of the reward service, read from ``OVR_REWARD_*`` environment variables.

>>> RewardSettings(workers=4).workers
4
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RewardSettings(BaseSettings):
    """Reward service configuration (env prefix ``OVR_REWARD_``, e.g. ``OVR_REWARD_WORKERS=16``)."""

    model_config = SettingsConfigDict(env_prefix="OVR_REWARD_", extra="forbid")

    workers: int = Field(2, ge=1, description="Verifier worker processes.")
    time_limit_s: float = Field(5.0, gt=0, description="Per-item verification time limit; over it -> 0, timed_out.")
    chunk_size: int = Field(16, ge=1, description="Items sent to a worker at once (the limit stays per item).")
    memory_limit_mb: int | None = Field(
        2048, ge=256, description="Address-space limit of each worker (None = unlimited)."
    )
    spare_workers: int = Field(1, ge=0, description="Warm stand-by workers that replace a killed one at once.")
    start_method: Literal["forkserver", "spawn", "fork"] = Field(
        "forkserver", description="How worker processes are started."
    )
    max_batch_items: int = Field(4096, ge=1, description="Most items in one request (more -> 413).")
    max_body_bytes: int = Field(64 * 2**20, ge=1024, description="Largest request body (more -> 413).")
    max_item_chars: int = Field(2_000_000, ge=1, description="Longest response/reference in characters (more -> 422).")
    max_pending_items: int = Field(
        16384, ge=1, description="Bound of the queue of items waiting for a worker (full -> 429)."
    )
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 429 and 503 answers.")
    token: SecretStr | None = Field(None, description="Bearer token required on /v1/score; None = no auth.")
    token_file: Path | None = Field(None, description="File holding the token (a mounted secret).")
    log_level: str = Field("info", description="Uvicorn/app log level.")

    @model_validator(mode="after")
    def _read_token_file(self) -> RewardSettings:
        if self.token_file is not None:
            if not self.token_file.is_file():
                raise ValueError(f"token_file {self.token_file} does not exist")
            text = self.token_file.read_text().strip()
            if not text:
                raise ValueError(f"token_file {self.token_file} is empty")
            self.token = SecretStr(text)
        return self

    def required_token(self) -> str | None:
        """The bearer token clients must present, or None when auth is off."""
        return self.token.get_secret_value() if self.token is not None else None
