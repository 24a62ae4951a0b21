"""Validate config fails before SFT on everything knowable, each failure naming its fix: the cluster
(RBAC, the weights claim, the Trainer release and runtime, each multi-node job in a dry run), the
services (the reward service scores with the run's token), the data (a non-empty plan).

The API server is kmock's emulator plus :mod:`trainer_api` (which fakes, and only fakes: TrainJob field
validation by a Trainer release's served fields, the served OpenAPI v3 document, RBAC answers to
SelfSubjectAccessReviews from a granted set). The reward service is the real one under uvicorn; the
store is moto's S3 server. The rollout replicas are real vLLM in the ``vllm`` test.
"""

from __future__ import annotations

import asyncio
import io
import re
import sys

import kmock as kmocklib
import kubernetes
import pytest
from trainer_api import RUNTIMES, TRAINJOBS, add_claim, serve_rbac, serve_trainer

from components.cluster_checks import RunShape, check_cluster, check_rbac
from components.install import InstallError
from components.jobs import JobSettings
from components.preflight import Findings, check_replicas, check_reward
from components.validate import RunParams, job_specs, validate_run
from ovr.config import load_config
from ovr.serving import ManagedServer, free_port

NS, SA = "team-a", "ovr-pipeline"
GRANTED = {
    ("create", "trainer.kubeflow.org", "trainjobs"),
    ("get", "trainer.kubeflow.org", "trainjobs"),
    ("delete", "trainer.kubeflow.org", "trainjobs"),
    ("list", "", "pods"),
    ("get", "", "pods/log"),
    ("get", "", "persistentvolumeclaims"),
    ("create", "coordination.k8s.io", "leases"),
    ("get", "coordination.k8s.io", "leases"),
    ("patch", "coordination.k8s.io", "leases"),
    ("get", "trainer.kubeflow.org", "clustertrainingruntimes"),  # cluster-scoped (rbac.readClusterRuntimes)
}
POD_ENV = {"OVR_POD_NAMESPACE": NS, "OVR_POD_SERVICE_ACCOUNT": SA, "OVR_POD_NAME": "validate", "OVR_POD_UID": "u-1"}
PARAMS = RunParams(
    rl_nodes=4,
    gpus_per_node=8,
    weights_claim="ovr-weights",
    job=JobSettings(run_id="run-1", s3_secret="ovr-s3", mlflow_secret="ovr-mlflow", deadline_s=3600),
)


@pytest.fixture()
def api(kmock):
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=str(kmock.url).rstrip("/")))
    yield kmock, client
    client.close()


@pytest.fixture(scope="module")
def cfg(repo_root):
    return load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)


def cluster(kmock, release="v2.3.0", granted=GRANTED, claim="Bound", runtimes=("torch-distributed",)):
    dry_runs = serve_trainer(kmock, release, runtimes)
    serve_rbac(kmock, granted)
    if claim:
        add_claim(kmock, NS, "ovr-weights", phase=claim)
    return dry_runs


async def check(client, cfg, params=PARAMS) -> Findings:
    shape = RunShape(NS, SA, params.sft_nodes, params.rl_nodes, params.weights_claim)
    jobs = job_specs(cfg, params, POD_ENV)
    return await asyncio.to_thread(check_cluster, client, shape, jobs, "torch-distributed")


async def test_a_cluster_that_can_run_it_passes_and_nothing_is_created(api, cfg):
    kmock, client = api
    dry_runs = cluster(kmock)
    found = await check(client, cfg)
    assert found == Findings()
    (job,) = dry_runs  # the RL TrainJob, admitted in a dry run (strict): the manifest the launcher will send
    assert job["kind"] == "TrainJob" and job["spec"]["trainer"]["numNodes"] == 4
    assert (kmock.resource(TRAINJOBS), NS, job["metadata"]["name"]) not in kmock.objects


@pytest.mark.parametrize("release, served", [("v2.1.0", "v2.1"), ("v2.0.1", "v2.0")])
async def test_an_older_trainer_fails_before_sft_naming_the_release(api, cfg, release, served):
    kmock, client = api
    cluster(kmock, release)
    found = await check(client, cfg)
    assert any(
        f.startswith(f"Kubeflow Trainer >= v2.2 required, this cluster serves TrainJob of Trainer {served}")
        for f in found.failures
    ), found.failures
    assert any('unknown field "spec.runtimePatches"' in f for f in found.failures)  # the dry run, strict


async def test_each_missing_permission_is_named_with_the_fix(api, cfg):
    kmock, client = api
    cluster(kmock, granted=GRANTED - {("create", "trainer.kubeflow.org", "trainjobs"), ("list", "", "pods")})
    found = await check(client, cfg)
    refused = [f for f in found.failures if "may not" in f]
    assert len(refused) == 2
    assert "may not create trainjobs (trainer.kubeflow.org) in namespace 'team-a'" in refused[0]
    assert "may not list pods" in refused[1] and all("default-editor" in f for f in refused)


