"""The cluster twin: the tiny recipe, data -> SFT -> RL -> eval -> report, run as the cluster would run it.

Real: the rendered chart's ConfigMaps, Secrets and claims; the compiled pipeline YAML; every task's
container command, env and volumes from its compiled spec and platform config, each run as a fresh
process that sees only those (:mod:`pods`); the TrainJob the RL launcher creates, whose two pods are
started from its own spec with the rank variables Trainer v2's torch plugin sets; the rollout
replica (vLLM on CPU) and the reward service started from the chart's StatefulSet and Deployment;
an S3 server (moto) for the store, a real MLflow server, every store, weight-sync and scoring call.

Faked: the API server (kmock, with :mod:`tests.pipelines.apiserver`'s TrainJob field validation of
Trainer v2.3, its OpenAPI document, and RBAC answered from ``GRANTED``), the scheduler (tasks run one
at a time; no resources are enforced, so ``gpus_per_node=2`` means two CPU ranks per trainer pod), DNS
and the pod network (every pod is 127.0.0.1, ports remapped), the filesystem (mount paths rewritten
to local folders), images (venvs), the chart's bucket Job and the replica's model-sync init container
(done here with the S3 client), PostgreSQL (MLflow keeps sqlite) and the Trainer controller
(:mod:`trainer`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from driver import Driver
from pods import Namespace, start_pod, stop_pod
from trainer import TrainerTwin

from ovr.serving import ManagedServer, free_port
from tests.pipelines.apiserver import add_claim, serve_rbac, serve_trainer

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]
RELEASE, NS, SA = "ovr", "ml", "ovr-pipeline"
VALUES = {
    "rollout": {
        "replicas": 1,
        "weightSync": "folder",
        "maxModelLen": 1024,
        "dtype": "float32",
        "model": {"s3Uri": "s3://ovr-models/tiny"},
    },
    "reward": {"autoscaling": {"enabled": False}, "replicas": 1, "workers": 1, "pdb": {"enabled": False}},
}
OVERRIDES = [
    "model.path=s3://ovr-models/tiny",
    "model.build_tiny_if_missing=false",
    "sft.max_steps=4",
    "sft.save_every=4",
    "sft.zero_stage=2",
    "sft.global_batch_size=8",
    "sft.micro_batch_size=2",
    "rl.max_steps=2",
    "rl.save_every=1",
    "rl.prompts_per_step=4",
    "rl.samples_per_prompt=2",
    "rl.zero_stage=2",
    "data.synthetic.text_samples=120",
    "data.synthetic.visual_samples=40",
    "data.synthetic.eval_samples=4",
    "eval.k=1",
]
ARGS = {
    "recipe": "tiny-cpu",
    "overrides": OVERRIDES,
    "sft_nodes": 1,
    "rl_nodes": 2,
    "gpus_per_node": 2,
    "job_deadline_s": 3600,
}


def render_chart() -> list[dict]:
    import helm_python

    with helm_python.Chart.load(REPO / "helm" / "ovr") as chart:
        manifests = chart.render(VALUES, name=RELEASE, namespace=NS, is_install=True)
    return [d for p, t in sorted(manifests.items()) if not p.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]


#: what the run's account may do (stands for the cluster's RBAC until the twin evaluates the chart's Roles)
GRANTED = {
    ("create", "trainer.kubeflow.org", "trainjobs"),
    ("get", "trainer.kubeflow.org", "trainjobs"),
    ("delete", "trainer.kubeflow.org", "trainjobs"),
    ("list", "", "pods"),
    ("get", "", "pods/log"),
    ("get", "", "persistentvolumeclaims"),
}


def serve_api(kmock, docs: list[dict]) -> None:
    """The API the run talks to: Trainer v2.3's TrainJobs and runtime, the chart's claims, RBAC answers."""
    serve_trainer(kmock, "v2.3.0")
    serve_rbac(kmock, GRANTED)
    for d in docs:
        if d["kind"] == "PersistentVolumeClaim":
            add_claim(kmock, NS, d["metadata"]["name"], d["spec"].get("accessModes", ["ReadWriteMany"]))


def workload(docs, kind, name) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


async def wait_ready(url: str, pod, timeout_s: float = 300) -> None:
    import httpx

    for _ in range(int(timeout_s / 0.5)):
        if pod.proc.poll() is not None:
            raise RuntimeError(f"{pod.name} exited {pod.proc.returncode}:\n{pod.log_tail()}")
        try:
            if (await asyncio.to_thread(httpx.get, url, timeout=2.0)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{pod.name} not ready at {url}:\n{pod.log_tail()}")


def seed_store(ns: Namespace, endpoint: str, tiny_model_dir: Path) -> None:
    """What the chart's bucket Job and NOTES step 2 do: buckets, and the starting model in the models bucket."""
    from minio import Minio

    creds = ns.secrets[f"{RELEASE}-s3"]
    s3 = Minio(endpoint, access_key=creds["access_key"], secret_key=creds["secret_key"], secure=False)
    for bucket in ("ovr", "ovr-models", "mlflow"):
        s3.make_bucket(bucket)
    for f in sorted(p for p in tiny_model_dir.rglob("*") if p.is_file()):
        s3.fput_object("ovr-models", f"tiny/{f.relative_to(tiny_model_dir)}", str(f))


