"""What the pipeline components do at run time, kept out of the component bodies.

A training stage runs either in its task's pod, under ``torchrun --nproc-per-node=<GPUs>`` (every
rank runs the component; :func:`train_in_pod`), or — when the run asks for more than one node — as
a Kubeflow ``TrainJob`` (or ``PyTorchJob``) of trainer pods that the task creates, follows and
deletes (:func:`launch_job`; the pods run :mod:`components.train`, which calls the same
:func:`train_in_pod`). Either way the export lands in the store and the task reports its prefix.

Paths of volumes belong to the pod that mounts them: the config artifact carries the resolved
settings, and each pod applies its own mount paths on top (:func:`task_config`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from components.settings import SCRATCH_ENV, SCRATCH_MOUNT
from ovr.config import RunConfig, env_overrides, load_config
from ovr.context import RunContext, check_run_id
from ovr.schema import StageResult
from ovr.store import EXPORT_KINDS, Store, export_prefix

if TYPE_CHECKING:  # pragma: no cover
    from components.jobs import JobSettings

#: env vars a pod's spec sets for its own mounts (``section.field`` overrides of the config artifact):
#: the weights claim, the scratch volume's work and cache folders
POD_LOCAL_ENV = ("OVR__ROLLOUT__WEIGHTS_DIR", "OVR__SFT__WORK_DIR", "OVR__DATA__CACHE_DIR")


def param_overrides(model_path: str, dataset_name: str, sft_max_steps: int, rl_max_steps: int) -> list[str]:
    """The pipeline's UI parameters as overrides; empty strings and zeros keep the recipe's values."""
    pairs = [
        ("model.path", model_path),
        ("data.name", dataset_name),
        ("sft.max_steps", sft_max_steps),
        ("rl.max_steps", rl_max_steps),
    ]
    return [f"{key}={value}" for key, value in pairs if value]


def pod_local_overrides(environ: dict[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    return env_overrides({k: v for k, v in environ.items() if k in POD_LOCAL_ENV and v})


def use_scratch(mount: str = SCRATCH_MOUNT, environ=None, is_mount=os.path.ismount) -> bool:
    """Point temp files, Hugging Face caches and ovr's work and cache folders (SCRATCH_ENV) at the pod's
    scratch volume when one is mounted at ``mount``: checkpoints and model copies then never fill the
    container's writable layer. Settings already in the environment win. False (nothing changed)
    without the volume, e.g. in a local run."""
    environ = os.environ if environ is None else environ
    if not is_mount(mount):
        return False
    for key, value in SCRATCH_ENV.items():
        environ.setdefault(key, value)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    return True


def task_config(path: str | Path) -> RunConfig:
    """The config validate_config resolved, with this pod's own mount paths (claim, scratch) applied."""
    use_scratch()
    return load_config(path, pod_local_overrides(), use_env=False)


def task_context(cfg: RunConfig, metadata: dict) -> RunContext:
    """The run a task belongs to: the ids validate_config put on the config artifact's metadata."""
    run_id = metadata.get("run_id")
    if not run_id:
        raise ValueError("the config artifact names no run id: it was not written by validate_config")
    return RunContext.for_config(cfg, run_id, metadata.get("mlflow_run_id") or None)


def open_run(cfg: RunConfig, resume_from: str) -> RunContext:
    """The run this pipeline execution is: a new one (``none``), or an earlier run of the recipe to
    continue (its id, or ``latest``), which must be in the store; its MLflow run is opened or resumed."""
    from ovr.progress import stage_note
    from ovr.tracking import Tracker, find_mlflow_run

    store = Store.from_config(cfg.store)  # fails fast on a wrong endpoint, bucket or credentials
    wanted = (resume_from or "none").strip()
    if wanted == "none":
        ctx = RunContext.for_config(cfg)
    else:
        known = store.runs(cfg.name)
        run_id = known[-1] if wanted == "latest" and known else check_run_id(wanted)
        if run_id not in known:
            listed = ", ".join(known[-5:]) or "none"
            raise ValueError(
                f"resume_from={wanted!r}: the store {store} holds no run {run_id!r} of {cfg.name!r} "
                f"(its newest: {listed}); pass one of them, latest, or none for a new run"
            )
        ctx = RunContext.for_config(cfg, run_id, find_mlflow_run(cfg, run_id))
        stage_note("validate", f"resuming run {run_id} of {cfg.name}: finished stages are kept, the others continue")
    with Tracker.open(cfg, "pipeline", ctx) as tracker:
        return ctx.with_(mlflow_run_id=tracker.run_id)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