async def test_an_account_that_may_not_read_cluster_runtimes_is_warned_not_refused(api, cfg):
    """Without rbac.readClusterRuntimes the runtime's existence goes unchecked (a warning, though the
    runtime is served here: the review came first, so no forbidden read reaches the audit log)."""
    kmock, client = api
    cluster(kmock, granted=GRANTED - {("get", "trainer.kubeflow.org", "clustertrainingruntimes")})
    found = await check(client, cfg)
    assert found.failures == [] and any("may not read the cluster-scoped" in w for w in found.warnings)


async def test_a_run_that_cannot_lease_the_replicas_is_refused(api, cfg):
    """On an install (OVR_INSTALL), the run leases its rollout replicas: a Role without patch on the
    install's Lease fails Validate config, and the review named the Lease."""
    kmock, client = api
    asked = serve_rbac(kmock, GRANTED - {("patch", "coordination.k8s.io", "leases")})
    shape = RunShape(NS, SA, PARAMS.sft_nodes, PARAMS.rl_nodes, PARAMS.weights_claim, install="ovr")
    found = Findings()
    await asyncio.to_thread(check_rbac, client, shape, None, found)
    assert len(found.failures) == 1 and "may not patch leases (coordination.k8s.io)" in found.failures[0]
    assert {a.get("name") for a in asked if a["resource"] == "leases" and a["verb"] != "create"} == {"ovr-rollout"}


async def test_a_claim_the_account_may_not_read_is_a_warning(api, cfg):
    """The chart's Role need not grant reading claims: the claim check is then skipped, not the run."""
    kmock, client = api
    cluster(kmock, granted=GRANTED - {("get", "", "persistentvolumeclaims")}, claim=None)
    found = await check(client, cfg)
    assert found.failures == [] and any("may not get persistentvolumeclaims" in w for w in found.warnings)


@pytest.mark.parametrize("claim, message", [(None, "does not exist.*weights_claim"), ("Lost", "is Lost")])
async def test_a_missing_or_lost_claim_fails(api, cfg, claim, message):
    kmock, client = api
    cluster(kmock, claim=claim)
    found = await check(client, cfg)
    (failure,) = found.failures
    assert re.search(message, failure), failure


async def test_a_pending_claim_is_a_warning(api, cfg):
    """A WaitForFirstConsumer claim stays Pending until a pod mounts it."""
    kmock, client = api
    cluster(kmock, claim="Pending")
    found = await check(client, cfg)
    assert found.failures == [] and any("is Pending" in w for w in found.warnings)


async def test_the_runtime_missing_fails_and_unreadable_warns(api, cfg):
    kmock, client = api
    cluster(kmock, runtimes=())
    found = await check(client, cfg)
    assert any("ClusterTrainingRuntime 'torch-distributed' does not exist" in f for f in found.failures)

    def forbidden(request):
        raise kmocklib.KubernetesError(status=403, reason="Forbidden", message="cannot get clustertrainingruntimes")

    kmock["get", kmock.resource(RUNTIMES)] << forbidden
    found = await check(client, cfg)
    assert not [f for f in found.failures if "ClusterTrainingRuntime" in f]
    assert any("kubectl get clustertrainingruntime torch-distributed" in w for w in found.warnings)


async def test_single_node_stages_ask_nothing_of_the_trainer(api, cfg):
    kmock, client = api
    asked = serve_rbac(kmock, GRANTED)
    add_claim(kmock, NS, "ovr-weights")
    found = await check(client, cfg, PARAMS.model_copy(update={"rl_nodes": 1}))
    assert found == Findings() and [a["resource"] for a in asked] == ["persistentvolumeclaims"]


# ----------------------------------------------------------------------------------- services
@pytest.fixture(scope="module")
def reward(tmp_path_factory):
    token = tmp_path_factory.mktemp("reward") / "token"
    token.write_text("right-token")
    with reward_server(token) as srv:
        yield srv


def reward_server(token_file):
    from services.reward.server import local_server

    return local_server(workers=1, token_file=token_file, spare_workers=0)


def test_the_reward_service_must_score_with_the_runs_token(reward, cfg, monkeypatch):
    scoring = cfg.model_copy(update={"reward": cfg.reward.model_copy(update={"url": reward.url})})
    monkeypatch.setenv("OVR_REWARD_TOKEN", "right-token")
    found = Findings()
    check_reward(scoring, found)
    assert found == Findings()
    monkeypatch.setenv("OVR_REWARD_TOKEN", "a-stale-token")
    check_reward(scoring, found)
    (failure,) = found.failures
    assert "401" in failure and "reward_secret" in failure


