"""Resumable state (prompt cursor, RNG) and checkpoint averaging, including the CLI."""

from __future__ import annotations

import random
import shutil

import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ovr.config import StoreConfig
from ovr.rl.averaging import average_state_dicts, load_weights
from ovr.rl.state import CHECKPOINT_KIND, PromptCursor, TrainState, find_resume, rng_state, set_rng_state
from ovr.store import Store


def test_cursor_walks_epochs_and_resumes_identically():
    a = PromptCursor(n=5, seed=1)
    first = a.take(3) + a.take(3)  # wraps into epoch 1
    assert sorted(first[:5]) == list(range(5)) and a.epoch == 1 and a.index == 1
    saved = TrainState(step=2, cursor=a, weight_version=4).to_json()
    b = TrainState.from_json(saved).cursor
    assert b.take(4) == a.take(4)
    assert PromptCursor(n=5, seed=2).take(5) != PromptCursor(n=5, seed=1).take(5)


def test_rng_state_round_trip():
    state = rng_state()
    x = (random.random(), torch.rand(2))
    set_rng_state(state)
    assert random.random() == x[0] and torch.equal(torch.rand(2), x[1])


def test_average_state_dicts_checks_and_means():
    a = {"w": torch.tensor([1.0, 2.0]), "i": torch.tensor([1])}
    b = {"w": torch.tensor([3.0, 6.0]), "i": torch.tensor([1])}
    assert torch.equal(average_state_dicts([a, b])["w"], torch.tensor([2.0, 4.0]))
    import pytest

    with pytest.raises(ValueError, match="different tensors"):
        average_state_dicts([a, {"w": a["w"]}])
    with pytest.raises(ValueError, match="differs"):
        average_state_dicts([a, {"w": a["w"], "i": torch.tensor([2])}])


def test_find_resume(tmp_path):
    import pytest

    store = Store.from_config(StoreConfig(uri=str(tmp_path)))
    assert find_resume(store, "r", "auto") is None and find_resume(store, "r", "never") is None
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "state.json").write_text("{}")
    store.commit_checkpoint("r", 3, tmp_path / "c", kind=CHECKPOINT_KIND)
    assert find_resume(store, "r", "auto") == 3 and find_resume(store, "r", "3") == 3
    with pytest.raises(FileNotFoundError):
        find_resume(store, "r", "4")
    with pytest.raises(ValueError):
        find_resume(store, "r", "latest")


def test_checkpoints_average_cli(tmp_path, tiny_model_dir):
    """``ovr checkpoints average`` over two committed checkpoints (no servers needed)."""
    from ovr.cli import app

    store = Store.from_config(StoreConfig(uri=str(tmp_path / "s")))
    for step, scale in ((1, 1.0), (2, 3.0)):
        folder = tmp_path / f"c{step}"
        shutil.copytree(tiny_model_dir, folder / "actor")
        w = load_file(str(folder / "actor/model.safetensors"))
        save_file(
            {k: v * scale if v.is_floating_point() else v for k, v in w.items()},
            str(folder / "actor/model.safetensors"),
            metadata={"format": "pt"},
        )
        store.commit_checkpoint("avg/r1", step, folder, kind=CHECKPOINT_KIND)  # run r1 of recipe avg
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "avg", "store": {"uri": str(tmp_path / "s")}}))
    out = tmp_path / "avg-out"
    r = CliRunner().invoke(app, ["checkpoints", "average", "--recipe", str(recipe), "--last", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    base, avg = load_file(str(tiny_model_dir / "model.safetensors")), load_weights(out)
    k = "lm_head.weight"
    assert torch.allclose(avg[k], base[k] * 2.0, atol=1e-6)
    r = CliRunner().invoke(
        app, ["checkpoints", "average", "--recipe", str(recipe), "--steps", "1,7", "--out", str(out)]
    )
    assert r.exit_code == 1 and "no checkpoint at steps [7]" in r.output
