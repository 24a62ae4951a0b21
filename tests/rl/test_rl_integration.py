"""RL end to end on CPU: the tiny Qwen2.5-VL, a real vLLM server (rollout venv), a real reward
service (uvicorn), MLflow on sqlite and a local store. One server of each for the whole module."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def servers(tiny_model_dir, rollout_python, weights_dir):
    """vLLM with its bearer token on (local_server generates one and exports it in OVR_ROLLOUT_TOKEN,
    where the trainer's rollout client and weight sync read it) and the reward service."""
    import httpx

    from ovr.config import LocalServerConfig, RolloutConfig
    from services.reward.server import local_server as reward_server
    from services.rollout.auth import MIDDLEWARE
    from services.rollout.launch import local_server as rollout_server

    rcfg = RolloutConfig(local_server=LocalServerConfig(max_model_len=512, python=str(rollout_python)))
    with rollout_server(tiny_model_dir, rcfg, weights_dir=weights_dir) as vllm, reward_server(workers=1) as reward:
        assert MIDDLEWARE in vllm.cmd and httpx.get(vllm.url + "/weight_info").status_code == 401
        yield [vllm.url], reward.url


def _cfg(tmp_path, tiny_model_dir, name, servers, weights_dir, *extra):
    """A small RL config pointed at the module's servers (what local_services would fill in)."""
    from ovr.config import load_config

    endpoints, reward_url = servers
    return load_config(
        None,
        [
            f"name={name}",
            f"model.path={tiny_model_dir}",
            f"store.uri={tmp_path}/store",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            f"rollout.endpoints={endpoints}",
            f"rollout.weights_dir={weights_dir}",
            f"reward.url={reward_url}",
            "rl.prompts_per_step=4",
            "rl.samples_per_prompt=4",
            "rl.warmup_steps=0",
            "rl.actor_lr=1e-3",
            "rl.critic_lr=1e-3",
            "rl.max_response_len_schedule=[{from_step: 0, max_tokens: 12}, {from_step: 2, max_tokens: 16}]",
            *extra,
        ],
        use_env=False,
    )


def _scratch(tmp_path, monkeypatch):
    """An empty folder standing for the pod's (the machine's) temp dir, where runs make their scratch."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def _run(cfg):
    """The run a test trains (and resumes) in: the config's servers, a fixed id."""
    from ovr.context import RunContext

    return RunContext.for_config(cfg, "t1")


def _weights(folder):
    """Tensors of a model folder keyed by name without the wrapper prefix (the saved layout varies)."""
    from ovr.rl.averaging import load_weights

    return {
        k.replace("model.language_model.", "model.").removeprefix("model."): v for k, v in load_weights(folder).items()
    }


def test_ppo_runs_checkpoints_resumes_and_pushes_weights(servers, tiny_model_dir, weights_dir, tmp_path, monkeypatch):
    from ovr.data.synthetic import visual_samples
    from ovr.progress import PROGRESS_ENV, read_events
    from ovr.rl.state import CHECKPOINT_KIND, EXPORT_KIND
    from ovr.rl.trainer import run_rl
    from ovr.rollout.weights import server_versions
    from ovr.store import Store
    from ovr.tracking import Tracker

    endpoints, _reward_url = servers
    samples = visual_samples(8, seed=0)
    cfg = _cfg(
        tmp_path,
        tiny_model_dir,
        "rl-ppo",
        servers,
        weights_dir,
        "rl.max_steps=3",
        "rl.save_every=2",
        "rl.average_last=2",
        "rl.skip_uniform_batches=false",
    )  # the random model scores 0
    start = server_versions(endpoints)[0]

    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "progress.jsonl"))  # as under a local pipeline run
    scratch = _scratch(tmp_path, monkeypatch)
    first = run_rl(cfg, _run(cfg), samples=samples, progress=False, stop_after=2)
    assert list(scratch.iterdir()) == []  # the checkpoint is in the store, not left on the disk
    events, offset = read_events(tmp_path / "progress.jsonl")
    assert [(e.stage, e.step, e.total, e.start) for e in events] == [("rl", 1, 3, 0), ("rl", 2, 3, 0)]
    assert [e.metrics["reward_mean"] for e in events] == [h["reward_mean"] for h in first.history]
    assert first.global_step == 2 and first.export_prefix is None and first.checkpoint_steps == [2]
    assert server_versions(endpoints)[0] == start + 3  # the initial weights, then one push per step
    h = first.history[0]
    for key in (
        "reward_mean",
        "reward_std",
        "accuracy",
        "response_len_mean",
        "response_len_max",
        "truncation_rate",
        "clip_frac",
        "approx_kl",
        "entropy",
        "value_loss",
        "explained_variance",
        "adv_mean",
        "adv_std",
        "reflection/total",
        "rollout_seconds",
        "reward_seconds",
        "train_seconds",
        "sync_seconds",
        "tokens_per_s",
        "weight_version_lag_mean",
        "logprob_drift",
        "behaviour/image/responses",
        "behaviour/image/reflection",
        "behaviour/image/verification",
        "behaviour/image/backtracking",
    ):
        assert key in h, key
    assert h["weight_version_lag_max"] == 0 and h["max_tokens"] == 12
    # trainer and vLLM agree on tokens, images and weights (a shifted or mis-imaged row drifts by ~1)
    assert h["logprob_drift"] < 1e-2

    store = Store.from_config(cfg.store)
    ckpt = store.checkpoints(_run(cfg).key, CHECKPOINT_KIND)
    assert [m.step for m in ckpt] == [2]
    assert {
        "actor/model.safetensors",
        "critic/critic.safetensors",
        "actor_optim/optim.pt",
        "critic_optim/optim.pt",
        "state.json",
        "rng.pt",
    } <= {f.path for f in ckpt[0].files}

    resumed = run_rl(cfg, _run(cfg), samples=samples, progress=False)
    events, _ = read_events(tmp_path / "progress.jsonl", offset)
    assert [(e.step, e.start) for e in events if not e.note] == [(3, 2)]  # the rate counts its own step
    assert [e.note for e in events if e.note] == ["resumed run t1 from its checkpoint at step 2 of 3"]
    assert resumed.run_id == first.run_id  # the checkpoint remembers the MLflow run
    assert resumed.resumed_from == 2 and resumed.global_step == 3 and [h["step"] for h in resumed.history] == [2]
    assert resumed.history[0]["max_tokens"] == 16  # the staged length moved on at step 2
    assert server_versions(endpoints)[0] == start + 5  # resumed weights pushed, then one step
    assert resumed.export_prefix.endswith("rl-export/step-00000003")

    # the policy changed, and the export is the uniform average of checkpoints 2 and 3
    init = _weights(tiny_model_dir)
    tmp = tmp_path / "dl"
    w2 = _weights(store.download_checkpoint(_run(cfg).key, 2, tmp / "2", CHECKPOINT_KIND) / "actor")
    w3 = _weights(store.download_checkpoint(_run(cfg).key, 3, tmp / "3", CHECKPOINT_KIND) / "actor")
    final = _weights(store.download_checkpoint(_run(cfg).key, 3, tmp / "final", EXPORT_KIND))
    assert list(scratch.iterdir()) == []  # the export too: a 7B run would leave ~15 GB every time
    name = "layers.0.mlp.down_proj.weight"
    assert not torch.equal(init[name], w2[name]) and not torch.equal(w2[name], w3[name])
    assert torch.allclose(final[name], (w2[name] + w3[name]) / 2, atol=1e-6)

    # every step's metrics are in MLflow, in one run across the interruption
    tracker = Tracker.open(cfg, "rl", _run(cfg).with_(mlflow_run_id=first.run_id))
    assert [s for s, _ in tracker.metric_history("rl/reward_mean")] == [0, 1, 2]
    assert [s for s, _ in tracker.metric_history("rl/behaviour/image/reflection")] == [0, 1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in tracker.metric_history("rl/behaviour/image/reflection"))
    tracker.close()


