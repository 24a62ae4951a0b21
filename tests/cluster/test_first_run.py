"""The first `ovr submit` as README documents it, checked without training: `helm install` into a
Kubeflow profile namespace (mesh none and istio), the compiled pipeline planned as KFP would run it
(sft_nodes=1; rl_nodes=1, the production default, and rl_nodes=2, a TrainJob), and every API call
and pod of that run judged by the twin's cluster.

- API calls: KFP's driver/launcher and Argo's executor (replayed for every task pod) and ovr's RL
  launcher (``run_job`` with the job spec the launcher task builds from its own resolved env,
  against a Trainer that completes or fails at once) go through the twin's API server as the run's
  account, the one the release NOTES name: RBAC refuses none, and the Trainer v2.3 schema prunes no
  field of the TrainJob.
- Pods: every task pod, every job pod (as Trainer would make it from what the API server stored)
  and every pod of the chart fits a node, stays out of the mesh (or is admitted by it) and reaches
  each Service it holds credentials for through the NetworkPolicies.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from apiserver import client_for
from driver import Driver
from first_run import Install, named_targets, pod_problems, replay_kfp_calls, secret_targets
from install import REPO, profile_rbac, render, run_account
from pods import Namespace, container_env
from pruning import load_crd
from trainer import TrainerTwin

NS, RELEASE = "kubeflow-user-ml", "ovr"
PIPELINE = REPO / "pipelines" / "ovr_pipeline.yaml"


async def plan_run(api, tmp_path, mesh: str, rl_nodes: int):
    docs, notes = render({"mesh": mesh, "rollout": {"weights": {"storageClass": "nfs"}}}, RELEASE, NS)
    api.rbac = profile_rbac(docs, NS)
    api.serve_crd(load_crd("trainjob-v2.3.0.yaml"))
    api.hold(docs, NS)
    account = run_account(notes)
    ns = Namespace(NS, tmp_path)
    ns.add_objects(docs)
    driver = Driver(PIPELINE, ns, tmp_path / "kfp", account, execute=False)
    scope = await driver.run({"sft_nodes": 1, "rl_nodes": rl_nodes, "gpus_per_node": 8})
    return docs, account, ns, driver, scope


async def launch_rl_job(api, ns: Namespace, driver: Driver, params: dict, account: str, fail: bool) -> str:
    """What the RL launcher task does: its job spec from its own env, run_job as the run's account."""
    from components.jobs import JobSettings, stage_job_spec
    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.k8s.jobs import run_job
    from ovr.k8s.status import JobFailed

    pod = driver.planned["launch-rl"]
    name = pod["metadata"]["name"]
    fields = {"metadata.name": name, "metadata.uid": str(uuid.uuid4()), "metadata.namespace": NS,
              "status.podIP": "10.0.0.7", "spec.serviceAccountName": account}  # fmt: skip
    environ = container_env(ns, pod["spec"]["containers"][0], fields)
    settings = JobSettings(
        run_id=f"{driver.run_id}-{fail}",
        deadline_s=params["job_deadline_s"],
        **{k: params[k] for k in ("s3_secret", "mlflow_secret", "reward_secret", "rollout_secret", "weights_claim")},
    )
    cfg = load_config(REPO / "recipes" / "ovr-7b.yaml", use_env=False)
    run = RunContext.for_config(cfg, driver.run_id[:8])
    init = f"runs/{run.key}/sft-export/step-1"
    spec = stage_job_spec("rl", cfg, run, params["rl_nodes"], params["gpus_per_node"], init, settings, environ)
    client = client_for(api, NS, account)
    try:
        await asyncio.to_thread(run_job, spec, api_client=client, poll_s=0.02, timeout_s=30, on_status=lambda e: None)
    except JobFailed as err:
        assert fail, err
        assert err.pods and err.pods[0].exit_code == 1  # the launcher read the failed pod and its log
    return spec.name


@pytest.mark.parametrize("mesh", ["none", "istio"])
@pytest.mark.parametrize("rl_nodes", [1, 2])
async def test_first_run_passes_rbac_pruning_scheduling_and_policies(api_server, tmp_path, mesh, rl_nodes):
    docs, account, ns, driver, scope = await plan_run(api_server, tmp_path, mesh, rl_nodes)
    install = Install(docs, NS, mesh)
    params = scope.params
    ran = set(driver.planned)
    assert ("launch-rl" in ran, "train-rl" in ran) == (rl_nodes > 1, rl_nodes == 1)
    client = client_for(api_server, NS, account)
    for pod in driver.planned.values():  # KFP's containers in each task pod
        await asyncio.to_thread(replay_kfp_calls, client, NS, pod["metadata"]["name"], f"ovr-{driver.run_id[:8]}")
    job_pods: dict[str, dict] = {}
    if rl_nodes > 1:
        for fail in (False, True):
            trainer = TrainerTwin(api_server, ns, account, start=False, fail=fail)
            task = asyncio.create_task(trainer.run())
            try:
                job = await launch_rl_job(api_server, ns, driver, params, account, fail)
            finally:
                trainer.reconcile()  # sees the deletion
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert job in trainer.seen and job in trainer.deleted
            job_pods |= {m["metadata"]["name"]: m for m in trainer.manifests[job]}
        assert len(job_pods) == 4
    # every API call of the run allowed, no field of what ovr created pruned
    calls = api_server.calls
    assert {c.request.user for c in calls} == {f"system:serviceaccount:{NS}:{account}"}
    assert not api_server.forbidden(), "\n".join(str(c.request) for c in api_server.forbidden())
    assert not api_server.pruned
    verbs = {(c.request.verb, c.request.resource) for c in calls}
    assert {("get", "secrets"), ("create", "workflowtaskresults"), ("patch", "workflowtaskresults")} <= verbs
    if rl_nodes > 1:
        assert {("create", "trainjobs"), ("get", "trainjobs"), ("delete", "trainjobs"), ("list", "pods")} <= verbs
    # every pod fits a node, stays out of the mesh (or is admitted) and reaches what it talks to
    env = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{RELEASE}-env")["data"]
    nccl = env["OVR__ROLLOUT__WEIGHT_SYNC"] == "nccl"
    problems = []
    for task, pod in driver.planned.items():
        problems += pod_problems(f"task {task}", pod, secret_targets(pod, params, install, nccl), install)
    for name, pod in job_pods.items():
        problems += pod_problems(f"job pod {name}", pod, secret_targets(pod, params, install, nccl), install)
    for name, pod in install.chart_pods().items():
        problems += pod_problems(name, pod, named_targets(pod, install), install, in_mesh_ok=mesh == "istio")
    assert not problems, "\n".join(problems)
    gpus = [p["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") for p in job_pods.values()]
    train = driver.planned["train-sft"]["spec"]["containers"][0]["resources"]["limits"]
    assert train["nvidia.com/gpu"] == "8" and all(g == "8" for g in gpus)  # gpus_per_node on every trainer pod