def test_services_that_are_not_up_fail_naming_what_to_check(cfg):
    down = f"http://127.0.0.1:{free_port()}"
    found = Findings()
    check_reward(cfg.model_copy(update={"reward": cfg.reward.model_copy(update={"url": down})}), found)
    check_replicas(cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"endpoints": [down]})}), found)
    assert len(found.failures) == 2
    assert "reward Deployment is Ready" in found.failures[0]
    assert "unreachable" in found.failures[1] and "not ready" in found.failures[1]


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.timeout(400)
def test_replicas_serving_a_shorter_context_or_another_token_fail(tiny_model_dir, rollout_python, monkeypatch):
    """Real vLLM (CPU) serving max_model_len=512 behind ovr's token middleware."""
    from ovr.config import LocalServerConfig, RolloutConfig
    from services.rollout.launch import local_server

    monkeypatch.delenv("OVR_ROLLOUT_TOKEN", raising=False)
    ro = RolloutConfig(local_server=LocalServerConfig(max_model_len=512, dtype="float32"))
    with local_server(tiny_model_dir, ro, python=rollout_python) as srv:
        base = load_config(None, ["rl.max_response_len_schedule=[{from_step: 0, max_tokens: 256}]"], use_env=False)
        base = base.model_copy(
            update={
                "rollout": ro.model_copy(update={"endpoints": [srv.url]}),
                "eval": base.eval.model_copy(update={"max_tokens": 256}),
            }
        )
        found = Findings()
        check_replicas(base, found)
        assert found == Findings()
        longer = base.model_copy(update={"eval": base.eval.model_copy(update={"max_tokens": 1024})})
        check_replicas(longer, found)
        assert len(found.failures) == 1 and "max_model_len=512" in found.failures[0]
        assert "rollout.maxModelLen" in found.failures[0]
        monkeypatch.setenv(ro.token_env, "not-the-token")
        check_replicas(base, found)
        assert len(found.failures) == 2 and "rollout_secret" in found.failures[1]


# ----------------------------------------------------------------------------------- the whole task
@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    ) as srv:
        yield srv


def install_env(s3, reward) -> dict[str, str]:
    return {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "OVR_INSTALL": "ovr",
        "OVR__STORE__URI": "s3://ovr",
        "OVR__STORE__ENDPOINT": f"127.0.0.1:{s3.port}",
        "OVR__REWARD__URL": reward.url,
        "OVR_S3_ACCESS_KEY": "testing-access",
        "OVR_S3_SECRET_KEY": "testing-secret",
        "OVR_REWARD_TOKEN": "right-token",
        "OVR_TRAINER_IMAGE": "registry.local/ovr-project/ovr:0.1.0",
        "OVR_TRAINER_TOLERATIONS": '[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]',
        **POD_ENV,
    }


async def test_validate_config_on_the_7b_recipe(api, s3, reward, repo_root, monkeypatch):
    """With the shipped recipe and a cluster that can run it: a non-empty plan, the install's placement
    for the later tasks. With four misconfigurations at once: one failure each, numbered, before SFT."""
    from minio import Minio

    kmock, client = api
    cluster(kmock)
    env = install_env(s3, reward)
    for key in ("OVR_S3_ACCESS_KEY", "OVR_S3_SECRET_KEY", "OVR_REWARD_TOKEN"):
        monkeypatch.setenv(key, env[key])
    minio = Minio(f"127.0.0.1:{s3.port}", access_key="testing-access", secret_key="testing-secret", secure=False)
    if not minio.bucket_exists("ovr"):
        minio.make_bucket("ovr")
    minio.put_object("ovr", "sources/LogicVista/data/dataset.json", io.BytesIO(b"{}"), 2)
    recipe = repo_root / "recipes/ovr-7b.yaml"
    cfg, placement = await asyncio.to_thread(validate_run, recipe, [], "ovr-env", PARAMS, env, client)
    assert len(cfg.data.sources) >= 15 and placement.image == env["OVR_TRAINER_IMAGE"]
    assert [t.key for t in placement.tolerations] == ["dedicated"]

    kmock.objects[kmock.resource("v1/persistentvolumeclaims"), NS, "ovr-weights"].delete()
    broken = env | {"OVR_REWARD_TOKEN": "stale", "OVR__STORE__URI": "s3://ovr"}
    monkeypatch.setenv("OVR_REWARD_TOKEN", "stale")
    with pytest.raises(InstallError) as err:
        await asyncio.to_thread(validate_run, recipe, ["data.sources=[]"], "ovr-env", PARAMS, broken, client)
    text = str(err.value)
    assert "(3 problem(s))" in text, text
    assert "1. data.sources of 'ovr-7b' is empty" in text and "2. reward service" in text
    assert "3. claim 'ovr-weights' (pipeline parameter weights_claim) does not exist" in text
