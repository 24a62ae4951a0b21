"""Fixtures of the RL tests: the tiny model's processor and procedural visual prompts."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="session")
def visual(processor):
    from ovr.data.synthetic import visual_samples

    return visual_samples(6, seed=3, tasks=["count_shapes", "bar_chart"])


@pytest.fixture()
def actor(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
