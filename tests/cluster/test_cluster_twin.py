"""The cluster twin: the tiny recipe, data -> SFT -> RL -> eval -> report, run as the cluster would run it.

Real: the chart rendered into a Kubeflow profile namespace, its ConfigMaps, Secrets and claims;
the compiled pipeline YAML; every task's container command, env and volumes from its compiled spec
and platform config, each run as a fresh process that sees only those (:mod:`pods`); the TrainJob
the RL launcher creates, whose two pods are started from what the API server stored, with the rank
variables Trainer v2's torch plugin sets; the model bootstrap Job, MLflow (basic auth on, as the
chart sets it), the reward service and the vLLM replica started from the chart's Job, Deployments
and StatefulSet (:mod:`chart_pods`); an S3 server (moto) for the store, every store, weight-sync,
tracking and scoring call; RBAC and TrainJob field pruning on every API call (:mod:`apiserver`:
the run's account is the one the NOTES name, with the chart's Roles and a profile's standard
roles; the Trainer v2.3 schema), and every pod of the run judged against the chart's
NetworkPolicies, Istio objects and the twin's nodes (:mod:`first_run`, :mod:`policies`).

Faked: the API server (kmock's emulator, with RBAC and pruning but no admission webhooks, CEL
rules or defaulting), KFP's own containers in each task pod (driver, launcher, Argo's executor:
their API calls are replayed, :func:`first_run.replay_kfp_calls`), the scheduler (tasks run one at
a time; pods are only checked against the twin's nodes, so ``gpus_per_node=2`` means two CPU ranks
per trainer pod), DNS and the pod network (every pod is 127.0.0.1, ports remapped; NetworkPolicies
and Istio are judged from the objects, not enforced), the filesystem (mount paths rewritten to
local folders), images (venvs), the hub (a local cache, ``HF_HUB_OFFLINE``), the chart's bucket Job
and the replica's model-sync init container (done here with the S3 client), PostgreSQL (MLflow
keeps sqlite, with one worker) and the Trainer controller (:mod:`trainer`).
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from apiserver import client_for
from chart_pods import hub_cache, make_buckets, start_bootstrap, start_mlflow, start_reward, start_rollout
from driver import Driver
from first_run import Install, named_targets, pod_problems, replay_kfp_calls
from install import profile_rbac, render, run_account
from pods import Namespace, stop_pod
from pruning import load_crd
from trainer import TrainerTwin

from ovr.serving import ManagedServer

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]
RELEASE, NS = "ovr", "ml"
HUB_ID = "ovr-twin/tiny-qwen2.5-vl"
VALUES = {
    "rollout": {
        "replicas": 1,
        "weightSync": "folder",
        "maxModelLen": 1024,
        "dtype": "float32",
        "model": {"s3Uri": "s3://ovr-models/tiny", "bootstrap": {"hubId": HUB_ID}},
        "weights": {"storageClass": "nfs"},
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


async def wait_ready(url: str, pod, timeout_s: float = 300) -> None:
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


async def start_services(ns: Namespace, docs: list[dict], s3_endpoint: str, tmp_path: Path, model: Path) -> list:
    """The chart's pods: the model bootstrap Job, MLflow, the reward service, the vLLM replica."""
    make_buckets(ns, RELEASE, s3_endpoint)
    bootstrap = start_bootstrap(ns, docs, RELEASE, hub_cache(tmp_path / "hub", HUB_ID, model))
    services = [
        bootstrap,
        *(p for p, _ in [start_mlflow(ns, docs, RELEASE, tmp_path), start_reward(ns, docs, RELEASE)]),
    ]
    urls = [None, f"http://{ns.dns[f'{RELEASE}-mlflow.{NS}.svc:5000']}/health",
            f"http://{ns.dns[f'{RELEASE}-reward.{NS}.svc:8000']}/readyz"]  # fmt: skip
    vllm, vllm_url = await start_rollout(ns, docs, RELEASE, s3_endpoint)  # waits for the bootstrap's marker
    assert await asyncio.to_thread(bootstrap.proc.wait, 60) == 0, bootstrap.log_tail()
    for pod, url in zip([*services[1:], vllm], [*urls[1:], vllm_url]):
        await wait_ready(url, pod)
    return [*services, vllm]


