"""The public ovr pipeline: validate -> data -> cold-start SFT -> RL -> eval (SFT and RL) -> report.

Run parameters a user sets in the KFP UI are the pipeline's arguments. Everything else comes from
the recipe (a file name in the image's ``recipes/`` or the Helm chart's recipes ConfigMap) and
``overrides`` (``section.field=value`` strings, e.g. ``rl.max_steps=100``).

Validate config runs the image the pipeline was compiled with; every later task runs the image the
install's ConfigMap names (Validate config's ``image`` output, resolved by KFP at run time: KFP
backend >= 2.4), and the GPU tasks take the install's node selector and tolerations the same way
(KFP >= 2.5). Tasks whose retry cannot do harm retry with backoff (:data:`RETRIES`).
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import Markdown

from components.resources import Install, place
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

#: task -> (retries, first backoff): the tasks a retry cannot harm. Validate config only reads (a retry
#: opens one more MLflow run); the data build writes the same shards for the same config and commits
#: manifest-last; a training task or launcher resumes from the run's last checkpoint in the store (a
#: retried launcher adopts its job when it still runs, replaces it when it failed); an eval publishes
#: the same export and writes its own results; the report is rebuilt from them. Training retries once:
#: a deterministic failure (a bad config, out of memory) should reach the user, not loop.
RETRIES = {
    "validate": (2, "30s"),
    "data": (2, "60s"),
    "train": (1, "300s"),
    "eval": (2, "60s"),
    "report": (2, "30s"),
}


def retry(task, kind: str):
    count, backoff = RETRIES[kind]
    return task.set_retry(count, backoff_duration=backoff, backoff_factor=2.0, backoff_max_duration="3600s")


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
    queue: str = "",
    pending_timeout_s: int = 1800,
    admission_timeout_s: int = 24 * 3600,
    resume_from: str = "none",
    image_pull_secret: Optional[str] = None,  # noqa: UP045 - KFP reads the annotation: an optional parameter
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
        queue: Kueue LocalQueue of the multi-node jobs (their kueue.x-k8s.io/queue-name label); empty: none.
        pending_timeout_s: fail a multi-node stage whose pods stay Unschedulable this long.
        admission_timeout_s: fail a multi-node stage Kueue has not admitted after this long (0: wait).
        resume_from: none (a new run), the id of an earlier run of the recipe to continue (finished
            stages are kept, an interrupted one continues from its newest checkpoint), or latest.
        image_pull_secret: Secret pulling ovr's image for the pipeline's pods (empty: the service account's).
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
            sft_nodes=sft_nodes,
            rl_nodes=rl_nodes,
            gpus_per_node=gpus_per_node,
            weights_claim=weights_claim,
            s3_secret=s3_secret,
            mlflow_secret=mlflow_secret,
            reward_secret=reward_secret,
            rollout_secret=rollout_secret,
            queue=queue,
            job_deadline_s=job_deadline_s,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            resume_from=resume_from,
        ),
        "validate",
        "Validate config",
        secrets=scoring,  # it checks the reward and rollout tokens work
        install_env=install_env,
        pod_identity=True,
        install=Install(env=install_env, pull_secret=image_pull_secret),
    )
    retry(validate, "validate")
    install = Install(
        env=install_env,
        pull_secret=image_pull_secret,
        image=validate.outputs["image"],
        node_selector=validate.outputs["node_selector"],
        tolerations=validate.outputs["tolerations"],
    )
    config = validate.outputs["config"]
    data = retry(place(build_data(config=config), "data", "Build data", secrets=secrets, install=install), "data")
    dataset = data.outputs["dataset"]
    job = {
        "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        "job_deadline_s": job_deadline_s,
        "s3_secret": s3_secret,
        "mlflow_secret": mlflow_secret,
        "queue": queue,
        "pending_timeout_s": pending_timeout_s,
        "admission_timeout_s": admission_timeout_s,
    }

    with dsl.If(sft_nodes > 1, "multi-node-sft"):
        sft_job = place(
            launch_sft(config=config, dataset=dataset, nodes=sft_nodes, gpus_per_node=gpus_per_node, **job),
            "sft-launcher",
            "Cold-start SFT (job launcher)",
            secrets=secrets,
            install_env=install_env,
            pod_identity=True,
            install=install,
        )
        retry(sft_job, "train")
    with dsl.Else("single-node-sft"):
        sft_pod = place(
            train_sft(config=config, dataset=dataset, gpus_per_node=gpus_per_node),
            "sft",
            "Cold-start SFT (language only)",
            secrets=secrets,
            gpus=gpus_per_node,
            install=install,
        )
        retry(sft_pod, "train")
    sft_prefix = dsl.OneOf(sft_job.outputs["Output"], sft_pod.outputs["Output"])
    # the SFT model is evaluated on the shared replicas before RL starts pushing its own weights there
    sft_eval = place(
        evaluate_model(config=config, model_prefix=sft_prefix, dataset=dataset, label="sft"),
        "eval",
        "Evaluate SFT model",
        secrets=scoring,
        weights_claim=weights_claim,
        install=install,
    )
    retry(sft_eval, "eval")

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
            install=install,
        ).after(sft_eval)
        retry(rl_job, "train")
    with dsl.Else("single-node-rl"):
        rl_pod = place(
            train_rl(config=config, init_prefix=sft_prefix, dataset=dataset, gpus_per_node=gpus_per_node),
            "rl",
            "Multimodal RL",
            secrets=scoring,
            gpus=gpus_per_node,
            weights_claim=weights_claim,
            pod_identity=True,
            install=install,
        ).after(sft_eval)
        retry(rl_pod, "train")
    rl_prefix = dsl.OneOf(rl_job.outputs["Output"], rl_pod.outputs["Output"])
    rl_eval = place(
        evaluate_model(config=config, model_prefix=rl_prefix, dataset=dataset, label="rl"),
        "eval",
        "Evaluate RL model",
        secrets=scoring,
        weights_claim=weights_claim,
        install=install,
    )
    retry(rl_eval, "eval")
    report = place(
        make_report(config=config, sft_eval=sft_eval.outputs["results"], rl_eval=rl_eval.outputs["results"]),
        "report",
        "Report",
        secrets=secrets,
        install=install,
    )
    retry(report, "report")
    return report.outputs["report"]
