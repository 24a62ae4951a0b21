"""``ovr sft`` with DeepSpeed ZeRO-2 and ZeRO-3, single process on CPU over gloo (the launcher-free
path: the stage sets RANK/WORLD_SIZE/MASTER_* itself). Both complete, commit a consolidated export
that the Auto classes load with the vision tower untouched, and agree on the loss."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ovr.config import StoreConfig
from ovr.data.shards import write_split
from ovr.store import Store


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory, tiny_model_dir, repo_root, sft_samples, dataset_prefix_for):
    """Both stages through the CLI, reading the SFT split of a dataset committed to the store."""
    root = tmp_path_factory.mktemp("zero")
    data = root / "dataset"
    write_split(sft_samples[:80], "sft", data, shard_size=50)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    out = {}
    for stage in (2, 3):
        sets = [
            f"name=zero{stage}",
            f"model.path={tiny_model_dir}",
            f"store.uri={root / 'store'}",
            f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
            f"sft.work_dir={root / 'work'}",
            "data.name=zero-data",
            "sft.max_seq_len=256",
            "sft.global_batch_size=4",
            "sft.micro_batch_size=2",
            "sft.max_steps=3",
            "sft.save_every=3",
            f"sft.zero_stage={stage}",
        ]
        cmd = [
            sys.executable,
            "-m",
            "ovr",
            "sft",
            "--recipe",
            str(repo_root / "recipes/tiny-cpu.yaml"),
            "--resume",
            "never",
            "--no-progress",
        ]
        for s in sets:
            cmd += ["--set", s]
        prefix = dataset_prefix_for(repo_root / "recipes/tiny-cpu.yaml", sets)
        store = Store.from_config(StoreConfig(uri=str(root / "store")))
        if store.read_manifest(prefix) is None:
            store.commit(prefix, data, run="zero-data", kind="dataset")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[stage] = proc.stdout
    return root, out


def test_zero2_and_zero3_complete_and_agree(zero_runs, tiny_model_dir):
    root, stdout = zero_runs
    store = Store.from_config(StoreConfig(uri=str(root / "store")))
    losses = {}
    for stage in (2, 3):
        assert "sft done: step 3" in stdout[stage]
        (run_id,) = store.runs(f"zero{stage}")  # the one run the command started
        assert f"run {run_id} of zero{stage}" in stdout[stage]
        assert [m.step for m in store.checkpoints(f"zero{stage}/{run_id}", "sft")] == [3]
        export = store.latest(f"zero{stage}/{run_id}", "sft-export")
        assert export is not None and export.step == 3
        losses[stage] = export.metadata["metrics"]["final_loss"]
    assert losses[2] == pytest.approx(losses[3], rel=1e-4)


def test_zero3_export_is_consolidated_and_loads(zero_runs, tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    root, _ = zero_runs
    (run_id,) = Store.from_config(StoreConfig(uri=str(root / "store"))).runs("zero3")
    export = root / "work" / "zero3" / run_id / "sft" / "export"
    model = AutoModelForImageTextToText.from_pretrained(export)
    AutoProcessor.from_pretrained(export)
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(export / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(after[k].numel() == before[k].numel() for k in before)  # not ZeRO-3 placeholders
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("visual."))
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])
    assert model.lm_head.weight.shape == before["lm_head.weight"].shape
