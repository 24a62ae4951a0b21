"""What the pipeline components do at run time, kept out of the component bodies.

A stage runs in the component's own pod (one node, or a local subprocess under ``kfp.local``),
or — when the run asks for more than one node — as a Kubeflow ``PyTorchJob`` of trainer pods
(``torchrun -m ovr <stage>`` on the ovr image) that this task creates, follows and cleans up.
Either way its outputs land in the store, and the task reads them back from there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ovr.config import RunConfig, dump_config
from ovr.schema import StageResult
from ovr.store import EXPORT_KINDS, Store, export_prefix


def param_overrides(model_path: str, dataset_name: str, sft_max_steps: int, rl_max_steps: int) -> list[str]:
    """The pipeline's UI parameters as overrides; empty strings and zeros keep the recipe's values."""
    pairs = [("model.path", model_path), ("data.name", dataset_name),
             ("sft.max_steps", sft_max_steps), ("rl.max_steps", rl_max_steps)]
    return [f"{key}={value}" for key, value in pairs if value]


def run_stage(stage: str, cfg: RunConfig, nodes: int, gpus_per_node: int, init_prefix: str | None = None) -> StageResult:
    """Run ``sft`` or ``rl`` and describe its exported model (store prefix, step, metrics)."""
    store = Store.from_config(cfg.store)
    if init_prefix:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": _fetch_model(store, init_prefix)})})
    if nodes > 1:
        return _run_pytorchjob(stage, cfg, nodes, gpus_per_node, store)
    if stage == "sft":
        from ovr.sft.train import run_sft

        return run_sft(cfg, progress=False).stage_result()
    if stage == "rl":
        from ovr.rl.trainer import run_rl
        from services.local import local_services

        with local_services(cfg, cfg.model.path) as served:
            return run_rl(served, progress=False).stage_result()
    raise ValueError(f"unknown stage {stage!r}")


def _fetch_model(store: Store, prefix: str) -> str:
    """Download a committed model export (hash-checked) into a local folder."""
    dest = Path(tempfile.mkdtemp(prefix="ovr-model-"))
    return str(store.download(prefix, dest))


def _run_pytorchjob(stage: str, cfg: RunConfig, nodes: int, gpus_per_node: int, store: Store) -> StageResult:
    from components.images import OVR_IMAGE
    from components.resources import GPU_TOLERATION, PLACEMENTS, SECRET_ENV
    from ovr.k8s.pytorchjob import PyTorchJobSpec, run_pytorchjob

    placement = PLACEMENTS[stage]
    spec = PyTorchJobSpec(
        name=f"ovr-{cfg.name}-{stage}"[:50].lower().replace("_", "-"),
        image=os.environ.get("OVR_IMAGE", OVR_IMAGE),
        command=["bash", "-c", f'printf "%s" "$OVR_CONFIG_YAML" > /tmp/ovr.yaml && exec torchrun -m ovr {stage} --recipe /tmp/ovr.yaml --resume auto'],
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        cpu=placement.cpu,
        memory=placement.memory,
        env={"OVR_CONFIG_YAML": dump_config(cfg)},
        secret_env={os.environ.get("OVR_S3_SECRET", "ovr-s3"): SECRET_ENV["s3"]},
        tolerations=[GPU_TOLERATION] if gpus_per_node else [],
        shm_size=placement.shm,
    )
    run_pytorchjob(spec)
    manifest = store.latest(cfg.name, EXPORT_KINDS[stage])
    if manifest is None:
        raise RuntimeError(f"the {stage} PyTorchJob succeeded but committed no {EXPORT_KINDS[stage]} to {store}")
    return StageResult.from_manifest(export_prefix(cfg.name, stage, manifest.step), manifest)


def run_eval(cfg: RunConfig, model_prefix: str, label: str, out_path: str):
    """Serve the exported model (local vLLM unless endpoints are configured) and evaluate it,
    scoring through the reward service (the install's, or a local one)."""
    from ovr.eval.runner import evaluate
    from services.local import local_services

    store = Store.from_config(cfg.store)
    model_dir = _fetch_model(store, model_prefix) if not cfg.rollout.endpoints else None
    step = int(store.read_manifest(model_prefix).step)
    with local_services(cfg, model_dir) as served:
        return evaluate(served, out_dir=Path(out_path), label=label, step=step, progress=False)


def run_report(cfg: RunConfig, eval_dirs: list[str], md_path: str, html_path: str) -> Path:
    """Build the report from the eval results; write it as self-contained KFP Markdown and HTML."""
    import markdown

    from ovr.eval.records import EvalResult
    from ovr.eval.report import build_report

    results = [EvalResult.load(d) for d in eval_dirs]
    out_dir = Path(tempfile.mkdtemp(prefix="ovr-report-"))
    report = build_report(cfg, results, out_dir)
    text = (report.parent / "report_inline.md").read_text()  # figures embedded: one self-contained file
    Path(md_path).write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    Path(html_path).write_text(f"<!doctype html><meta charset=utf-8><title>{cfg.name}</title>{body}")
    return report
