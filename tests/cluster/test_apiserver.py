"""The twin's API server refuses what a real one refuses: calls the run's account has no RBAC for,
and TrainJob fields the served Trainer schema does not know (pruned silently by default, refused
under fieldValidation=Strict). Real kubernetes-client calls, real ovr manifests."""

from __future__ import annotations

import asyncio
import json

import kubernetes
import pytest
from apiserver import client_for
from install import profile_rbac, render
from pruning import load_crd

from ovr.k8s.kinds import trainjob_manifest
from ovr.k8s.spec import ClaimMount, TrainerJobSpec

NS = "kubeflow-user-ml"
VALUES = {"rollout": {"weights": {"storageClass": "nfs"}}}
TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"


def job() -> dict:
    spec = TrainerJobSpec(
        name="ovr-rl",
        namespace=NS,
        image="ovr:1",
        command=["true"],
        nodes=2,
        gpus_per_node=8,
        claims=[ClaimMount(claim="ovr-weights", mount_path="/weights")],
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        image_pull_secrets=["mirror"],
        service_account="default-editor",
        active_deadline_s=3600,
    )
    return trainjob_manifest(spec)


def serve(api, crd: str) -> None:
    api.serve_crd(load_crd(crd))


async def create(client, body: dict, **kw) -> dict:
    api = kubernetes.client.CustomObjectsApi(client)
    return await asyncio.to_thread(
        api.create_namespaced_custom_object, "trainer.kubeflow.org", "v1alpha1", NS, "trainjobs", body, **kw
    )


async def test_rbac_of_a_profile_namespace_with_the_chart(api_server):
    docs, _ = render(VALUES, "ovr", NS)
    api_server.rbac = profile_rbac(docs, NS)
    serve(api_server, "trainjob-v2.3.0.yaml")
    editor = client_for(api_server, NS, "default-editor")
    await create(editor, job())  # kubeflow-edit has no TrainJob rights: the chart's Role grants them
    core = kubernetes.client.CoreV1Api(editor)
    await asyncio.to_thread(core.list_namespaced_pod, NS)
    other = client_for(api_server, NS, "ovr-pipeline")  # the account the chart used to bind
    with pytest.raises(kubernetes.client.ApiException, match="Forbidden"):
        await asyncio.to_thread(core.list_namespaced_pod, "another-profile")  # a RoleBinding stops at its namespace
    with pytest.raises(kubernetes.client.ApiException) as err:
        await asyncio.to_thread(
            kubernetes.client.CoreV1Api(other).read_namespaced_secret, "mlpipeline-minio-artifact", NS
        )
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        'secrets "mlpipeline-minio-artifact" is forbidden: User "system:serviceaccount:kubeflow-user-ml:ovr-pipeline"'
        ' cannot get resource "secrets" in API group "" in the namespace "kubeflow-user-ml"'
    )  # the real API server's words
    review = {"spec": {"resourceAttributes": {"namespace": NS, "verb": "delete", "group": "trainer.kubeflow.org",
                                              "resource": "trainjobs"}}}  # fmt: skip
    authz = kubernetes.client.AuthorizationV1Api(editor)
    answer = await asyncio.to_thread(authz.create_self_subject_access_review, review)
    assert answer.status.allowed is True
    denied = [c.request for c in api_server.forbidden()]
    assert [(r.user.rsplit(":", 1)[1], r.verb, r.resource) for r in denied] == [
        ("default-editor", "list", "pods"),  # another namespace
        ("ovr-pipeline", "get", "secrets"),
    ]


