"""Who gets in: every Service is fenced by a NetworkPolicy admitting labelled pods only, MLflow runs
its basic-auth app, the rollout servers get their bearer token, and no credential is ever written
into a rendered manifest (only Secrets hold them; everything else names a Secret)."""

from __future__ import annotations

import base64
import json
import re

from chart_kit import CHART, RELEASE, WORKLOAD_KINDS, find, load_values, pod_spec, render_docs, render_notes

CLIENT = {"ovr.dev/client": "true"}
TRAINER = {"ovr.dev/trainer": "true"}
CREDENTIAL_ENV = re.compile(r"(TOKEN|PASSWORD|SECRET|ACCESS_KEY|ROOT_USER)")


def _policies(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}


def _selects(policy: dict, labels: dict[str, str]) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def _component_peer(component: str) -> dict:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "ovr",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": component,
            }
        }
    }


def test_every_service_is_selected_by_a_network_policy(values_case):
    label, values = values_case
    docs = render_docs(values)
    policies = _policies(docs)
    services = [d for d in docs if d["kind"] == "Service"]
    assert services, label
    for svc in services:
        hits = [n for n, p in policies.items() if _selects(p, svc["spec"]["selector"])]
        assert hits, f"{label}: Service {svc['metadata']['name']} has no NetworkPolicy"