def test_dapo_runs_refills_and_learns_from_group_differences(
    servers, tiny_model_dir, weights_dir, tmp_path, capsys, monkeypatch
):
    """DAPO (GRPO advantages, clip-higher, dynamic sampling with refill) against the real servers."""
    from ovr.data.synthetic import visual_samples
    from ovr.rl.state import EXPORT_KIND
    from ovr.rl.trainer import run_rl
    from ovr.rollout.weights import server_versions
    from ovr.store import Store

    endpoints, _ = servers
    scratch = _scratch(tmp_path, monkeypatch)
    # truncated responses score -1, finished ones 0: the random tiny model's groups differ
    cfg = _cfg(
        tmp_path,
        tiny_model_dir,
        "rl-dapo",
        servers,
        weights_dir,
        "rl.algorithm=dapo",
        "rl.max_steps=2",
        "rl.save_every=2",
        "reward.truncated_reward=-1",
        "rl.max_generation_rounds=3",
        "tracking.enabled=false",
        "rl.vision_lr=3e-3",  # the tower in its own optimiser group
    )
    res = run_rl(cfg, _run(cfg), samples=visual_samples(8, seed=1), progress=False)
    assert [h["vision_lr"] for h in res.history] == [3e-3, 3e-3] and res.history[0]["actor_lr"] == 1e-3
    assert list(scratch.iterdir()) == []
    assert res.global_step == 2 and "value_loss" not in res.history[0]
    # no progress file (a pod): each step's line in the log, with the rate and the ETA
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rl step ")]
    assert [line.split()[2] for line in lines] == ["1/2", "2/2"] and all("ETA" in line for line in lines)
    assert any(h["adv_std"] > 0 for h in res.history)
    for h in res.history:  # the kept groups are informative; a step refills while it has fewer than 4
        assert 1 <= h["generation_rounds"] <= 3 and 0 < h["groups_kept_frac"] <= 1
        assert h["generation_rounds"] == 1 or h["groups_kept_frac"] < 1
    assert server_versions(endpoints)[0] == res.history[-1]["weight_version"]
    store = Store.from_config(cfg.store)
    final = _weights(store.download_checkpoint(_run(cfg).key, 2, tmp_path / "final", EXPORT_KIND))
    init = _weights(tiny_model_dir)
    assert set(init) == set(final) and any(not torch.equal(init[k], final[k]) for k in init)


