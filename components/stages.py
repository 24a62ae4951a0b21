"""KFP components: one per pipeline stage, each a thin shell around one ``ovr`` stage.

Artifacts carry small JSON pointers into the store (``store_prefix`` metadata) rather than the
weights themselves, so a 7B checkpoint is written once (by the stage, to MinIO/S3) and KFP's own
artifact store only holds manifests, metrics and reports the UI shows.
"""


import functools

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import OVR_IMAGE

ovr_component = functools.partial(dsl.component, base_image=OVR_IMAGE, install_kfp_package=False)


@ovr_component
def validate_config(
    recipe: str, overrides: list, model_path: str, dataset_name: str, sft_max_steps: int, rl_max_steps: int,
    config: Output[Artifact],
) -> str:
    """Resolve + validate the recipe and run parameters, check the store, open the MLflow run."""
    from components.runtime import param_overrides
    from ovr.config import dump_config, load_config, resolve_recipe
    from ovr.store import Store
    from ovr.tracking import Tracker

    extra = param_overrides(model_path, dataset_name, sft_max_steps, rl_max_steps)
    cfg = load_config(resolve_recipe(recipe), [str(o) for o in overrides] + extra)
    Store.from_config(cfg.store)  # fails fast on a wrong endpoint, bucket or credentials
    with Tracker.open(cfg, "pipeline") as tracker:
        cfg.tracking.run_id = tracker.run_id
    with open(config.path, "w") as f:
        f.write(dump_config(cfg))
    config.metadata.update({"run": cfg.name, "mlflow_run_id": tracker.run_id or ""})
    return tracker.run_id or ""


@ovr_component
def build_data(config: Input[Artifact], dataset: Output[Dataset], metrics: Output[Metrics]):
    """Sources + procedural tasks -> filtered Sample shards and a manifest in the store."""
    import json

    from ovr.config import load_config
    from ovr.data.build import build_dataset
    from ovr.store import Store, dataset_prefix
    from ovr.tracking import Tracker

    cfg = load_config(config.path, use_env=False)
    manifest = build_dataset(cfg, Store.from_config(cfg.store), progress=False)
    meta = manifest["metadata"]
    with open(dataset.path, "w") as f:
        json.dump(manifest, f, indent=1, default=str)
    dataset.metadata["store_prefix"] = dataset_prefix(cfg.data.name)
    counts = {f"samples_{split}": float(m["count"]) for split, m in meta["splits"].items()}
    counts["dropped"] = float(sum(sum(r.values()) for r in meta["dropped"].values()))
    for key, value in counts.items():
        metrics.log_metric(key, value)
    with Tracker.open(cfg, "data") as tracker:
        tracker.log_metrics(counts, step=0)
        tracker.log_text(json.dumps(meta, indent=1, default=str), "data/manifest.json")


@ovr_component
def cold_start_sft(
    config: Input[Artifact], dataset: Input[Dataset], nodes: int, gpus_per_node: int, model: Output[Model], metrics: Output[Metrics],
):
    """Language-only cold-start SFT; on several nodes through a PyTorchJob."""
    from components.runtime import run_stage
    from ovr.config import load_config

    cfg = load_config(config.path, use_env=False)
    result = run_stage("sft", cfg, nodes, gpus_per_node)
    model.metadata.update({"store_prefix": result.export_prefix, "stage": "sft"})
    with open(model.path, "w") as f:
        f.write(result.model_dump_json(indent=1))
    metrics.log_metric("global_step", float(result.global_step))
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)


@ovr_component
def multimodal_rl(
    config: Input[Artifact], init_model: Input[Model], dataset: Input[Dataset], nodes: int, gpus_per_node: int,
    model: Output[Model], metrics: Output[Metrics],
):
    """PPO/GRPO with verifiable rewards from the SFT model, rollouts on vLLM."""
    from components.runtime import run_stage
    from ovr.config import load_config

    cfg = load_config(config.path, use_env=False)
    result = run_stage("rl", cfg, nodes, gpus_per_node, init_prefix=init_model.metadata["store_prefix"])
    model.metadata.update({"store_prefix": result.export_prefix, "stage": "rl"})
    with open(model.path, "w") as f:
        f.write(result.model_dump_json(indent=1))
    metrics.log_metric("global_step", float(result.global_step))
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)


@ovr_component
def evaluate_model(config: Input[Artifact], model: Input[Model], dataset: Input[Dataset], label: str, results: Output[Artifact], metrics: Output[Metrics]):
    """avg@k on the recipe's benchmarks and behaviour analysis, through the rollout server."""
    from components.runtime import run_eval
    from ovr.config import load_config

    cfg = load_config(config.path, use_env=False)
    result = run_eval(cfg, model.metadata["store_prefix"], label, results.path)
    results.metadata.update({"label": label, "store_prefix": model.metadata["store_prefix"]})
    for score in result.benchmarks:
        metrics.log_metric(f"{score.benchmark}_avg@{result.k}", score.avg_at_k)
        metrics.log_metric(f"{score.benchmark}_truncation_rate", score.truncation_rate)


@ovr_component
def make_report(config: Input[Artifact], sft_eval: Input[Artifact], rl_eval: Input[Artifact], report: Output[Markdown], html: Output[dsl.HTML]):
    """The run report (accuracy table, curves, behaviour rates) for the KFP UI and MLflow."""
    from components.runtime import run_report
    from ovr.config import load_config

    cfg = load_config(config.path, use_env=False)
    run_report(cfg, [sft_eval.path, rl_eval.path], report.path, html.path)