def start_services(ns: Namespace, docs: list[dict], s3_endpoint: str) -> list:
    """The reward Deployment's and the rollout StatefulSet's pods, as the chart renders them."""
    from minio import Minio

    reward = workload(docs, "Deployment", f"{RELEASE}-reward")["spec"]["template"]["spec"]
    rport = free_port()
    reward_pod = start_pod(
        ns, f"{RELEASE}-reward-0", reward["containers"][0], reward.get("volumes", []), ports={8000: rport}
    )
    ns.dns[f"{RELEASE}-reward.{NS}.svc:8000"] = f"127.0.0.1:{rport}"
    sts = workload(docs, "StatefulSet", f"{RELEASE}-rollout")["spec"]["template"]["spec"]
    vport = free_port()
    # the sync-model init container: mirror the starting model into the pod's model emptyDir
    model_dir = ns.root / "pods" / f"{RELEASE}-rollout-0" / "volumes" / "model" / "policy"
    creds = ns.secrets[f"{RELEASE}-s3"]
    s3 = Minio(s3_endpoint, access_key=creds["access_key"], secret_key=creds["secret_key"], secure=False)
    for obj in s3.list_objects("ovr-models", prefix="tiny/", recursive=True):
        s3.fget_object("ovr-models", obj.object_name, str(model_dir / obj.object_name.removeprefix("tiny/")))
    vllm = start_pod(
        ns,
        f"{RELEASE}-rollout-0",
        sts["containers"][0],
        sts["volumes"],
        ports={8000: vport},
        extra_env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    ns.dns[f"{RELEASE}-rollout-0.{RELEASE}-rollout-pods.{NS}.svc:8000"] = f"127.0.0.1:{vport}"
    return [(reward_pod, f"http://127.0.0.1:{rport}/readyz"), (vllm, f"http://127.0.0.1:{vport}/health")]


@pytest.mark.timeout(1500)
async def test_tiny_recipe_runs_on_the_cluster_twin(kmock, tmp_path, tiny_model_dir, rollout_python):
    docs = render_chart()
    ns = Namespace(NS, tmp_path)
    ns.add_objects(docs)
    serve_api(kmock, docs)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "twin",
                "clusters": [{"name": "twin", "cluster": {"server": str(kmock.url).rstrip("/")}}],
                "contexts": [{"name": "twin", "context": {"cluster": "twin", "user": "sa", "namespace": NS}}],
                "users": [{"name": "sa", "user": {}}],
            }
        )
    )
    ns.env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(kmock.url.port),
        "KUBECONFIG": str(kubeconfig),
    }
    s3 = ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    )
    mlflow = ManagedServer(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "--artifacts-destination",
            str(tmp_path / "mlflow-artifacts"),
        ],
        health_path="/health",
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        name="mlflow",
        startup_timeout_s=120,
    )
    services, trainer_task, driver = [], None, None
    try:
        await asyncio.to_thread(s3.start)
        await asyncio.to_thread(mlflow.start)
        ns.dns[f"{RELEASE}-minio.{NS}.svc:9000"] = f"127.0.0.1:{s3.port}"
        ns.dns[f"{RELEASE}-mlflow.{NS}.svc:5000"] = f"127.0.0.1:{mlflow.port}"
        seed_store(ns, f"127.0.0.1:{s3.port}", tiny_model_dir)
        services = start_services(ns, docs, f"127.0.0.1:{s3.port}")
        for pod, url in services:
            await wait_ready(url, pod)
        trainer = TrainerTwin(kmock, ns, SA)
        trainer_task = asyncio.create_task(trainer.run())
        driver = Driver(REPO / "pipelines" / "ovr_pipeline.yaml", ns, tmp_path / "kfp", SA)
        scope = await driver.run(ARGS)
        check_run(driver, scope, trainer, kmock, ns)
    finally:
        if trainer_task is not None:
            trainer_task.cancel()
            await asyncio.gather(trainer_task, return_exceptions=True)
        for pod in [p for p, _ in services] + (list(driver.pods.values()) if driver else []):
            stop_pod(pod)
        mlflow.stop()
        s3.stop()


def check_run(driver: Driver, scope, trainer: TrainerTwin, kmock, ns: Namespace) -> None:
    # the single-node SFT used both "GPUs" of its pod: two torchrun ranks
    assert "sft: rank 1/2" in driver.pods["train-sft"].log.read_text()
    assert {"condition-2", "condition-6"} <= set(driver.skipped)  # the multi-node SFT and single-node RL branches
    # the multi-node RL ran as one TrainJob of 2 pods x 2 ranks, owned by its launcher pod, then deleted
    (name, job) = next(iter(trainer.seen.items()))
    assert len(trainer.seen) == 1 and len(name) <= 48
    schema = yaml.safe_load((REPO / "tests/pipelines/crds/trainjob-v1alpha1.yaml").read_text())
    jsonschema.validate(job, schema)
    launcher = driver.pods["launch-rl"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == launcher.uid
    assert job["spec"]["activeDeadlineSeconds"] == 3600 and job["spec"]["trainer"]["numNodes"] == 2
    assert name in trainer.deleted
    logs = "".join(p.log.read_text() for p in trainer.pods[name])
    assert "rl: rank 3/4" in logs
    # both evals published their model to the replica and sampled only that version
    sft_log, rl_log = (driver.pods[t].log.read_text() for t in ("evaluate-model", "evaluate-model-2"))
    assert "runs/tiny-cpu/sft-export/" in sft_log and "as weight version 1" in sft_log
    assert "runs/tiny-cpu/rl-export/" in rl_log and "published to 1 replica(s)" in rl_log
    weights = sorted(p.name for p in ns.claims[f"{RELEASE}-weights"].iterdir())
    assert weights and all(w.startswith("v") for w in weights)
    # the report, from the two evals
    (report,) = scope.outputs["make-report"]["artifacts"]["report"]
    text = Path(report["uri"]).read_text()
    assert text.startswith("# ovr run report: tiny-cpu") and "| sft (avg@1) | rl (avg@1) |" in text