def test_ovr_rl_cli_starts_its_services_and_trains(tiny_model_dir, rollout_python, tmp_path, monkeypatch):
    """``ovr rl --recipe`` with no endpoints configured: it starts vLLM and the reward service itself,
    reads the RL prompts from the dataset in the store, and leaves an exported model."""
    import yaml
    from typer.testing import CliRunner

    from ovr.cli import app
    from ovr.config import load_config
    from ovr.data.build import build_dataset
    from ovr.rl.state import EXPORT_KIND
    from ovr.store import Store

    monkeypatch.setenv("OVR_ROLLOUT_PYTHON", str(rollout_python))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "rl-cli",
                "model": {"path": str(tiny_model_dir)},
                "store": {"uri": str(tmp_path / "store")},
                "tracking": {"enabled": False},
                "data": {"name": "cli", "synthetic": {"visual_samples": 6, "text_samples": 0, "eval_samples": 0}},
                "rollout": {"local_server": {"max_model_len": 512}},
                "rl": {
                    "algorithm": "rloo",
                    "prompts_per_step": 2,
                    "samples_per_prompt": 2,
                    "max_steps": 1,
                    "save_every": 1,
                    "max_response_len_schedule": [{"from_step": 0, "max_tokens": 8}],
                },
            }
        )
    )
    cfg = load_config(recipe, use_env=False)
    build_dataset(cfg, Store.from_config(cfg.store), progress=False)
    r = CliRunner().invoke(app, ["rl", "--recipe", str(recipe), "--no-progress", "--weights-dir", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    assert "rl finished at step 1" in r.output
    store = Store.from_config(cfg.store)
    (run_id,) = store.runs("rl-cli")
    assert f"run {run_id} of rl-cli" in r.output
    assert store.latest(f"rl-cli/{run_id}", EXPORT_KIND).step == 1
