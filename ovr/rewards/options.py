"""Reward options carried by ``ScoreItem.options`` (validated; unknown keys are rejected).

>>> RewardOptions.model_validate({"format_weight": 0.5}).format_weight
0.5
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ovr.rewards.extract import REFLECTION_WORDS


class RewardOptions(BaseModel):
    """Knobs shared by the registered rewards; each reward documents which ones it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_weight: float | None = Field(
        None, ge=0, description="Weight of the format reward added to `overall`; None = the reward's default."
    )
    overlong_buffer: int | None = Field(
        None, ge=1, description="DAPO overlong shaping: penalise responses within this many tokens of the limit."
    )
    overlong_penalty: float = Field(1.0, ge=0, description="Penalty at the limit (linear over the buffer).")
    truncated_reward: float = Field(
        0.0, description="Base `overall` of a response cut by the length limit (overlong shaping is added)."
    )
    rel_tol: float = Field(1e-4, ge=0, description="Relative tolerance of the `number` checker.")
    abs_tol: float = Field(1e-8, ge=0, description="Absolute tolerance of the `number` checker.")
    float_rounding: int = Field(6, ge=0, le=16, description="Decimals math-verify rounds floats to.")
    think_tag: str = Field("think", min_length=1, description="Reasoning tag of `think_answer`'s format.")
    answer_tag: str = Field("answer", min_length=1, description="Answer tag of `think_answer`'s format.")
    reflection_words: tuple[str, ...] = Field(
        REFLECTION_WORDS, description="Words counted into `reflection` (reported, never rewarded)."
    )

    @model_validator(mode="after")
    def _tags_differ(self) -> RewardOptions:
        if self.think_tag == self.answer_tag:
            raise ValueError("think_tag and answer_tag must differ")
        return self