@pytest.mark.timeout(1500)
async def test_tiny_recipe_runs_on_the_cluster_twin(api_server, tmp_path, tiny_model_dir, rollout_python):
    docs, notes = render(VALUES, RELEASE, NS)
    account = run_account(notes)
    api_server.rbac = profile_rbac(docs, NS)
    api_server.serve_crd(load_crd("trainjob-v2.3.0.yaml"))
    api_server.hold(docs, NS)
    ns = Namespace(NS, tmp_path)
    ns.add_objects(docs)
    ns.api = api_server
    s3 = ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    )
    services, trainer_task, driver = [], None, None
    try:
        await asyncio.to_thread(s3.start)
        ns.dns[f"{RELEASE}-minio.{NS}.svc:9000"] = f"127.0.0.1:{s3.port}"
        services = await start_services(ns, docs, f"127.0.0.1:{s3.port}", tmp_path, tiny_model_dir)
        trainer = TrainerTwin(api_server, ns, account)
        trainer_task = asyncio.create_task(trainer.run())
        driver = Driver(REPO / "pipelines" / "ovr_pipeline.yaml", ns, tmp_path / "kfp", account)
        client = client_for(api_server, NS, account)
        driver.system_calls = lambda pod: replay_kfp_calls(client, NS, pod, f"ovr-{driver.run_id[:8]}")
        scope = await driver.run(ARGS)
        check_run(driver, scope, trainer, ns)
        check_cluster(api_server, Install(docs, NS, "none"), driver, trainer, services, ns)
    finally:
        if trainer_task is not None:
            trainer_task.cancel()
            await asyncio.gather(trainer_task, return_exceptions=True)
        for pod in services + (list(driver.pods.values()) if driver else []):
            stop_pod(pod)
        s3.stop()


def check_cluster(api, install: Install, driver: Driver, trainer: TrainerTwin, services: list, ns: Namespace) -> None:
    """No API call refused, no field pruned, no pod a node, the mesh or a NetworkPolicy would refuse;
    MLflow's login was asked for and every stage logged with it."""
    assert not api.forbidden(), "\n".join(str(c.request) for c in api.forbidden())
    assert not api.pruned, api.pruned
    verbs = {(c.request.verb, c.request.resource) for c in api.calls}
    assert {("create", "trainjobs"), ("get", "trainjobs"), ("delete", "trainjobs"), ("get", "secrets")} <= verbs
    problems = []
    run_pods = list(driver.pods.values()) + [p for pods in trainer.pods.values() for p in pods]
    for pod in run_pods:
        targets = {install.targets[h] for h in pod.reaches if h in install.targets}
        problems += pod_problems(pod.name, pod.manifest, targets, install)
    for pod in services:
        problems += pod_problems(pod.name, pod.manifest, named_targets(pod.manifest, install), install)
    assert not problems, "\n".join(problems)
    reached = {install.targets[h].component for p in run_pods for h in p.reaches if h in install.targets}
    assert reached == {"minio", "mlflow", "reward", "rollout"}
    base = f"http://{ns.dns[f'{RELEASE}-mlflow.{NS}.svc:5000']}/api/2.0/mlflow"
    login = ns.secrets[f"{RELEASE}-mlflow"]
    auth = (login["username"], login["password"])
    assert httpx.post(f"{base}/experiments/search", json={"max_results": 10}, timeout=30).status_code == 401
    experiments = httpx.post(f"{base}/experiments/search", json={"max_results": 100}, auth=auth, timeout=30).json()
    ids = [e["experiment_id"] for e in experiments.get("experiments", [])]
    runs = httpx.post(f"{base}/runs/search", json={"experiment_ids": ids}, auth=auth, timeout=30).json()
    assert runs.get("runs"), "no stage logged to MLflow with the chart's login"


def check_run(driver: Driver, scope, trainer: TrainerTwin, ns: Namespace) -> None:
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
    run_id = scope.outputs["validate-config"]["params"]["Output"]  # the run validate opened
    assert f"run {run_id}" in "".join(p.log.read_text() for p in trainer.pods[name])  # the job pods joined it
    run = re.escape(f"runs/tiny-cpu/{run_id}")
    assert re.search(run + "/sft-export/", sft_log) and "as weight version 1" in sft_log
    assert re.search(run + "/rl-export/", rl_log) and "published to 1 replica(s)" in rl_log
    weights = sorted(p.name for p in ns.claims[f"{RELEASE}-weights"].iterdir())
    assert weights and all(w.startswith("v") for w in weights)
    # the report, from the two evals
    (report,) = scope.outputs["make-report"]["artifacts"]["report"]
    text = Path(report["uri"]).read_text()
    assert text.startswith("# ovr run report: tiny-cpu") and "| sft (avg@1) | rl (avg@1) |" in text
