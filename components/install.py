"""What ``validate_config`` checks before any GPU is spent: that the pod sees the install, that the
recipe agrees with the settings the install owns, and that the run can reach what it needs.

On a cluster (a pod: ``KUBERNETES_SERVICE_HOST`` is set) the chart's env ConfigMap must be there
(its ``OVR_INSTALL`` key), or the run would fall back to recipe hosts that do not exist. The chart
owns the shared replicas' serving settings; a recipe (or override) that sets one of them to another
value fails here with both values named, instead of failing mid-RL. Folder weight sync needs the
shared claim's folder; an S3 store needs credentials. ``flash_attention_2`` without the
``flash_attn`` package becomes ``varlen`` (ovr's padding-free attention on PyTorch's own varlen
kernel), and the reason is printed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

from components.settings import WEIGHTS_MOUNT
from ovr.config import RunConfig, apply_overrides, env_overrides, load_config

#: ConfigMap key -> the config field the chart owns (its value in the chart's values)
CHART_OWNED = {
    "OVR__ROLLOUT__WEIGHT_SYNC": ("rollout.weight_sync", "rollout.weightSync"),
    "OVR__ROLLOUT__TENSOR_PARALLEL_SIZE": ("rollout.tensor_parallel_size", "rollout.tensorParallelSize"),
    "OVR__ROLLOUT__SERVED_MODEL_NAME": ("rollout.served_model_name", "rollout.servedModelName"),
    "OVR__ROLLOUT__WEIGHTS_DIR": ("rollout.weights_dir", "the claim's mount path /weights"),
    "OVR__MODEL__MAX_PIXELS": ("model.max_pixels", "rollout.maxPixels"),
}


class InstallError(ValueError):
    """The run cannot work with this install as it is: the message says what to change."""


def in_cluster(environ: dict[str, str]) -> bool:
    return bool(environ.get("KUBERNETES_SERVICE_HOST"))


def _lookup(tree: dict, dotted: str):
    node = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def check_install_env(install_env: str, environ: dict[str, str]) -> None:
    """The chart's ConfigMap reached this pod (no silent fallback to the recipe's hosts)."""
    if environ.get("OVR_INSTALL"):
        return
    namespace = environ.get("OVR_POD_NAMESPACE", "this pod's namespace")
    raise InstallError(
        f"the install's ConfigMap {install_env!r} is not visible in namespace {namespace!r}: KFP runs the "
        "pipeline's pods in its (profile) namespace, and pods see only ConfigMaps and Secrets of their own "
        "namespace. Install the chart there (helm install ovr ./helm/ovr -n <profile namespace>), or pass "
        "install_env=<release>-env naming the ConfigMap of the install in that namespace."
    )


def check_chart_owned(recipe: Path, overrides: list[str], environ: dict[str, str]) -> None:
    """Settings the chart owns may be left out of the recipe; set to another value, they fail."""
    tree = apply_overrides(yaml.safe_load(recipe.read_text()) or {}, list(overrides))
    installed = load_config(None, env_overrides({k: v for k, v in environ.items() if k in CHART_OWNED}), use_env=False)
    asked = load_config(
        None,
        [
            f"{f}={v}"
            for f, _ in CHART_OWNED.values()
            if (v := _lookup(tree, f)) is not None and not isinstance(v, (dict, list))
        ],
        use_env=False,
    )
    clashes = []
    for key, (field, value_name) in CHART_OWNED.items():
        if key not in environ or _lookup(tree, field) is None:
            continue
        section, name = field.split(".")
        mine, theirs = getattr(getattr(asked, section), name), getattr(getattr(installed, section), name)
        if mine != theirs:
            clashes.append(
                f"{field}={mine!r} in the recipe, but the install's replicas use {theirs!r} (chart value {value_name})"
            )
    if clashes:
        raise InstallError(
            "the recipe disagrees with the install: "
            + "; ".join(clashes)
            + ". Remove these from the recipe (the chart owns them) or change the chart's values."
        )


def check_run(cfg: RunConfig, environ: dict[str, str], cluster: bool) -> None:
    """What the run needs from its services: the weights folder, the store's credentials."""
    ro = cfg.rollout
    if cluster and ro.endpoints and ro.weight_sync == "folder" and ro.weights_dir != WEIGHTS_MOUNT:
        raise InstallError(
            f"rollout.weight_sync=folder with the install's replicas needs rollout.weights_dir={WEIGHTS_MOUNT} "
            f"(the shared claim, mounted there in the replicas and the trainer), not {ro.weights_dir!r}: set "
            "rollout.weightsClaimName in the chart"
        )
    store = cfg.store
    if store.uri.startswith("s3://") and not store.credentials_file:
        missing = [e for e in (store.access_key_env, store.secret_key_env) if not environ.get(e)]
        if missing:
            raise InstallError(
                f"the store {store.uri} needs credentials, but {', '.join(missing)} are unset: "
                "the pipeline's s3_secret parameter must name a Secret (keys access_key, "
                "secret_key) in the namespace the run's pods run in"
            )


def attention_fallback(cfg: RunConfig) -> RunConfig:
    """``flash_attention_2`` needs the ``flash_attn`` package; without it, ``varlen`` (said why)."""
    if cfg.model.attn_implementation != "flash_attention_2" or importlib.util.find_spec("flash_attn"):
        return cfg
    print(
        "model.attn_implementation: flash_attention_2 asked, but the flash_attn package is not installed "
        "in this image (it ships no prebuilt wheel for this torch); using varlen, ovr's padding-free "
        "attention on PyTorch's own flash varlen kernel (torch.nn.attention.varlen) instead",
        flush=True,
    )
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"attn_implementation": "varlen"})})


def resolve_run(
    recipe: Path, overrides: list[str], install_env: str, environ: dict[str, str] | None = None
) -> RunConfig:
    """The run's config: recipe + overrides + the install's env, after every check above."""
    environ = dict(os.environ if environ is None else environ)
    cluster = in_cluster(environ)
    if cluster:
        check_install_env(install_env, environ)
    check_chart_owned(recipe, overrides, environ)
    cfg = load_config(recipe, env_overrides(environ) + list(overrides), use_env=False)
    check_run(cfg, environ, cluster)
    return attention_fallback(cfg)