async def test_the_run_leases_the_replicas_under_the_charts_role(api_server):
    """The run's Lease (ovr/k8s/lease.py, through the official client) as the profile's default-editor,
    judged by the RBAC of the rendered chart; another install's lease stays out of reach."""
    from ovr.k8s.lease import ReplicaLease

    docs, _ = render(VALUES, "ovr", NS)
    api_server.rbac = profile_rbac(docs, NS)
    api = kubernetes.client.CoordinationV1Api(client_for(api_server, NS, "default-editor"))
    lease = ReplicaLease("ovr-rollout", NS, "run-1", 60, api=api, say=lambda _: None)
    assert await asyncio.to_thread(lease.try_acquire) is None  # created: free, now held by run-1
    assert await asyncio.to_thread(ReplicaLease("ovr-rollout", NS, "run-2", 60, api=api).try_acquire) == "run-1"
    await asyncio.to_thread(lease.release)
    assert await asyncio.to_thread(ReplicaLease("ovr-rollout", NS, "run-2", 60, api=api).try_acquire) is None
    with pytest.raises(kubernetes.client.ApiException) as err:
        await asyncio.to_thread(api.read_namespaced_lease, "other-rollout", NS)
    assert err.value.status == 403
    assert [(c.request.verb, c.request.name) for c in api_server.forbidden()] == [("get", "other-rollout")]


async def test_trainer_v2_1_prunes_what_ovr_sends_and_strict_validation_refuses_it(api_server):
    serve(api_server, "trainjob-v2.1.0.yaml")
    client = client_for(api_server, NS, "default-editor")
    stored = await create(client, job())  # default field validation: Warn
    (pruned,) = api_server.pruned
    assert set(pruned.fields) == {"spec.runtimePatches", "spec.activeDeadlineSeconds"} and pruned.validation == "Warn"
    assert "runtimePatches" not in stored["spec"] and stored["spec"]["trainer"]["numNodes"] == 2
    body = job()
    body["metadata"]["name"] = "ovr-rl-strict"
    with pytest.raises(kubernetes.client.ApiException) as err:
        await create(client, body, field_validation="Strict")
    assert err.value.status == 400 and 'unknown field "spec.runtimePatches"' in json.loads(err.value.body)["message"]
    assert api_server.pruned[-1].validation == "Strict"
    objects = kubernetes.client.CustomObjectsApi(client)
    with pytest.raises(kubernetes.client.ApiException) as missing:
        await asyncio.to_thread(
            objects.get_namespaced_custom_object, "trainer.kubeflow.org", "v1alpha1", NS, "trainjobs", "ovr-rl-strict"
        )
    assert missing.value.status == 404  # refused, not stored


async def test_trainer_v2_3_keeps_every_field_ovr_sends(api_server):
    serve(api_server, "trainjob-v2.3.0.yaml")
    body = job()
    stored = await create(client_for(api_server, NS, "default-editor"), body, field_validation="Strict")
    assert not api_server.pruned and stored == body


async def test_served_schema_is_published_and_dry_runs_store_nothing(api_server):
    serve(api_server, "trainjob-v2.1.0.yaml")
    client = client_for(api_server, NS, "default-editor")
    path = "/openapi/v3/apis/trainer.kubeflow.org/v1alpha1"
    resp = await asyncio.to_thread(
        client.call_api, path, "GET", auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True
    )
    (schema,) = json.loads(resp.data)["components"]["schemas"].values()
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "trainer.kubeflow.org", "version": "v1alpha1", "kind": "TrainJob"}
    ]
    fields = set(schema["properties"]["spec"]["properties"])
    assert "podTemplateOverrides" in fields and "runtimePatches" not in fields  # how a v2.1 cluster tells itself
    with pytest.raises(kubernetes.client.ApiException) as err:
        await create(client, job(), dry_run="All", field_validation="Strict")
    assert err.value.status == 400
    serve(api_server, "trainjob-v2.3.0.yaml")
    await create(client, job(), dry_run="All", field_validation="Strict")
    objects = kubernetes.client.CustomObjectsApi(client)
    listed = await asyncio.to_thread(
        objects.list_namespaced_custom_object, "trainer.kubeflow.org", "v1alpha1", NS, "trainjobs"
    )
    assert listed["items"] == []
