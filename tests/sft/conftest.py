"""Fixtures of the SFT tests: a config factory on temporary folders, samples, one shared trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainerCallback

from ovr.config import load_config
from ovr.context import RunContext
from ovr.data.synthetic import text_samples, visual_samples
from ovr.progress import PROGRESS_ENV
from ovr.schema import Message, Sample

REPO = Path(__file__).resolve().parents[2]
TEST_RUN = "t1"  # the run id the SFT tests train under (runs/<name>/t1 in their stores)
PROGRESS_NAME = "progress.jsonl"  # beside the shared run's store


@pytest.fixture
def make_cfg(tmp_path, tiny_model_dir):
    """``make_cfg(name, *overrides)``: the tiny recipe on this test's folders, small and fast."""

    def make(name: str, *overrides: str, root: Path | None = None):
        root = root or tmp_path
        return load_config(
            REPO / "recipes/tiny-cpu.yaml",
            [
                f"name={name}",
                f"model.path={tiny_model_dir}",
                "model.build_tiny_if_missing=false",
                f"store.uri={root / 'store'}",
                f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
                f"sft.work_dir={root / 'work'}",
                "sft.max_seq_len=256",
                "sft.global_batch_size=4",
                "sft.micro_batch_size=2",
                "sft.warmup_ratio=0.1",
                *overrides,
            ],
            use_env=False,
        )

    return make


@pytest.fixture(scope="session")
def sft_samples() -> list[Sample]:
    return text_samples(240, seed=0)


@pytest.fixture(scope="session")
def image_sft_sample() -> Sample:
    """A multimodal SFT sample: a procedural image task with a short answer turn."""
    s = visual_samples(1, seed=0)[0]
    reply = f"I look at the picture.\nThe answer is \\boxed{{{s.answer}}}."
    return s.model_copy(update={"split": "sft", "messages": [Message(role="assistant", content=reply)]})


class StopBeforeStep(TrainerCallback):
    """Interrupt a run at the start of optimizer step ``step``, as a killed pod would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step + 1 == self.step:
            raise KeyboardInterrupt(f"interrupted before step {self.step}")


@pytest.fixture
def stop_before():
    """``stop_before(step)``: a callback interrupting a run at that step."""
    return StopBeforeStep


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_model_dir, sft_samples):
    """One short real run of the tiny recipe (shared by the learning, freezing and export tests)."""
    from ovr.sft.train import run_sft

    root = tmp_path_factory.mktemp("sft-run")
    cfg = load_config(
        REPO / "recipes/tiny-cpu.yaml",
        [
            "name=sft-learn",
            f"model.path={tiny_model_dir}",
            f"store.uri={root / 'store'}",
            f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
            f"sft.work_dir={root / 'work'}",
            "sft.max_seq_len=256",
            "sft.max_steps=40",
            "sft.save_every=20",
        ],
        use_env=False,
    )
    # as under a local pipeline run: each step also goes to the progress file (test_train.py reads it)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PROGRESS_ENV, str(root / PROGRESS_NAME))
        result = run_sft(cfg, RunContext.new(cfg.name, TEST_RUN), samples=sft_samples, resume="never", progress=False)
    return cfg, result