# --------------------------------------------------------------------------- in the pod
def _once_per_pod(key: str, make) -> Path:
    """``make(folder)`` into a folder named after ``key``, once per pod: the other ranks wait on a lock."""
    root = Path(tempfile.gettempdir()) / "ovr-models"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / hashlib.sha256(key.encode()).hexdigest()[:16]
    with open(root / f"{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / "config.json").is_file():
            part = Path(tempfile.mkdtemp(prefix=dest.name + "-", dir=root))
            make(part)
            part.rename(dest)
    return dest


def fetch_model(store: Store, prefix: str) -> Path:
    """A committed model export downloaded (hash-checked) once per pod."""
    return _once_per_pod(prefix, lambda folder: store.download(prefix, folder))


def local_model(cfg: RunConfig) -> str:
    """The starting model as a local folder: an s3:// ``model.path`` downloaded once per pod (not once
    per rank), a local one as it is (the tiny model built first when the recipe asks, by one rank)."""
    from ovr.models.loading import resolve_model_path

    if not cfg.model.path.startswith("s3://"):
        root = Path(tempfile.gettempdir()) / "ovr-models"
        root.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(Path(cfg.model.path).resolve()).encode()).hexdigest()[:16]
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return str(resolve_model_path(cfg.model, cfg.store))

    def fetch(folder: Path) -> None:
        resolve_model_path(cfg.model, cfg.store, cache=folder / "cache")
        (src,) = [p for p in (folder / "cache").iterdir() if p.is_dir()]
        for item in src.iterdir():
            item.rename(folder / item.name)

    return str(_once_per_pod(cfg.model.path, fetch))


def train_in_pod(stage: str, cfg: RunConfig, ctx: RunContext, init_prefix: str | None = None) -> StageResult:
    """Run ``sft`` or ``rl`` as this rank of a ``torchrun`` world in the run ``ctx``; rank 0 returns the
    export, the other ranks leave (``SystemExit(0)``) once training is over, so only rank 0 reports."""
    if stage not in EXPORT_KINDS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(EXPORT_KINDS)}")
    if init_prefix:
        ctx = ctx.with_(model_path=str(fetch_model(Store.from_config(cfg.store), init_prefix)))
    else:
        ctx = ctx.with_(model_path=local_model(cfg))
    world = os.environ.get("WORLD_SIZE", "1")
    print(
        f"{stage}: rank {rank()}/{world} (local rank {os.environ.get('LOCAL_RANK', '0')}) on "
        f"{os.environ.get('HOSTNAME', '?')}, run {ctx.run_id}, model {ctx.model_path}",
        flush=True,
    )
    if stage == "sft":
        from ovr.sft.train import run_sft

        result = run_sft(cfg, ctx, progress=False).stage_result()
    else:
        result = _train_rl(cfg, ctx)
    if rank() != 0:
        raise SystemExit(0)
    return result


@contextmanager
def replica_lease(cfg: RunConfig, ctx: RunContext, environ: dict[str, str] | None = None) -> Iterator[None]:
    """The install's shared rollout replicas leased to this run for the block (ovr/k8s/lease.py): on a
    cluster, around whatever pushes weights into them; a no-op for local servers."""
    environ = os.environ if environ is None else environ
    release = environ.get("OVR_INSTALL")
    if not (environ.get("KUBERNETES_SERVICE_HOST") and release and ctx.rollout_endpoints):
        yield
        return
    from kubernetes import client as k8s

    from ovr.k8s.jobs import load_api_client
    from ovr.k8s.lease import ReplicaLease
    from ovr.k8s.spec import current_namespace

    api = k8s.CoordinationV1Api(load_api_client())
    namespace = environ.get("OVR_POD_NAMESPACE") or current_namespace()
    lease = ReplicaLease(f"{release}-rollout", namespace, ctx.run_id, cfg.rollout.lease_duration_s, api=api)
    with lease.held(cfg.rollout.lease_wait_s):
        yield


def _train_rl(cfg: RunConfig, ctx: RunContext) -> StageResult:
    from ovr.rl.trainer import run_rl

    if rank() != 0:  # a rank that trains only
        return run_rl(cfg, ctx, progress=False).stage_result()
    if ctx.rollout_endpoints:  # the install's replicas: this run alone pushes into them
        with replica_lease(cfg, ctx):
            return run_rl(cfg, ctx, progress=False).stage_result()
    from services.local import local_services

    with local_services(cfg, ctx, ctx.model_path, trainer=True) as served:
        return run_rl(cfg, served, progress=False).stage_result()


