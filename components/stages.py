"""KFP components: one per pipeline stage (two for SFT and RL), each a thin shell around one ``ovr`` stage.

Artifacts carry small JSON pointers into the store (``store_prefix`` metadata) rather than the
weights themselves, so a 7B checkpoint is written once (by the stage, to MinIO/S3) and KFP's own
artifact store only holds manifests, metrics and reports the UI shows. A training stage also
returns its export's store prefix as a string, which the pipeline passes on (``dsl.OneOf`` of its
single-node and multi-node variants).

SFT and RL have two variants: ``train_*`` runs in its own pod under ``torchrun`` (one rank per
GPU, :mod:`components.torchrun`); ``launch_*`` requests no GPU and runs the stage as a multi-node
TrainJob/PyTorchJob that it creates, follows and deletes.
"""

import functools

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import OVR_IMAGE
from components.torchrun import torchrun_component

ovr_component = functools.partial(dsl.component, base_image=OVR_IMAGE, install_kfp_package=False)


@ovr_component
def validate_config(
    recipe: str,
    overrides: list,
    model_path: str,
    dataset_name: str,
    sft_max_steps: int,
    rl_max_steps: int,
    install_env: str,
    sft_nodes: int,
    rl_nodes: int,
    gpus_per_node: int,
    weights_claim: str,
    s3_secret: str,
    mlflow_secret: str,
    reward_secret: str,
    rollout_secret: str,
    queue: str,
    job_deadline_s: int,
    run_id: str,
    resume_from: str,
    config: Output[Artifact],
    image: dsl.OutputPath(str),
    node_selector: dsl.OutputPath(dict),
    tolerations: dsl.OutputPath(list),
) -> str:
    """Resolve + validate the recipe, run parameters and install; check data, services and cluster before
    any GPU is used; open (or resume) the run and its MLflow run; hand the install's image and scheduling
    to the later tasks. Returns the run's id."""
    from components.jobs import JobSettings
    from components.runtime import open_run, param_overrides
    from components.validate import RunParams, validate_run
    from ovr.config import dump_config, resolve_recipe

    job = JobSettings(
        run_id=run_id,
        s3_secret=s3_secret,
        mlflow_secret=mlflow_secret or None,
        reward_secret=reward_secret or None,
        rollout_secret=rollout_secret or None,
        weights_claim=weights_claim or None,
        deadline_s=job_deadline_s,
        queue=queue or None,
    )
    params = RunParams(
        sft_nodes=sft_nodes, rl_nodes=rl_nodes, gpus_per_node=gpus_per_node, weights_claim=weights_claim, job=job
    )
    extra = param_overrides(model_path, dataset_name, sft_max_steps, rl_max_steps)
    cfg, placement = validate_run(resolve_recipe(recipe), [str(o) for o in overrides] + extra, install_env, params)
    ctx = open_run(cfg, resume_from)
    with open(config.path, "w") as f:
        f.write(dump_config(cfg))
    config.metadata.update({"run": cfg.name, "run_id": ctx.run_id, "mlflow_run_id": ctx.mlflow_run_id or ""})
    placement.write_task_outputs(image, node_selector, tolerations)
    return ctx.run_id


@ovr_component
def build_data(config: Input[Artifact], dataset: Output[Dataset], metrics: Output[Metrics]):
    """Sources + procedural tasks -> filtered Sample shards and a manifest in the store."""
    import json

    from components.runtime import task_config, task_context
    from ovr.data.dataset import dataset_for
    from ovr.store import Store, dataset_prefix
    from ovr.tracking import Tracker

    cfg = task_config(config.path)
    manifest, _ = dataset_for(cfg, Store.from_config(cfg.store), progress=False)
    meta = manifest["metadata"]
    with open(dataset.path, "w") as f:
        json.dump(manifest, f, indent=1, default=str)
    dataset.metadata["store_prefix"] = dataset_prefix(cfg.data.dataset_id)
    counts = {f"samples_{split}": float(m["count"]) for split, m in meta["splits"].items()}
    counts["dropped"] = float(sum(sum(r.values()) for r in meta["dropped"].values()))
    for key, value in counts.items():
        metrics.log_metric(key, value)
    with Tracker.open(cfg, "data", task_context(cfg, config.metadata)) as tracker:
        tracker.log_metrics(counts, step=0)
        tracker.log_text(json.dumps(meta, indent=1, default=str), "data/manifest.json")


@torchrun_component
@ovr_component
def train_sft(
    config: Input[Artifact], dataset: Input[Dataset], gpus_per_node: int, model: Output[Model], metrics: Output[Metrics]
) -> str:
    """Language-only cold-start SFT on this pod's GPUs (one torchrun rank per GPU)."""
    from components.runtime import report_stage, task_config, task_context, train_in_pod

    cfg = task_config(config.path)
    return report_stage(train_in_pod("sft", cfg, task_context(cfg, config.metadata)), "sft", model, metrics)


