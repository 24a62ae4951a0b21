"""Cold-start SFT at 2 ranks on CPU (``torchrun --nproc-per-node 2``, gloo, DeepSpeed ZeRO-3),
interrupted after a checkpoint and resumed at 2 ranks, against one uninterrupted process on the
same rows: the same loss, every rank's partitions in the store, each rank resuming from its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ovr.config import StoreConfig
from ovr.data.synthetic import text_samples
from ovr.store import Kind, Store

pytestmark = [pytest.mark.slow]


def _sets(root, model, name, steps):
    return [
        f"name={name}",
        f"model.path={model}",
        f"store.uri={root / 'store'}",
        "tracking.enabled=false",
        f"sft.work_dir={root / 'work' / name}",
        "data.name=sft2",
        "sft.max_seq_len=256",
        "sft.global_batch_size=4",
        "sft.micro_batch_size=2",
        f"sft.max_steps={steps}",
        "sft.save_every=2",
        "sft.zero_stage=3",
        "sft.warmup_ratio=0.0",
        "sft.scheduler=constant",
        "sft.lr=1e-3",
    ]


def _cli(root, model, name, steps) -> list[str]:
    args = ["-m", "ovr", "sft", "--recipe", "recipes/tiny-cpu.yaml", "--no-progress", "--run-id", "t1"]
    for s in _sets(root, model, name, steps):
        args += ["--set", s]
    return args


def test_sft_at_two_ranks_resumes_and_matches_one_process(
    torchrun, repo_root, tiny_model_dir, tmp_path, dataset_prefix_for
):
    from ovr.data.shards import write_split

    write_split(text_samples(64, seed=3), "sft", tmp_path / "data", shard_size=64)
    store = Store.from_config(StoreConfig(uri=str(tmp_path / "store")))
    prefix = dataset_prefix_for(repo_root / "recipes/tiny-cpu.yaml", _sets(tmp_path, tiny_model_dir, "one", 4))
    store.commit(prefix, tmp_path / "data", run="sft2", kind="dataset")

    one = subprocess.run(
        [sys.executable, *_cli(tmp_path, tiny_model_dir, "one", 4)],
        cwd=repo_root,
        env={k: v for k, v in torchrun.env.items() if k != "WORLD_SIZE"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-4000:]

    torchrun(_cli(tmp_path, tiny_model_dir, "two", 2), timeout=600)  # stops after its checkpoint at step 2
    first = store.latest("two/t1", Kind.SFT)
    files = [f.path for f in first.files]
    assert first.step == 2
    for r in (0, 1):
        assert any(f"zero_pp_rank_{r}_" in p and "optim_states" in p for p in files), files
        assert any(p.endswith(f"rng_state_{r}.pth") for p in files)
    resumed = torchrun(_cli(tmp_path, tiny_model_dir, "two", 4), timeout=600)
    assert "resumed from step 2" in resumed.stdout + resumed.stderr
    assert [m.step for m in store.checkpoints("two/t1", Kind.SFT)] == [2, 4]
    loss = {n: store.latest(f"{n}/t1", Kind.SFT_EXPORT).metadata["metrics"]["final_loss"] for n in ("one", "two")}
    assert loss["two"] == pytest.approx(loss["one"], rel=1e-3)
    assert os.path.isdir(tmp_path / "work" / "two" / "two" / "t1" / "sft" / "export")