def report_stage(result: StageResult, stage: str, model, metrics) -> str:
    """Write a stage's result into its KFP outputs (Model artifact + metadata, Metrics); its prefix."""
    if not result.export_prefix:
        raise RuntimeError(f"the {stage} stage finished without an export (step {result.global_step})")
    model.metadata.update({"store_prefix": result.export_prefix, "stage": stage})
    Path(model.path).parent.mkdir(parents=True, exist_ok=True)
    Path(model.path).write_text(result.model_dump_json(indent=1))
    metrics.log_metric("global_step", float(result.global_step))
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    return result.export_prefix


# --------------------------------------------------------------------------- as a job
def _raise_on_sigterm() -> None:
    """A cancelled run's SIGTERM unwinds the launcher like Ctrl-C, so the job is deleted on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def launch_job(
    stage: str,
    cfg: RunConfig,
    ctx: RunContext,
    nodes: int,
    gpus_per_node: int,
    init_prefix: str | None,
    settings: JobSettings,
) -> StageResult:
    """Run the stage as a multi-node job and read its export back from the store."""
    from components.jobs import stage_job_spec
    from ovr.k8s.jobs import run_job

    _raise_on_sigterm()
    spec = stage_job_spec(stage, cfg, ctx, nodes, gpus_per_node, init_prefix, settings)
    with replica_lease(cfg, ctx) if stage == "rl" else nullcontext():  # held for the job's pods
        kind = run_job(spec, on_status=lambda event: print(event, flush=True), limits=settings.limits())
    store = Store.from_config(cfg.store)
    manifest = store.latest(ctx.key, EXPORT_KINDS[stage])
    if manifest is None:
        raise RuntimeError(
            f"the {stage} {kind.kind} {spec.name} succeeded but committed no {EXPORT_KINDS[stage]} to {store}"
        )
    return StageResult.from_manifest(export_prefix(ctx.key, stage, manifest.step), manifest)


# --------------------------------------------------------------------------- eval and report
def run_eval(cfg: RunConfig, ctx: RunContext, model_prefix: str, label: str, out_path: str):
    """Evaluate the exported model at ``model_prefix``, scored through the reward service.

    With the install's replicas (``rollout.endpoints``) the model is first published to every replica
    through the shared weights folder (the averaged RL export or the SFT export, not whatever was
    pushed last), and every response must come from the version pushed. Without them (local runs) a
    vLLM server this task starts serves it. A reward service is started when none is configured.
    """
    from ovr.eval.runner import evaluate
    from services.local import local_services

    store = Store.from_config(cfg.store)
    manifest = store.read_manifest(model_prefix)
    if manifest is None:
        raise FileNotFoundError(f"no committed model at {model_prefix} in {store}")
    model_dir = fetch_model(store, model_prefix)
    version = None
    ro = cfg.rollout
    with replica_lease(cfg, ctx), local_services(cfg, ctx, model_dir) as served:
        if ctx.rollout_endpoints:
            version = _publish(ro, ctx, model_prefix, model_dir)
        return evaluate(
            cfg,
            ctx=served,
            out_dir=Path(out_path),
            label=label,
            step=int(manifest.step),
            progress=False,
            expect_version=version,
            require_service=True,
        )


def _publish(ro, ctx: RunContext, model_prefix: str, model_dir: Path) -> int:
    """Push the exported model at ``model_prefix`` into the install's replicas; its weight version."""
    from ovr.rollout.weights import FolderWeightSync

    if not ctx.weights_dir:
        raise ValueError("eval on the install's replicas needs rollout.weights_dir (the shared weights claim)")
    sync = FolderWeightSync(
        list(ctx.rollout_endpoints),
        ctx.weights_dir,
        timeout_s=ro.sync_timeout_s,
        keep=ro.keep_weight_versions,
        ranks_per_replica=ro.tensor_parallel_size,
    )
    version = sync.push_folder(model_dir)
    print(
        f"{model_prefix} published to {len(ctx.rollout_endpoints)} replica(s) as weight version {version}", flush=True
    )
    return version


def run_report(cfg: RunConfig, ctx: RunContext, eval_dirs: list[str], md_path: str, html_path: str) -> Path:
    """Build the report from the eval results; write it as self-contained KFP Markdown and HTML."""
    from ovr.eval.html import HTML_FILE
    from ovr.eval.records import EvalResult
    from ovr.eval.report import build_report

    results = [EvalResult.load(d) for d in eval_dirs]
    out_dir = Path(tempfile.mkdtemp(prefix="ovr-report-"))
    report = build_report(cfg, results, out_dir, ctx)
    text = (report.parent / "report_inline.md").read_text()  # figures embedded: one self-contained file
    Path(md_path).write_text(text)
    shutil.copyfile(report.parent / HTML_FILE, html_path)  # the standalone page build_report wrote
    return report
