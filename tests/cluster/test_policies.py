"""The twin's judges refuse what a cluster refuses: the chart's NetworkPolicies (labels, namespaces,
ports), Istio (a plaintext client, an identity-only rule), the scheduler (taints, GPU counts), RBAC
(resourceNames, namespaces, aggregation). Each case has its refused twin beside the admitted one."""

from __future__ import annotations

from first_run import Install
from install import profile_rbac, render
from policies import Endpoint, mesh_admits, network_admits, unschedulable
from rbac import Request, service_account

NS = "kubeflow-user-ml"
CLIENT = {"ovr.dev/client": "true"}
TRAINER = CLIENT | {"ovr.dev/trainer": "true"}


def install(mesh: str = "none") -> Install:
    docs, _ = render({"mesh": mesh, "rollout": {"weights": {"storageClass": "nfs"}}}, "ovr", NS)
    return Install(docs, NS, mesh)


def test_network_policies_admit_labelled_clients_to_their_ports_only():
    inst = install()
    (http,) = [t for h, t in inst.targets.items() if h == f"ovr-rollout.{NS}.svc:8000"]
    rollout = Endpoint(http.labels, NS)
    assert network_admits(inst.policies, Endpoint(CLIENT, NS), rollout, ("http", 8000))
    assert not network_admits(inst.policies, Endpoint({}, NS), rollout, ("http", 8000))  # no client label
    assert not network_admits(inst.policies, Endpoint(CLIENT, NS), rollout, ("nccl", 40000))  # NCCL: trainers only
    assert network_admits(inst.policies, Endpoint(TRAINER, NS), rollout, ("nccl", 40000))
    assert not network_admits(inst.policies, Endpoint(CLIENT, "other-profile"), rollout, ("http", 8000))
    pg = Endpoint(inst.by_component("postgresql")[0].labels, NS)
    assert not network_admits(inst.policies, Endpoint(CLIENT, NS), pg, ("postgresql", 5432))  # MLflow's alone


def test_istio_admits_plaintext_only_where_the_chart_says_so():
    inst = install("istio")
    reward = Endpoint(inst.by_component("reward")[0].labels, NS)
    assert mesh_admits(inst.mesh_objects, reward, 8000, plaintext=True) is None
    assert "global-deny-all" in mesh_admits(inst.mesh_objects, reward, 9999, plaintext=True)
    pg = Endpoint(inst.by_component("postgresql")[0].labels, NS)
    assert "mTLS STRICT" in mesh_admits(inst.mesh_objects, pg, 5432, plaintext=True)
    assert mesh_admits(inst.mesh_objects, pg, 5432, plaintext=False) is None  # MLflow, an mTLS peer
    identity_only = [{"kind": "PeerAuthentication", "metadata": {}, "spec": {"mtls": {"mode": "PERMISSIVE"}}},
                     {"kind": "AuthorizationPolicy", "metadata": {},
                      "spec": {"rules": [{"from": [{"source": {"namespaces": [NS]}}]}]}}]  # fmt: skip
    assert mesh_admits(identity_only, reward, 8000, plaintext=True)  # a profile's ns-owner rule: not for plaintext


def test_scheduler_wants_the_gpu_toleration_and_a_node_that_fits():
    pod = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "8", "memory": "256Gi"}}}]}}
    assert "untolerated taint nvidia.com/gpu" in unschedulable(pod)
    pod["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert unschedulable(pod) is None
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "16"
    assert "insufficient nvidia.com/gpu" in unschedulable(pod)
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "8"
    pod["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-B200"}
    assert "nodeSelector" in unschedulable(pod)


def test_rbac_names_namespaces_and_aggregation():
    docs, _ = render({"rollout": {"weights": {"storageClass": "nfs"}}}, "ovr", NS)
    rbac = profile_rbac(docs, NS)
    user, groups = service_account(NS, "default-editor")

    def ask(verb, group, resource, ns=NS, name=None) -> bool:
        return rbac.allows(Request(user, groups, verb, group, resource, "", ns, name))

    assert ask("create", "argoproj.io", "workflowtaskresults")  # kubeflow-edit aggregates KFP's role
    assert ask("create", "trainer.kubeflow.org", "trainjobs")  # the chart's Role, bound to default-editor
    assert not ask("patch", "trainer.kubeflow.org", "trainjobs")  # kubeflow-edit has no TrainJob rights
    assert not ask("create", "trainer.kubeflow.org", "trainjobs", ns="another-profile")
    created = profile_rbac(render({"rollout": {"weights": {"storageClass": "nfs"}},
                                   "rbac": {"serviceAccount": {"create": True}}}, "ovr", NS)[0], NS)  # fmt: skip
    own, own_groups = service_account(NS, "ovr-pipeline")

    def secret(name: str) -> bool:
        return created.allows(Request(own, own_groups, "get", "", "secrets", "", NS, name))

    assert secret("mlpipeline-minio-artifact") and not secret("ovr-s3")  # resourceNames: the artifact Secret only
    assert rbac.allows(Request(user, groups, "get", path="/openapi/v3/apis/trainer.kubeflow.org/v1alpha1"))
    assert not rbac.allows(Request("system:anonymous", ("system:unauthenticated",), "get", path="/apis"))
