"""The public ovr pipeline: validate -> data -> cold-start SFT -> RL -> eval (SFT and RL) -> report.

Run parameters a user sets in the KFP UI are the pipeline's arguments. Everything else comes from
the recipe (a file name in the image's ``recipes/`` or the Helm chart's recipes ConfigMap) and
``overrides`` (``section.field=value`` strings, e.g. ``rl.max_steps=100``).
"""

from kfp import dsl
from kfp.dsl import Markdown

from components.resources import place
from components.stages import (
    build_data,
    evaluate_model,
    launch_rl,
    launch_sft,
    make_report,
    train_rl,
    train_sft,
    validate_config,
)


@dsl.pipeline(
    name="ovr",
    description="Open-Vision-Reasoner-style training: language-only cold-start SFT of Qwen2.5-VL, "
    "then multimodal RL with verifiable rewards, evaluation and a report.",
)
def ovr_pipeline(
    recipe: str = "ovr-7b",
    overrides: list = [],  # noqa: B006 - KFP list parameter default
    model_path: str = "",
    dataset_name: str = "",
    sft_max_steps: int = 0,
    rl_max_steps: int = 0,
    sft_nodes: int = 1,
    rl_nodes: int = 1,
    gpus_per_node: int = 8,
    job_deadline_s: int = 14 * 24 * 3600,
    s3_secret: str = "ovr-s3",
    reward_secret: str = "ovr-reward",
    rollout_secret: str = "ovr-rollout",
    mlflow_secret: str = "ovr-mlflow",
    install_env: str = "ovr-env",
    weights_claim: str = "ovr-weights",
    resume_from: str = "none",
) -> Markdown:
    """
    Args:
        recipe: recipe name (recipes/<name>.yaml in the image) or path.
        overrides: extra ``section.field=value`` settings applied after the recipe.
        model_path: start checkpoint (local path or s3:// URI); empty keeps the recipe's.
        dataset_name: dataset name in the store; empty keeps the recipe's.
        sft_max_steps: stop SFT after this many steps; 0 keeps the recipe's.
        rl_max_steps: RL steps; 0 keeps the recipe's.
        sft_nodes: nodes for SFT (> 1 launches a TrainJob, or a PyTorchJob on Training Operator v1).
        rl_nodes: nodes for the RL trainer (> 1 launches a TrainJob / PyTorchJob).
        gpus_per_node: GPUs of each SFT/RL node (one torchrun rank each; 0 = one CPU rank).
        job_deadline_s: activeDeadlineSeconds of a multi-node job.
        s3_secret: Kubernetes secret with the store's access_key/secret_key.
        reward_secret: Kubernetes secret with the reward service's bearer token.
        rollout_secret: Kubernetes secret with the rollout servers' bearer token (RL and eval).
        mlflow_secret: Kubernetes secret with MLflow's login (username/password; every step logs).
        install_env: the Helm chart's ConfigMap of OVR__* endpoints and replica settings.
        weights_claim: the RWX claim the rollout replicas mount at /weights (weight pushes).
        resume_from: none (a new run), the id of an earlier run of the recipe to continue (finished
            stages are kept, an interrupted one continues from its newest checkpoint), or latest.
    """
    secrets = {"s3": s3_secret, "mlflow": mlflow_secret}
    scoring = {**secrets, "reward": reward_secret, "rollout": rollout_secret}
    validate = place(
        validate_config(
            recipe=recipe,
            overrides=overrides,
            model_path=model_path,
            dataset_name=dataset_name,
            sft_max_steps=sft_max_steps,
            rl_max_steps=rl_max_steps,
            install_env=install_env,
            resume_from=resume_from,
        ),
        "validate",
        "Validate config",
        secrets=secrets,
        install_env=install_env,
        pod_identity=True,
    )
    config = validate.outputs["config"]
    data = place(build_data(config=config), "data", "Build data", secrets=secrets)
    dataset = data.outputs["dataset"]
    job = {
        "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        "job_deadline_s": job_deadline_s,
        "s3_secret": s3_secret,
        "mlflow_secret": mlflow_secret,
    }

    with dsl.If(sft_nodes > 1, "multi-node-sft"):
        sft_job = place(
            launch_sft(config=config, dataset=dataset, nodes=sft_nodes, gpus_per_node=gpus_per_node, **job),
            "sft-launcher",
            "Cold-start SFT (job launcher)",
            secrets=secrets,
            install_env=install_env,
            pod_identity=True,
        )
    with dsl.Else("single-node-sft"):
        sft_pod = place(
            train_sft(config=config, dataset=dataset, gpus_per_node=gpus_per_node),
            "sft",
            "Cold-start SFT (language only)",
            secrets=secrets,
            gpus=gpus_per_node,
        )
    sft_prefix = dsl.OneOf(sft_job.outputs["Output"], sft_pod.outputs["Output"])
    # the SFT model is evaluated on the shared replicas before RL starts pushing its own weights there
    sft_eval = place(
        evaluate_model(config=config, model_prefix=sft_prefix, dataset=dataset, label="sft"),
        "eval",
        "Evaluate SFT model",
        secrets=scoring,
        weights_claim=weights_claim,
    )

    with dsl.If(rl_nodes > 1, "multi-node-rl"):
        rl_job = place(
            launch_rl(
                config=config,
                init_prefix=sft_prefix,
                dataset=dataset,
                nodes=rl_nodes,
                gpus_per_node=gpus_per_node,
                reward_secret=reward_secret,
                rollout_secret=rollout_secret,
                weights_claim=weights_claim,
                **job,
            ),
            "rl-launcher",
            "Multimodal RL (job launcher)",
            secrets=secrets,
            install_env=install_env,
            pod_identity=True,
        ).after(sft_eval)
    with dsl.Else("single-node-rl"):
        rl_pod = place(
            train_rl(config=config, init_prefix=sft_prefix, dataset=dataset, gpus_per_node=gpus_per_node),
            "rl",
            "Multimodal RL",
            secrets=scoring,
            gpus=gpus_per_node,
            weights_claim=weights_claim,
            pod_identity=True,
        ).after(sft_eval)
    rl_prefix = dsl.OneOf(rl_job.outputs["Output"], rl_pod.outputs["Output"])
    rl_eval = place(
        evaluate_model(config=config, model_prefix=rl_prefix, dataset=dataset, label="rl"),
        "eval",
        "Evaluate RL model",
        secrets=scoring,
        weights_claim=weights_claim,
    )
    report = place(
        make_report(config=config, sft_eval=sft_eval.outputs["results"], rl_eval=rl_eval.outputs["results"]),
        "report",
        "Report",
        secrets=secrets,
    )
    return report.outputs["report"]
