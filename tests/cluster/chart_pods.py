"""The chart's long-running pods in the cluster twin, started from their rendered specs: the model
bootstrap Job (against a hub-like cache: no download), MLflow (its basic-auth app, the chart's
default), the reward service and the vLLM replica (after the init container's wait for the model).

Faked here, and how: the buckets Job (its buckets made with the S3 client); PostgreSQL (MLflow's
tracking and auth databases are sqlite: the chart's database URIs are rewritten, and MLflow runs
one worker); the hub (``HF_HUB_OFFLINE`` with a cache folder holding the tiny model); the replica's
``sync-model`` init container (the S3 client waits for the bootstrap's marker, then mirrors).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from pods import Namespace, Pod, start_pod

from ovr.serving import free_port

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"
MARKER = "ovr-model.json"


def workload(docs: list[dict], kind: str, prefix: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix))


def hub_cache(root: Path, repo_id: str, model_dir: Path) -> Path:
    """A Hugging Face hub cache holding ``model_dir`` as ``repo_id`` at ``main`` (what HF_HUB_OFFLINE reads)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    shutil.copytree(model_dir, repo / "snapshots" / HUB_COMMIT, dirs_exist_ok=True)
    return root


def s3_client(ns: Namespace, release: str, endpoint: str):
    from minio import Minio

    creds = ns.secrets[f"{release}-s3"]
    return Minio(endpoint, access_key=creds["access_key"], secret_key=creds["secret_key"], secure=False)


def make_buckets(ns: Namespace, release: str, endpoint: str, buckets=("ovr", "ovr-models", "mlflow")) -> None:
    """What the chart's post-install buckets Job does."""
    s3 = s3_client(ns, release, endpoint)
    for bucket in buckets:
        if not s3.bucket_exists(bucket):
            s3.make_bucket(bucket)


def start_bootstrap(ns: Namespace, docs: list[dict], release: str, hub: Path) -> Pod:
    """The model bootstrap Job's pod, as rendered, reading the hub from ``hub`` (offline)."""
    job = workload(docs, "Job", f"{release}-model-bootstrap-")
    spec = job["spec"]["template"]
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub)}
    name = f"{job['metadata']['name']}-0"
    return start_pod(ns, name, spec["spec"]["containers"][0], spec["spec"]["volumes"], host_env=offline, manifest=spec)


def start_mlflow(ns: Namespace, docs: list[dict], release: str, root: Path) -> tuple[Pod, str]:
    """MLflow's Deployment pod as rendered (basic-auth app), on sqlite instead of PostgreSQL."""
    dep = workload(docs, "Deployment", f"{release}-mlflow")
    tmpl = dep["spec"]["template"]
    container = dict(tmpl["spec"]["containers"][0])
    args = []
    for a in container["args"]:
        if a.startswith("--backend-store-uri="):
            a = f"--backend-store-uri=sqlite:///{root}/mlflow.db"
        elif a.startswith("--workers="):
            a = "--workers=1"
        args.append(a)
    container["args"] = args
    auth = ns.configmaps.get(f"{release}-mlflow-auth")
    if auth is not None:  # the auth app's own tables: sqlite too
        ini = auth["basic_auth.ini"].splitlines()
        auth["basic_auth.ini"] = "\n".join(
            f"database_uri = sqlite:///{root}/auth.db" if line.startswith("database_uri") else line for line in ini
        )
    port = free_port()
    pod = start_pod(
        ns,
        f"{release}-mlflow-0",
        container,
        tmpl["spec"]["volumes"],
        ports={5000: port},
        extra_env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        manifest=tmpl,
    )
    ns.dns[f"{release}-mlflow.{ns.name}.svc:5000"] = f"127.0.0.1:{port}"
    return pod, f"http://127.0.0.1:{port}/health"


async def sync_model(ns: Namespace, release: str, endpoint: str, uri: str, dest: Path, timeout_s: float = 300) -> None:
    """The replica's sync-model init container: wait for the bootstrap's marker, then mirror the model."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = s3_client(ns, release, endpoint)
    for _ in range(int(timeout_s / 0.5)):
        if any(True for _ in s3.list_objects(bucket, prefix=f"{prefix}/{MARKER}")):
            break
        await asyncio.sleep(0.5)
    else:
        raise TimeoutError(f"{uri}/{MARKER} never appeared (the model bootstrap Job did not finish)")
    for obj in s3.list_objects(bucket, prefix=f"{prefix}/", recursive=True):
        s3.fget_object(bucket, obj.object_name, str(dest / obj.object_name.removeprefix(f"{prefix}/")))


def start_reward(ns: Namespace, docs: list[dict], release: str) -> tuple[Pod, str]:
    tmpl = workload(docs, "Deployment", f"{release}-reward")["spec"]["template"]
    port = free_port()
    pod = start_pod(
        ns,
        f"{release}-reward-0",
        tmpl["spec"]["containers"][0],
        tmpl["spec"].get("volumes", []),
        ports={8000: port},
        manifest=tmpl,
    )
    ns.dns[f"{release}-reward.{ns.name}.svc:8000"] = f"127.0.0.1:{port}"
    return pod, f"http://127.0.0.1:{port}/readyz"


async def start_rollout(ns: Namespace, docs: list[dict], release: str, endpoint: str) -> tuple[Pod, str]:
    sts = workload(docs, "StatefulSet", f"{release}-rollout")
    tmpl = sts["spec"]["template"]
    uri = next(e["value"] for e in tmpl["spec"]["initContainers"][0]["env"] if e["name"] == "MODEL_URI")
    name = f"{release}-rollout-0"
    await sync_model(ns, release, endpoint, uri, ns.root / "pods" / name / "volumes" / "model" / "policy")
    port = free_port()
    pod = start_pod(
        ns,
        name,
        tmpl["spec"]["containers"][0],
        tmpl["spec"]["volumes"],
        ports={8000: port},
        extra_env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        manifest=tmpl,
    )
    ns.dns[f"{name}.{sts['spec']['serviceName']}.{ns.name}.svc:8000"] = f"127.0.0.1:{port}"
    return pod, f"http://127.0.0.1:{port}/health"