@ovr_component
def launch_sft(
    config: Input[Artifact],
    dataset: Input[Dataset],
    nodes: int,
    gpus_per_node: int,
    s3_secret: str,
    mlflow_secret: str,
    run_id: str,
    job_deadline_s: int,
    queue: str,
    pending_timeout_s: int,
    admission_timeout_s: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """Language-only cold-start SFT as a multi-node TrainJob (PyTorchJob on Training Operator v1 clusters)."""
    from components.jobs import JobSettings
    from components.runtime import launch_job, report_stage, task_config, task_context

    settings = JobSettings(
        run_id=run_id,
        s3_secret=s3_secret,
        mlflow_secret=mlflow_secret or None,
        deadline_s=job_deadline_s,
        queue=queue or None,
        pending_timeout_s=pending_timeout_s,
        admission_timeout_s=admission_timeout_s or None,
    )
    cfg = task_config(config.path)
    result = launch_job("sft", cfg, task_context(cfg, config.metadata), nodes, gpus_per_node, None, settings)
    return report_stage(result, "sft", model, metrics)


@torchrun_component
@ovr_component
def train_rl(
    config: Input[Artifact],
    init_prefix: str,
    dataset: Input[Dataset],
    gpus_per_node: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """PPO/GRPO with verifiable rewards from the SFT export, on this pod's GPUs, rollouts on vLLM."""
    from components.runtime import report_stage, task_config, task_context, train_in_pod

    cfg = task_config(config.path)
    return report_stage(train_in_pod("rl", cfg, task_context(cfg, config.metadata), init_prefix), "rl", model, metrics)


@ovr_component
def launch_rl(
    config: Input[Artifact],
    init_prefix: str,
    dataset: Input[Dataset],
    nodes: int,
    gpus_per_node: int,
    s3_secret: str,
    mlflow_secret: str,
    reward_secret: str,
    rollout_secret: str,
    weights_claim: str,
    run_id: str,
    job_deadline_s: int,
    queue: str,
    pending_timeout_s: int,
    admission_timeout_s: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """PPO/GRPO with verifiable rewards as a multi-node TrainJob (PyTorchJob on Training Operator v1 clusters)."""
    from components.jobs import JobSettings
    from components.runtime import launch_job, report_stage, task_config, task_context

    settings = JobSettings(
        run_id=run_id,
        s3_secret=s3_secret,
        mlflow_secret=mlflow_secret or None,
        reward_secret=reward_secret or None,
        rollout_secret=rollout_secret or None,
        weights_claim=weights_claim or None,
        deadline_s=job_deadline_s,
        queue=queue or None,
        pending_timeout_s=pending_timeout_s,
        admission_timeout_s=admission_timeout_s or None,
    )
    cfg = task_config(config.path)
    result = launch_job("rl", cfg, task_context(cfg, config.metadata), nodes, gpus_per_node, init_prefix, settings)
    return report_stage(result, "rl", model, metrics)


@ovr_component
def evaluate_model(
    config: Input[Artifact],
    model_prefix: str,
    dataset: Input[Dataset],
    label: str,
    results: Output[Artifact],
    metrics: Output[Metrics],
):
    """avg@k of the exported model at ``model_prefix`` on the recipe's benchmarks, and behaviour analysis."""
    from components.runtime import run_eval, task_config, task_context

    cfg = task_config(config.path)
    result = run_eval(cfg, task_context(cfg, config.metadata), model_prefix, label, results.path)
    results.metadata.update({"label": label, "store_prefix": model_prefix})
    for score in result.benchmarks:
        metrics.log_metric(f"{score.benchmark}_avg@{result.k}", score.avg_at_k)
        metrics.log_metric(f"{score.benchmark}_truncation_rate", score.truncation_rate)
    for board in result.leaderboard:  # each benchmark in its own metric, and its denominator
        if board.score is not None:
            metrics.log_metric(f"{board.benchmark}_{board.metric.replace(' ', '_')}", board.score)
        metrics.log_metric(f"{board.benchmark}_items", board.items)


@ovr_component
def make_report(
    config: Input[Artifact],
    sft_eval: Input[Artifact],
    rl_eval: Input[Artifact],
    report: Output[Markdown],
    html: Output[dsl.HTML],
):
    """The run report (accuracy table, curves, behaviour rates) for the KFP UI and MLflow."""
    from components.runtime import run_report, task_config, task_context

    cfg = task_config(config.path)
    run_report(cfg, task_context(cfg, config.metadata), [sft_eval.path, rl_eval.path], report.path, html.path)
