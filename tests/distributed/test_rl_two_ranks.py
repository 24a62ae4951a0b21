"""RL at 2 ranks on CPU, the way a multi-GPU pod runs it: ``torchrun --nproc-per-node 2`` (gloo),
DeepSpeed ZeRO-3, rank 0 starting a real vLLM server (rollout venv) and the real reward service.

- the same update on the same rows at 1 and at 2 ranks gives the same advantages, losses, grad
  norms and weights (whole groups per rank, global statistics; ZeRO-3 over gloo);
- a PPO run is killed after a checkpoint and resumed at 2 ranks: the same step, prompt position and
  optimiser partitions come back, each rank's from its own files; the weights pushed to vLLM equal
  the full (gathered) model;
- a GRPO run completes at 2 ranks.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
import yaml

from ovr.config import StoreConfig, load_config
from ovr.store import Kind, Store

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
HERE = "tests/distributed"


def _rows_run(torchrun, tiny_model_dir, out, nproc, *sets):
    args = [f"{HERE}/rows_worker.py", "--model", str(tiny_model_dir), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    torchrun(args, nproc=nproc, timeout=300)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]


@pytest.mark.parametrize(
    "sets",
    [
        ("rl.algorithm=ppo",),  # 4 critic updates: mini-batches of whole groups, text-only ones too
        ("rl.algorithm=grpo", "rl.max_tokens_per_micro=160", "rl.policy_updates=2"),
    ],
    ids=["ppo", "grpo-micro-batches"],
)
def test_one_and_two_ranks_give_the_same_update(torchrun, tiny_model_dir, tmp_path, sets):
    one = _rows_run(torchrun, tiny_model_dir, tmp_path / "one", 1, *sets)[0]
    two = _rows_run(torchrun, tiny_model_dir, tmp_path / "two", 2, *sets)
    assert two[0]["world"] == 2 and sorted(two[0]["groups"] + two[1]["groups"]) == one["groups"]
    assert two[0]["groups"] and two[1]["groups"]  # both ranks trained on whole groups
    assert two[0]["metrics"] == two[1]["metrics"]  # every rank logs the global figures
    for key, value in one["metrics"].items():
        assert two[0]["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for key, value in one["checksum"].items():  # the updated weights
        assert two[0]["checksum"][key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


@pytest.fixture()
def rl_recipe(tiny_model_dir, tmp_path):
    """A small RL recipe with its prompts built into a local store."""
    from ovr.data.build import build_dataset

    def make(name: str, **rl) -> str:
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(
            yaml.safe_dump(
                {
                    "name": name,
                    "model": {"path": str(tiny_model_dir)},
                    "store": {"uri": str(tmp_path / "store")},
                    "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"},
                    "data": {"name": "rl2", "synthetic": {"visual_samples": 12, "text_samples": 0, "eval_samples": 0}},
                    "rollout": {"local_server": {"max_model_len": 512, "dtype": "float32"}, "temperature": 1.0},
                    "rl": {
                        "zero_stage": 3,
                        "prompts_per_step": 3,
                        "samples_per_prompt": 2,
                        "warmup_steps": 1,
                        "actor_lr": 1e-3,
                        "critic_lr": 1e-3,
                        "skip_uniform_batches": False,
                        "max_response_len_schedule": [{"from_step": 0, "max_tokens": 8}],
                        **rl,
                    },
                }
            )
        )
        cfg = load_config(recipe, use_env=False)
        build_dataset(cfg, Store.from_config(cfg.store), progress=False)
        return str(recipe)

    return make


def _wait_for_checkpoint(store: Store, run: str, proc, timeout: float = 400) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = store.latest(run, Kind.RL)
        if latest is not None:
            return latest.step
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.5)
    raise TimeoutError("no checkpoint appeared")


def test_ppo_killed_after_a_checkpoint_resumes_at_two_ranks(torchrun, rl_recipe, tmp_path):
    from ovr.rl.averaging import load_weights

    recipe = rl_recipe("ppo2", algorithm="ppo", critic_updates=2, max_steps=6, save_every=2)
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
        _wait_for_checkpoint(store, "ppo2/t1", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun stops its ranks; rank 0 stops vLLM and the reward service
        proc.wait(timeout=120)
    latest = store.latest("ppo2/t1", Kind.RL)
    files = [f.path for f in latest.files]
    for r in (0, 1):  # every rank's partitions are in the checkpoint
        assert f"actor_optim/ds/zero_pp_rank_{r}_mp_rank_00_optim_states.pt" in files
        assert f"critic_optim/ds/zero_pp_rank_{r}_mp_rank_00_optim_states.pt" in files
    saved = json.loads(store.get_bytes(f"runs/ppo2/t1/rl/step-{latest.step:08d}/state.json"))
    assert saved["world"] == 2 and saved["step"] == latest.step

    # each rank restores its own partitions, the step, the prompt position and the schedule
    torchrun([f"{HERE}/resume_probe.py", "--recipe", recipe, "--out", str(tmp_path / "probe")], timeout=300)
    probes = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for p in probes:
        assert p["resumed_from"] == p["step"] == latest.step and p["optim_equal"]
        assert p["cursor"] == saved["cursor"] and p["weight_version"] == saved["weight_version"]
        assert p["other_ranks_files"] == []  # nothing of the other rank was downloaded
        assert p["weights_files"] == []  # nor the gathered weights: ZeRO-3 restores them from the partitions
        assert p["left_on_disk"] == []  # the download left once restored
        assert p["lr"] == pytest.approx(1e-3)  # past the 1-step warm-up

    done = torchrun(cli, timeout=600)
    assert "rl finished at step 6" in done.stdout
    assert [m.step for m in store.checkpoints("ppo2/t1", Kind.RL)] == [6]  # keep_checkpoints = average_last = 1
    export = store.latest("ppo2/t1", Kind.RL_EXPORT)
    assert export.step == 6

    # the replicas were last given exactly the full model of the final step
    pushed = sorted((tmp_path / "w").glob("v[0-9]*"))[-1]
    final = store.download_checkpoint(
        "ppo2/t1", 6, tmp_path / "final", Kind.RL, select=lambda p: p.startswith("actor/")
    )
    a, b = load_weights(pushed), load_weights(final / "actor")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(t.numel() > 1 for k, t in a.items() if k.endswith("weight"))  # gathered, not ZeRO-3 stubs


def test_grpo_runs_at_two_ranks(torchrun, rl_recipe, tmp_path):
    recipe = rl_recipe("grpo2", algorithm="grpo", max_steps=2, save_every=2)
    done = torchrun(["-m", "ovr", "rl", "--recipe", recipe, "--no-progress", "--run-id", "g1"], timeout=600)
    assert "rl finished at step 2" in done.stdout
    store = Store.from_config(StoreConfig(uri=str(tmp_path / "store")))
    assert store.latest("grpo2/g1", Kind.RL_EXPORT).step == 2
    assert not any("critic" in f.path for f in store.latest("grpo2/g1", Kind.RL).files)
