"""Typed configuration for every ovr stage, loaded from ``recipes/*.yaml``.

One recipe file holds one experiment. Precedence, lowest first: the model defaults below, the
recipe YAML, environment variables ``OVR__SECTION__FIELD=value`` (e.g. ``OVR__RL__ACTOR_LR=2e-6``),
then CLI overrides ``--set section.field=value``. Values given as strings by env/CLI are parsed as
YAML scalars/lists (``--set rl.max_response_len_schedule='[[0, 64]]'``). Unknown keys are errors.

>>> cfg = load_config("recipes/tiny-cpu.yaml", overrides=["rl.actor_lr=2e-6"])   # doctest: +SKIP
>>> cfg.rl.actor_lr
2e-06
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from ovr.config.infra import (
    LocalServerConfig,
    ModelConfig,
    RewardConfig,
    RolloutConfig,
    StoreConfig,
    TrackingConfig,
    _Section,
)
from ovr.config.rl import LengthStage, RLConfig
from ovr.config.stages import (
    DataConfig,
    DataSourceConfig,
    EvalConfig,
    JudgeConfig,
    SFTConfig,
    SyntheticConfig,
)


class RunConfig(_Section):
    """A whole experiment: every stage's settings."""

    name: str = Field("ovr", description="Run name: prefixes store keys and names the MLflow run.")
    seed: int = Field(0, description="Global seed: the default of data.seed, sft.seed and rl.seed.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where trainers run.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        for section in (self.data, self.sft, self.rl):
            if "seed" not in section.model_fields_set:
                section.__dict__["seed"] = self.seed  # a default, not an explicit setting
        if self.sft.global_batch_size % self.sft.micro_batch_size:
            raise ValueError("sft.global_batch_size must be a multiple of sft.micro_batch_size")
        return self


# --------------------------------------------------------------------------- loading
def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else ""


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted}: {key} is not a section")
    node[keys[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> list[str]:
    """``OVR__RL__ACTOR_LR=2e-6`` -> ``rl.actor_lr=2e-6`` (double underscores separate levels)."""
    environ = os.environ if environ is None else environ
    out = []
    for key, value in environ.items():
        if key.startswith("OVR__") and len(key) > 5:
            out.append(key[5:].lower().replace("__", ".") + "=" + value)
    return sorted(out)


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value")
        path, _, raw = item.partition("=")
        _set_path(tree, path.strip(), _parse_scalar(raw))
    return tree


def load_config(
    recipe: str | Path | None = None,
    overrides: list[str] | None = None,
    use_env: bool = True,
) -> RunConfig:
    """Load a recipe YAML (or the defaults), apply env then CLI overrides, validate."""
    tree: dict = {}
    if recipe is not None:
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(f"recipe not found: {path}")
        tree = yaml.safe_load(path.read_text()) or {}
        if not isinstance(tree, dict):
            raise ValueError(f"recipe {path} must be a mapping at the top level")
    apply_overrides(tree, (env_overrides() if use_env else []) + list(overrides or []))
    return RunConfig.model_validate(tree)


RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file path, or a recipe name looked up in ``$OVR_RECIPES_DIR`` or ``recipes/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folder = Path(os.environ.get("OVR_RECIPES_DIR", RECIPES_DIR))
    for candidate in (folder / path, folder / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise FileNotFoundError(f"recipe {name_or_path!r} not found (known in {folder}: {', '.join(known)})")


def dump_config(cfg: RunConfig) -> str:
    """The fully resolved config as YAML (what `ovr config show` prints and runs log)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def flat_params(cfg: RunConfig) -> dict[str, str]:
    """Config flattened to ``section.field -> str`` for MLflow params."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = str(node)[:500]

    walk("", cfg.model_dump(mode="json"))
    return out


__all__ = [
    "DataConfig",
    "DataSourceConfig",
    "EvalConfig",
    "JudgeConfig",
    "LengthStage",
    "LocalServerConfig",
    "ModelConfig",
    "RLConfig",
    "RewardConfig",
    "RolloutConfig",
    "RunConfig",
    "SFTConfig",
    "StoreConfig",
    "SyntheticConfig",
    "TrackingConfig",
    "apply_overrides",
    "dump_config",
    "env_overrides",
    "flat_params",
    "load_config",
    "resolve_recipe",
]
