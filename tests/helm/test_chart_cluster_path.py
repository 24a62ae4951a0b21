"""What the chart hands a run's pods: the replicas' settings, one weights path, job RBAC, the namespace story."""

from __future__ import annotations

import json

import pytest
from chart_kit import NAMESPACE, RELEASE, find, pod_spec, render_docs, render_notes

from components.resources import INSTALL_ENV_KEYS, WEIGHTS_MOUNT


def test_env_configmap_carries_the_replicas_settings_and_the_pipeline_reads_every_key():
    docs = render_docs(
        {
            "rollout": {"weightSync": "folder", "tensorParallelSize": 2, "gpu": {"count": 2}},
            "global": {"imageRegistry": "registry.local", "imagePullSecrets": ["pull-a", "pull-b"]},
        }
    )
    data = find(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert data["OVR_INSTALL"] == RELEASE
    assert data["OVR__ROLLOUT__WEIGHT_SYNC"] == "folder" and data["OVR__ROLLOUT__TENSOR_PARALLEL_SIZE"] == "2"
    assert data["OVR__ROLLOUT__WEIGHTS_DIR"] == WEIGHTS_MOUNT
    assert data["OVR__MODEL__MAX_PIXELS"] == "1003520"  # the replicas' image bound, for the trainer's processor
    assert data["OVR_TRAINER_IMAGE"] == "registry.local/ovr-project/ovr:0.1.0"  # the mirror reaches job pods
    assert data["OVR_IMAGE_PULL_SECRETS"] == "pull-a,pull-b"
    assert set(data) <= set(INSTALL_ENV_KEYS), "a key the chart publishes that no pipeline task reads"


def test_weights_claim_is_created_and_mounted_where_the_trainer_writes():
    docs = render_docs()
    claim = find(docs, "PersistentVolumeClaim", f"{RELEASE}-weights")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))
    (vllm,) = pod["containers"]
    mount = next(m for m in vllm["volumeMounts"] if m["name"] == "weights")
    volume = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert mount["mountPath"] == WEIGHTS_MOUNT  # the path the pipeline mounts the claim at in its pods
    assert {"name": "OVR_WEIGHTS_DIR", "value": WEIGHTS_MOUNT} in vllm["env"]
    assert volume["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-weights"
    existing = render_docs({"rollout": {"weightsClaimName": "shared-rwx"}})
    assert not [d for d in existing if d["kind"] == "PersistentVolumeClaim" and "weights" in d["metadata"]["name"]]
    pod = pod_spec(find(existing, "StatefulSet", f"{RELEASE}-rollout"))
    assert (
        next(v for v in pod["volumes"] if v["name"] == "weights")["persistentVolumeClaim"]["claimName"] == "shared-rwx"
    )


def test_pipeline_service_account_may_launch_trainjobs_and_pytorchjobs():
    role = find(render_docs(), "Role", f"{RELEASE}-pipeline")
    granted = {
        (g, r)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        if "create" in rule["verbs"]
    }
    assert {("trainer.kubeflow.org", "trainjobs"), ("kubeflow.org", "pytorchjobs")} <= granted


def test_notes_say_where_runs_must_execute_and_which_parameters_match():
    notes = render_notes()
    assert "profile namespace" in notes and f'"{NAMESPACE}"' in notes
    for param in (
        f"install_env={RELEASE}-env",
        f"s3_secret={RELEASE}-s3",
        f"reward_secret={RELEASE}-reward",
        f"weights_claim={RELEASE}-weights",
        "--service-account",
    ):
        assert param in notes


def test_an_account_the_chart_creates_gets_what_kfp_and_argo_call():
    docs = render_docs({"rbac": {"serviceAccount": {"create": True}, "readClusterRuntimes": True}})
    assert find(docs, "ServiceAccount", f"{RELEASE}-pipeline")
    kfp = find(docs, "Role", f"{RELEASE}-kfp-runner")["rules"]
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]} in kfp
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["mlpipeline-minio-artifact"],
        "verbs": ["get"],
    } in kfp
    for name in (f"{RELEASE}-pipeline", f"{RELEASE}-kfp-runner"):
        (subject,) = find(docs, "RoleBinding", name)["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": f"{RELEASE}-pipeline", "namespace": NAMESPACE}
    runtimes = find(docs, "ClusterRole", f"{NAMESPACE}-{RELEASE}-trainer-runtimes")["rules"]
    assert runtimes == [
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["clustertrainingruntimes"], "verbs": ["get", "list"]}
    ]
    assert "ovr submit --service-account ovr-pipeline" in render_notes({"rbac": {"serviceAccount": {"create": True}}})


TRAINING = {
    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    "runtime": "torch-distributed-rdma",
    "runtimeClassName": "nvidia",
    "extraResources": {"rdma/ib": "1"},
    "scratch": {"size": "800Gi", "storageClass": "local-nvme"},
    "nccl": {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_DISABLE": "0"},
}


def test_training_placement_reaches_the_env_configmap():
    data = find(render_docs({"training": TRAINING}), "ConfigMap", f"{RELEASE}-env")["data"]
    assert json.loads(data["OVR_TRAINER_NODE_SELECTOR"]) == TRAINING["nodeSelector"]
    assert json.loads(data["OVR_TRAINER_TOLERATIONS"]) == TRAINING["tolerations"]
    assert json.loads(data["OVR_TRAINER_RESOURCES"]) == {"rdma/ib": "1"}
    assert (data["OVR_TRAINER_RUNTIME"], data["OVR_TRAINER_RUNTIME_CLASS"]) == ("torch-distributed-rdma", "nvidia")
    assert (data["OVR_SCRATCH_SIZE"], data["OVR_SCRATCH_STORAGE_CLASS"]) == ("800Gi", "local-nvme")
    assert (data["NCCL_SOCKET_IFNAME"], data["NCCL_IB_DISABLE"]) == ("eth0", "0")
    defaults = find(render_docs(), "ConfigMap", f"{RELEASE}-env")["data"]
    assert not [k for k in defaults if k.startswith(("OVR_TRAINER_NODE", "OVR_TRAINER_TOL", "OVR_SCRATCH", "NCCL_"))]


def test_training_placement_is_what_the_pipeline_parses():
    placement = pytest.importorskip("components.placement", reason="the job placement reader is not on this branch")
    data = find(render_docs({"training": TRAINING}), "ConfigMap", f"{RELEASE}-env")["data"]
    assert set(data) <= set(INSTALL_ENV_KEYS)
    parsed = placement.InstallPlacement.from_env(data)
    assert parsed.node_selector == TRAINING["nodeSelector"] and parsed.scratch_size == "800Gi"
    assert parsed.nccl_env == TRAINING["nccl"]
