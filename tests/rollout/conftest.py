"""Fixtures of the rollout tests: sample prompts, and two real vLLM replicas shared by the module."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from ovr.config import LocalServerConfig, RolloutConfig
from ovr.schema import ImageRef, Sample


def png(color: tuple[int, int, int]) -> ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", (112, 112), color).save(buf, "PNG")
    return ImageRef.from_bytes(buf.getvalue())


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    """Three image+text prompts (one with text on both sides of the image) and one text prompt."""
    out = [
        Sample(
            id=f"img{i}",
            source="test",
            split="rl",
            modality="image",
            prompt=f"<image>What is {i} + 2?",
            images=[png((60 * i, 120, 200 - 50 * i))],
            answer=str(i + 2),
        )
        for i in range(2)
    ]
    out.append(
        Sample(
            id="img-mid",
            source="test",
            split="rl",
            modality="image",
            prompt="Look:\n<image>\nHow many sides?",
            images=[png((10, 200, 10))],
            answer="4",
        )
    )
    out.append(Sample(id="text", source="test", split="rl", prompt="Compute 3 * 4.", answer="12"))
    return out


@pytest.fixture(scope="session")
def rollout_cfg() -> RolloutConfig:
    """float32 serving so vLLM and HF agree to float rounding on the tiny model."""
    return RolloutConfig(local_server=LocalServerConfig(dtype="float32", max_model_len=1024), max_attempts=4)
