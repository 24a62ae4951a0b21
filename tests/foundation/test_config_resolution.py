"""The config is resolved once, when loaded: what every pod reloads is what the recipe loaded.

The pipeline's path: *Validate config* resolves recipe + overrides (components/install.py), writes
the whole config (dump_config), and every task pod reloads that file (components/runtime.py
task_config). The RL trainer then uses ``cfg.rl`` as it is.
"""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from components.install import resolve_run
from components.runtime import task_config
from ovr.config import RunConfig, dump_config, flat_params, load_config
from ovr.config.algorithms import ESTIMATORS, PRESETS

RECIPES = ("tiny-cpu", "ovr-7b", "eval-suite")
ALGORITHMS = [name for name in PRESETS if name != "custom"]


def _through_the_pipeline(recipe, overrides, tmp_path) -> tuple[RunConfig, RunConfig]:
    creds = {"OVR_S3_ACCESS_KEY": "k", "OVR_S3_SECRET_KEY": "s"}  # what the s3_secret gives a pod
    loaded = resolve_run(recipe, overrides, "ovr-env", environ=creds)  # Validate config, off-cluster
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(loaded))
    return loaded, task_config(path)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_trains_the_algorithm_it_was_asked_for(repo_root, tmp_path, recipe, algorithm):
    loaded, reloaded = _through_the_pipeline(
        repo_root / f"recipes/{recipe}.yaml", [f"rl.algorithm={algorithm}"], tmp_path
    )
    preset = PRESETS.get(algorithm)
    rl = reloaded.rl
    for field, value in preset.items():
        assert getattr(rl, field) == value, f"{recipe} x {algorithm}: rl.{field}"
    assert rl.uses_critic == ESTIMATORS.get(preset["advantage"]).critic
    assert (rl.critic_updates > 0) == rl.uses_critic
    assert reloaded.model_dump() == loaded.model_dump()  # every value, not only the preset's
    params = flat_params(reloaded)  # what MLflow records
    assert (params["rl.advantage"], params["rl.loss_agg"]) == (preset["advantage"], preset["loss_agg"])


def test_the_resolved_config_is_a_fixed_point(repo_root):
    """Reloading a dump and dumping it again gives the same text (nothing is resolved twice)."""
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", ["rl.algorithm=dapo", "rl.clip_high=0.3"], use_env=False)
    once = dump_config(cfg)
    again = dump_config(RunConfig.model_validate(yaml.safe_load(once)))
    assert once == again
    assert (cfg.rl.advantage, cfg.rl.clip_high, cfg.rl.dynamic_sampling) == ("grpo", 0.3, True)


def test_an_explicit_field_that_contradicts_the_algorithm_fails_naming_both(repo_root, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: bad\nrl:\n  algorithm: grpo\n  advantage: gae\n")
    with pytest.raises(ValidationError) as err:
        load_config(recipe, use_env=False)
    text = str(err.value)
    assert "rl.algorithm='grpo'" in text and "rl.advantage='gae'" in text and "remove rl.advantage" in text
    assert "ppo" in text and "rl.algorithm=custom" in text  # the fixes: the algorithm that uses gae, or custom


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rl.algorithm=grpo", "rl.critic_updates=4"], "trains a critic that the 'grpo' estimator never reads"),
        (["rl.algorithm=custom", "rl.advantage=gae", "rl.critic_updates=0"], "reads critic values"),
        (["rl.algorithm=rloo", "rl.kl_reward_coef=0.1"], "use rl.kl_loss_coef instead"),
        (["rl.algorithm=nope"], "unknown algorithm preset 'nope'"),
    ],
)
def test_other_contradictions_fail_to_load(overrides, message):
    with pytest.raises(ValidationError, match=message):
        load_config(None, overrides, use_env=False)


def test_a_preset_fills_only_what_the_recipe_leaves_unset():
    cfg = load_config(None, ["rl.algorithm=dapo", "rl.dynamic_sampling=false", "rl.loss_agg=seq_mean"], use_env=False)
    assert (cfg.rl.advantage, cfg.rl.dynamic_sampling, cfg.rl.loss_agg, cfg.rl.clip_high) == (
        "grpo",
        False,
        "seq_mean",
        0.28,
    )
    custom = load_config(None, ["rl.algorithm=custom", "rl.advantage=rloo"], use_env=False).rl
    assert (custom.advantage, custom.loss_agg, custom.uses_critic) == ("rloo", "token_mean", False)


def test_presets_hold_only_valid_settings():
    """Each preset's values pass the RL section's own validation (they bypass it when filled in)."""
    from ovr.config import RLConfig

    for name in PRESETS:
        RLConfig.model_validate({"algorithm": name, **PRESETS.get(name)})
