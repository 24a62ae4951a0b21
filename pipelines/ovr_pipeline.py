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
    cold_start_sft,
    evaluate_model,
    make_report,
    multimodal_rl,
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
    s3_secret: str = "ovr-s3",
    reward_secret: str = "ovr-reward",
    install_env: str = "ovr-env",
) -> Markdown:
    """
    Args:
        recipe: recipe name (recipes/<name>.yaml in the image) or path.
        overrides: extra ``section.field=value`` settings applied after the recipe.
        model_path: start checkpoint (local path or s3:// URI); empty keeps the recipe's.
        dataset_name: dataset name in the store; empty keeps the recipe's.
        sft_max_steps: stop SFT after this many steps; 0 keeps the recipe's.
        rl_max_steps: RL steps; 0 keeps the recipe's.
        sft_nodes: nodes for SFT (> 1 launches a PyTorchJob).
        rl_nodes: nodes for the RL trainer (> 1 launches a PyTorchJob).
        gpus_per_node: GPUs of each SFT/RL node.
        s3_secret: Kubernetes secret with the store's access_key/secret_key.
        reward_secret: Kubernetes secret with the reward service's bearer token.
        install_env: the Helm chart's ConfigMap of OVR__* endpoints (store, MLflow, services).
    """
    secrets = {"s3": s3_secret}
    validate = place(
        validate_config(
            recipe=recipe, overrides=overrides, model_path=model_path, dataset_name=dataset_name,
            sft_max_steps=sft_max_steps, rl_max_steps=rl_max_steps,
        ),
        "validate", "Validate config", secrets=secrets, install_env=install_env,
    )
    config = validate.outputs["config"]
    data = place(build_data(config=config), "data", "Build data", secrets=secrets)
    sft = place(
        cold_start_sft(config=config, dataset=data.outputs["dataset"], nodes=sft_nodes, gpus_per_node=gpus_per_node),
        "sft", "Cold-start SFT (language only)", secrets=secrets, gpus=gpus_per_node,
    )
    rl = place(
        multimodal_rl(
            config=config, init_model=sft.outputs["model"], dataset=data.outputs["dataset"], nodes=rl_nodes,
            gpus_per_node=gpus_per_node,
        ),
        "rl", "Multimodal RL", secrets={**secrets, "reward": reward_secret}, gpus=gpus_per_node,
    )
    evals = {}
    for stage, task in (("sft", sft), ("rl", rl)):
        evals[stage] = place(
            evaluate_model(config=config, model=task.outputs["model"], dataset=data.outputs["dataset"], label=stage),
            "eval", f"Evaluate {stage.upper()} model", secrets=secrets,
        )
    report = place(
        make_report(config=config, sft_eval=evals["sft"].outputs["results"], rl_eval=evals["rl"].outputs["results"]),
        "report", "Report", secrets=secrets,
    )
    return report.outputs["report"]
