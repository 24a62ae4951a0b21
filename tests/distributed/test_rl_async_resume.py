"""Async RL killed and resumed at 2 ranks (``torchrun``, ZeRO-3, a real vLLM server and reward service
started by rank 0): the checkpoint keeps the queue of generated, untrained groups, and the resumed
run trains exactly those groups next. Generation on vLLM CPU is not deterministic, so what is
compared is the saved queue with what the resumed run trained (the next checkpoint's log), not a
second generation."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from ovr.config import StoreConfig, load_config
from ovr.store import Kind, Store, step_prefix

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def _recipe(tiny_model_dir, tmp_path) -> str:
    from ovr.data.build import build_dataset

    recipe = tmp_path / "async2.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "async2",
                "model": {"path": str(tiny_model_dir)},
                "store": {"uri": str(tmp_path / "store")},
                "tracking": {"enabled": False},
                "data": {"name": "a2", "synthetic": {"visual_samples": 24, "text_samples": 0, "eval_samples": 0}},
                "rollout": {"local_server": {"max_model_len": 512, "dtype": "float32"}, "temperature": 1.0},
                "rl": {
                    "algorithm": "ppo",
                    "critic_updates": 2,
                    "zero_stage": 3,
                    "prompts_per_step": 3,
                    "samples_per_prompt": 2,
                    "warmup_steps": 1,
                    "actor_lr": 1e-3,
                    "critic_lr": 1e-3,
                    "vision_lr": 3e-3,  # two optimiser groups, partitioned, saved and restored
                    "skip_uniform_batches": False,
                    "max_response_len_schedule": [{"from_step": 0, "max_tokens": 8}],
                    "max_staleness": 2,
                    "max_steps": 4,
                    "save_every": 2,
                },
            }
        )
    )
    cfg = load_config(recipe, use_env=False)
    build_dataset(cfg, Store.from_config(cfg.store), progress=False)
    return str(recipe)


def test_async_ppo_killed_with_a_queue_trains_the_saved_groups_next_at_two_ranks(torchrun, tiny_model_dir, tmp_path):
    from ovr.rl import async_queue as Q

    recipe = _recipe(tiny_model_dir, tmp_path)
    store = Store.from_config(StoreConfig(uri=str(tmp_path / "store")))
    cli = [
        "-m",
        "ovr",
        "rl",
        "--recipe",
        recipe,
        "--weights-dir",
        str(tmp_path / "w"),
        "--no-progress",
        "--run-id",
        "t1",
    ]
    proc = torchrun.start(cli, log=tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 600
        while store.latest("async2/t1", Kind.RL) is None:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun stops its ranks, rank 0 its servers; nothing more is saved
        proc.wait(timeout=120)
    assert store.latest("async2/t1", Kind.RL).step == 2
    saved = Q.load(store.get_bytes(f"{step_prefix('async2/t1', 2, Kind.RL)}/{Q.FILE}"))
    queued = Q.queued_records(saved)
    print(f"\nqueue at the checkpoint: steps {[r['step'] for r in queued]}")
    assert queued and queued[0]["step"] == 2 and all(r["groups"] for r in queued)  # generated ahead, not trained
    assert [r["step"] for r in saved.trained] == [0, 1] and saved.policy_version == 2

    done = torchrun(cli, timeout=900)
    assert "rl finished at step 4" in done.stdout
    after = Q.load(store.get_bytes(f"{step_prefix('async2/t1', 4, Kind.RL)}/{Q.FILE}"))
    trained = {r["step"]: r for r in after.trained}
    assert sorted(trained) == [2, 3]
    for record in queued:  # the resumed run trained exactly the groups the checkpoint held, in order
        assert trained[record["step"]] == record
