"""The chart renders, lints strictly and validates against Kubernetes 1.30 schemas with the defaults and
every ci/ values file, and the rendered objects carry what a GPU cluster install needs."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from chart_kit import CHART, NAMESPACE, RELEASE, WORKLOAD_KINDS, find, helm, load_values, pod_spec, render_docs

kubernetes_validate = pytest.importorskip("kubernetes_validate")

# Kinds from CRDs: kubernetes-validate ships only core Kubernetes schemas, so these are checked by
# the assertions below (and test_chart_mesh.py) instead of a schema.
CRD_KINDS = {"ServiceMonitor", "PeerAuthentication", "AuthorizationPolicy"}


def test_lint_strict(values_case):
    label, values = values_case
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, f"{label}: {problems}"


def test_manifests_valid_for_kubernetes_1_30(values_case):
    label, values = values_case
    docs = render_docs(values)
    checked = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, "1.30", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{label}: {doc['kind']}/{doc['metadata']['name']} at {list(exc.path)}: {exc.message}")
        checked += 1
    counts = Counter(d["kind"] for d in docs)
    print(f"\n{label}: {len(docs)} objects {dict(sorted(counts.items()))}")
    assert checked >= 3


def test_every_container_non_root_with_read_only_root(values_case):
    label, values = values_case
    for doc in render_docs(values):
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        where = f"{label}: {doc['kind']}/{doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, f"{where}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, f"{where}/{c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{where}/{c['name']}"
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}/{c['name']} has no writable /tmp"


def test_rollout_pods_get_gpus_shm_and_health_probes():
    values = load_values(CHART / "ci" / "multi-gpu-values.yaml")
    sts = find(render_docs(values), "StatefulSet", f"{RELEASE}-rollout")
    assert sts["spec"]["replicas"] == 2
    spec = pod_spec(sts)
    vllm = spec["containers"][0]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert vllm["resources"]["limits"]["memory"] == "512Gi"
    assert "--enable-prefix-caching" in vllm["args"]
    assert vllm["command"] == ["python3", "-m", "services.rollout.launch"]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    assert env["OVR_TENSOR_PARALLEL_SIZE"] == "4" and env["OVR_WEIGHT_SYNC"] == "folder"
    assert env["OVR_MAX_PIXELS"] == "1003520"  # an integer, not 1.00352e+06
    assert env["OVR_WEIGHTS_DIR"] == "/weights"
    assert {"name": "weights", "mountPath": "/weights"} in vllm["volumeMounts"]
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in vllm["volumeMounts"]
    model = next(v for v in spec["volumes"] if v["name"] == "model")
    assert model["persistentVolumeClaim"] == {"claimName": "ovr-models", "readOnly": True}
    assert "--model=/models/pvc/Qwen2.5-VL-7B-Instruct" in vllm["args"]
    assert spec["runtimeClassName"] == "nvidia"
    assert "initContainers" not in spec  # the model comes from the claim, no S3 sync


def test_rollout_defaults_sync_model_from_s3_and_stay_cluster_internal():
    docs = render_docs()
    spec = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))
    init = spec["initContainers"][0]
    env = {e["name"]: e for e in init["env"]}
    assert env["MODEL_URI"]["value"] == "s3://ovr-models/Qwen2.5-VL-7B-Instruct"
    assert env["S3_URL"]["value"] == f"http://{RELEASE}-minio.{NAMESPACE}.svc:9000"
    vllm = spec["containers"][0]
    assert {"name": "OVR_WEIGHT_SYNC", "value": "nccl"} in vllm["env"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert find(docs, "Service", f"{RELEASE}-rollout")["spec"]["type"] == "ClusterIP"
    policy = find(docs, "NetworkPolicy", f"{RELEASE}-rollout")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "rollout"
    # clients reach the HTTP port; NCCL weight transfer needs every port, but only from trainer pods
    assert policy["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"ovr.dev/client": "true"}}}],
            "ports": [{"port": "http", "protocol": "TCP"}],
        },
        {"from": [{"podSelector": {"matchLabels": {"ovr.dev/trainer": "true"}}}]},
    ]
    multi = render_docs(load_values(CHART / "ci" / "multi-gpu-values.yaml"))
    ingress = find(multi, "NetworkPolicy", f"{RELEASE}-rollout")["spec"]["ingress"]
    client = {"matchLabels": {"ovr.dev/client": "true"}}
    assert ingress == [
        {  # folder weight sync: HTTP only, from labelled pods here and in the profile namespace
            "from": [
                {"podSelector": client},
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow-user-ml"}},
                    "podSelector": client,
                },
            ],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    ]
    endpoints = find(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert (
        endpoints["OVR__ROLLOUT__ENDPOINTS"]
        == f'["http://{RELEASE}-rollout-0.{RELEASE}-rollout-pods.{NAMESPACE}.svc:8000"]'
    )


def test_tolerations_merge_global_and_component():
    values = load_values(CHART / "ci" / "multi-gpu-values.yaml")
    docs = render_docs(values)
    rollout = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))
    assert rollout["tolerations"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    reward = pod_spec(find(docs, "Deployment", f"{RELEASE}-reward"))
    assert reward["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    # a toleration given both globally and per component appears once
    dup = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    rollout = pod_spec(find(render_docs({"global": {"tolerations": [dup]}}), "StatefulSet", f"{RELEASE}-rollout"))
    assert rollout["tolerations"] == [dup]


def test_node_selector_merges_and_component_keys_win():
    values = {"global": {"nodeSelector": {"pool": "cpu", "zone": "a"}}, "rollout": {"nodeSelector": {"pool": "gpu"}}}
    docs = render_docs(values)
    assert pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))["nodeSelector"] == {"pool": "gpu", "zone": "a"}
    assert pod_spec(find(docs, "Deployment", f"{RELEASE}-reward"))["nodeSelector"] == {"pool": "cpu", "zone": "a"}


def _secret_refs(doc: dict) -> set[str]:
    spec = pod_spec(doc)
    return {
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in spec.get("initContainers", []) + spec["containers"]
        for e in c.get("env", [])
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }


def test_existing_secrets_are_referenced_and_none_generated():
    docs = render_docs(load_values(CHART / "ci" / "external-services-values.yaml"))
    assert not [d for d in docs if d["kind"] == "Secret"]
    mlflow = find(docs, "Deployment", f"{RELEASE}-mlflow")
    assert _secret_refs(mlflow) == {"ovr-s3-credentials", "ovr-mlflow-db", "ovr-mlflow-admin"}
    # the password reaches libpq as PGPASSWORD: the URI holds none
    assert (
        "--backend-store-uri=postgresql://ovr@pg.db.example:5432/ovr_mlflow"
        in pod_spec(mlflow)["containers"][0]["args"]
    )
    admin = next(e for e in pod_spec(mlflow)["containers"][0]["env"] if e["name"] == "MLFLOW_AUTH_ADMIN_USERNAME")
    assert admin["valueFrom"]["secretKeyRef"] == {"name": "ovr-mlflow-admin", "key": "user"}
    reward = pod_spec(find(docs, "Deployment", f"{RELEASE}-reward"))["containers"][0]
    token = next(e for e in reward["env"] if e["name"] == "OVR_REWARD_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "ovr-reward-token", "key": "bearer"}
    rollout = find(docs, "StatefulSet", f"{RELEASE}-rollout")
    assert _secret_refs(rollout) == {"ovr-s3-credentials", "ovr-rollout-token"}
    assert find(docs, "Job", f"{RELEASE}-buckets")  # buckets are created on the external S3 too
    assert pod_spec(rollout)["containers"][0]["image"] == "registry.internal.example:5000/ovr-project/ovr-rollout:0.1.0"
    assert pod_spec(rollout)["imagePullSecrets"] == [{"name": "regcred"}]
    assert not [d for d in docs if d["metadata"]["name"].endswith(("-minio", "-postgresql"))]


def test_generated_secrets_are_kept_and_never_leak_into_configmaps():
    docs = render_docs()
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    # the names the pipeline's s3_secret/reward_secret/rollout_secret/mlflow_secret parameters default to
    assert set(secrets) == {
        f"{RELEASE}-s3",
        f"{RELEASE}-postgresql",
        f"{RELEASE}-reward",
        f"{RELEASE}-rollout",
        f"{RELEASE}-mlflow",
    }
    values = [base64.b64decode(v).decode() for s in secrets.values() for k, v in s["data"].items() if k != "username"]
    assert all(len(v) >= 20 for v in values)
    for s in secrets.values():
        assert s["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    text_of_configmaps = "\n".join(str(d["data"]) for d in docs if d["kind"] == "ConfigMap")
    assert not [v for v in values if v in text_of_configmaps]
    minio = pod_spec(find(docs, "Deployment", f"{RELEASE}-minio"))["containers"][0]
    assert {e["name"] for e in minio["env"] if "valueFrom" in e} == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def test_reward_service_probes_autoscaling_and_budget():
    docs = render_docs()
    dep = find(docs, "Deployment", f"{RELEASE}-reward")
    assert "replicas" not in dep["spec"]  # the HPA owns the replica count
    c = pod_spec(dep)["containers"][0]
    assert c["command"][:3] == ["ovr", "serve", "reward"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["OVR_REWARD_WORKERS"] == "4" and env["OVR_REWARD_TIME_LIMIT_S"] == "10"
    hpa = find(docs, "HorizontalPodAutoscaler", f"{RELEASE}-reward")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert find(docs, "PodDisruptionBudget", f"{RELEASE}-reward")["spec"]["minAvailable"] == 1
    test_pod = find(docs, "Pod", f"{RELEASE}-test-reward")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert _secret_refs(test_pod) == {f"{RELEASE}-reward"}
    assert {"name": "SCORE_PATH", "value": "/v1/score"} in test_pod["spec"]["containers"][0]["env"]


def test_rbac_role_holds_only_what_ovr_calls_and_binds_the_run_account():
    docs = render_docs(load_values(CHART / "ci" / "multi-gpu-values.yaml"))
    rules = find(docs, "Role", f"{RELEASE}-pipeline")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    job_verbs = {"get", "list", "watch", "create", "delete"}
    assert granted == (
        {("trainer.kubeflow.org", "trainjobs", v) for v in job_verbs}
        | {("kubeflow.org", "pytorchjobs", v) for v in job_verbs}
        | {("", r, v) for r in ("pods", "pods/log", "events") for v in ("get", "list", "watch")}
        | {("", "persistentvolumeclaims", "get")}
        | {("coordination.k8s.io", "leases", v) for v in ("create", "get", "patch")}
    )  # no deployments/services, no update, no cluster-scoped runtimes in a namespaced Role
    named = [r for r in rules if r.get("resourceNames")]
    assert [(r["resources"], r["resourceNames"], r["verbs"]) for r in named] == [
        (["leases"], [f"{RELEASE}-rollout"], ["get", "patch"])
    ]  # patch only on the install's own lease
    binding = find(docs, "RoleBinding", f"{RELEASE}-pipeline")
    assert [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]] == [
        ("ServiceAccount", "default-editor", NAMESPACE),
        ("ServiceAccount", "default-editor", "kubeflow-user-ml"),
    ]
    assert not {d["kind"] for d in docs} & {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}  # the profile's


def test_service_monitors_render_only_when_asked():
    assert not [d for d in render_docs() if d["kind"] == "ServiceMonitor"]
    docs = render_docs(load_values(CHART / "ci" / "external-services-values.yaml"))
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {f"{RELEASE}-reward", f"{RELEASE}-rollout"}
    assert monitors[f"{RELEASE}-reward"]["metadata"]["labels"]["release"] == "prometheus"
    assert monitors[f"{RELEASE}-rollout"]["spec"]["endpoints"][0]["path"] == "/metrics"