def test_every_rule_admits_labelled_pods_only(values_case):
    label, values = values_case
    monitoring = values.get("networkPolicy", {}).get("monitoringNamespaceSelector") or {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    for name, policy in _policies(render_docs(values)).items():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        admitted = []
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{label}: {name} has a rule open to every source"
            for peer in rule["from"]:
                if "podSelector" in peer:  # a bare {} would admit every pod of the namespace
                    assert peer["podSelector"].get("matchLabels"), f"{label}: {name}: {peer}"
                    admitted.append(peer["podSelector"]["matchLabels"])
                else:  # a namespace alone only for the monitoring stack's metrics scrape
                    assert peer == {"namespaceSelector": monitoring}, f"{label}: {name}: {peer}"
                    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        if name == f"{RELEASE}-postgresql":  # the database: MLflow's pods only
            assert policy["spec"]["ingress"] == [
                {"from": [_component_peer("mlflow")], "ports": [{"port": "postgresql", "protocol": "TCP"}]}
            ]
        else:
            assert CLIENT in admitted, f"{label}: {name} does not admit ovr clients"


def test_nccl_ports_only_from_trainers_and_metrics_only_when_monitored():
    policies = _policies(render_docs())
    rollout = policies[f"{RELEASE}-rollout"]["spec"]["ingress"]
    open_ports = [r for r in rollout if "ports" not in r]
    assert open_ports == [{"from": [{"podSelector": {"matchLabels": TRAINER}}]}]
    assert not [
        r for p in policies.values() for r in p["spec"]["ingress"] for peer in r["from"] if "namespaceSelector" in peer
    ]
    minio = policies[f"{RELEASE}-minio"]["spec"]["ingress"]
    assert {"from": [_component_peer("mlflow")], "ports": [{"port": "s3", "protocol": "TCP"}]} in minio
    assert {"from": [_component_peer("rollout")], "ports": [{"port": "s3", "protocol": "TCP"}]} in minio
    monitored = _policies(render_docs(load_values(CHART / "ci" / "external-services-values.yaml")))
    scrape = {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }
    for component in ("rollout", "reward"):
        assert scrape in monitored[f"{RELEASE}-{component}"]["spec"]["ingress"], component
    assert scrape not in monitored[f"{RELEASE}-mlflow"]["spec"]["ingress"]


def test_the_chart_labels_agree_with_the_pipeline_and_job_pods():
    from components.resources import CLIENT_LABEL, TRAINER_LABEL
    from ovr.k8s.kinds import pytorchjob_manifest, trainjob_manifest
    from ovr.k8s.spec import TrainerJobSpec

    assert dict([CLIENT_LABEL]) == CLIENT and dict([TRAINER_LABEL]) == TRAINER
    spec = TrainerJobSpec(name="rl", namespace="ml", image="ovr:1", command=["true"], nodes=2)
    templates = [r["template"] for r in pytorchjob_manifest(spec)["spec"]["pytorchReplicaSpecs"].values()]
    patch = trainjob_manifest(spec)["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    templates += [j["template"]["spec"]["template"] for j in patch["replicatedJobs"]]
    assert len(templates) == 3
    for template in templates:
        assert CLIENT.items() <= template["metadata"]["labels"].items()
        assert TRAINER.items() <= template["metadata"]["labels"].items()


def test_the_charts_own_jobs_and_test_pods_are_clients(values_case):
    label, values = values_case
    for doc in render_docs({**values, "kfpUpload": {**values.get("kfpUpload", {}), "enabled": True}}):
        if doc["kind"] in ("Job", "Pod"):
            labels = (
                doc["metadata"]["labels"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]["labels"]
            )
            assert CLIENT.items() <= labels.items(), f"{label}: {doc['kind']}/{doc['metadata']['name']}"


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_mlflow_runs_the_auth_app_with_credentials_from_a_secret():
    docs = render_docs()
    mlflow = pod_spec(find(docs, "Deployment", f"{RELEASE}-mlflow"))
    c = mlflow["containers"][0]
    assert "--app-name=basic-auth" in c["args"]
    env = _env(c)
    for var, key in (
        ("MLFLOW_AUTH_ADMIN_USERNAME", "username"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "password"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask-secret-key"),
    ):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": f"{RELEASE}-mlflow", "key": key}, var
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-postgresql"
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
    assert {"name": "auth-config", "mountPath": "/etc/mlflow-auth", "readOnly": True} in c["volumeMounts"]
    ini = find(docs, "ConfigMap", f"{RELEASE}-mlflow-auth")["data"]["basic_auth.ini"]
    assert f"database_uri = postgresql://mlflow@{RELEASE}-postgresql.ml.svc:5432/mlflow" in ini
    assert "default_permission = READ" in ini and "admin_password" not in ini
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"  # the one unauthenticated route
    plain = render_docs({"mlflow": {"auth": {"enabled": False}}})
    c = pod_spec(find(plain, "Deployment", f"{RELEASE}-mlflow"))["containers"][0]
    assert "--app-name=basic-auth" not in c["args"] and "MLFLOW_AUTH_ADMIN_PASSWORD" not in _env(c)
    assert not [d for d in plain if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-auth")]
    assert "MLflow asks for a login" in render_notes() and "get secret ovr-mlflow" in render_notes()


def test_rollout_servers_get_their_token_from_a_secret():
    vllm = pod_spec(find(render_docs(), "StatefulSet", f"{RELEASE}-rollout"))["containers"][0]
    token = _env(vllm)["OVR_ROLLOUT_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": f"{RELEASE}-rollout", "key": "token"}
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"  # open without the token


def test_no_credential_value_in_any_rendered_manifest(values_case):
    label, values = values_case
    docs = render_docs(values)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    generated = {
        base64.b64decode(v).decode() for s in secrets for k, v in s["data"].items() if k not in ("username", "user")
    }
    assert all(len(v) >= 20 for v in generated), label
    text = "\n".join(json.dumps(d) for d in docs if d["kind"] != "Secret") + render_notes(values)
    leaked = [v for v in generated if v in text]
    assert not leaked, f"{label}: {len(leaked)} generated credential(s) appear outside their Secret"
    for doc in docs:  # credentials reach containers as secretKeyRef, never as a literal value
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        for c in spec.get("initContainers", []) + spec["containers"]:
            for name, e in _env(c).items():
                if CREDENTIAL_ENV.search(name) and name != "MLFLOW_AUTH_CONFIG_PATH":
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{label}: {doc['metadata']['name']}/{name}"
            assert not [a for a in c.get("args", []) + c.get("command", []) if re.search(r"://[^/@\s]+:[^/@\s]+@", a)]
