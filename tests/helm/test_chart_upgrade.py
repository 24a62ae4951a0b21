"""`helm upgrade` under a running RL: a new chart version, or values that do not concern a workload,
leave its pod template byte-for-byte the same (Kubernetes restarts pods only when the template
changes), and the replicas' headless Service keeps a replica's DNS name while it is not Ready."""

from __future__ import annotations

import shutil

import yaml
from chart_kit import CHART, RELEASE, find, render_docs

SERVERS = [
    ("StatefulSet", "rollout"),
    ("Deployment", "reward"),
    ("Deployment", "mlflow"),
    ("Deployment", "minio"),
    ("StatefulSet", "postgresql"),
]


def templates(docs: list[dict]) -> dict[str, dict]:
    return {c: find(docs, kind, f"{RELEASE}-{c}")["spec"]["template"] for kind, c in SERVERS}


def bumped_chart(tmp_path, version: str):
    chart = tmp_path / "ovr"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": version}))
    return chart


def test_upgrade_to_a_new_chart_version_restarts_nothing(tmp_path):
    before = templates(render_docs())
    after = templates(render_docs(chart=bumped_chart(tmp_path, "0.9.3")))
    for component, template in before.items():
        assert after[component] == template, f"{component}'s pod template changes with the chart version"


def test_upgrade_of_unrelated_values_leaves_the_replicas_alone():
    before = templates(render_docs())["rollout"]
    others = {
        "reward": {"workers": 8, "replicas": 4, "autoscaling": {"enabled": False}},
        "mlflow": {"workers": 4, "extraArgs": ["--gunicorn-opts=--timeout=120"]},
        "kfpUpload": {"enabled": True},
        "networkPolicy": {"allowedNamespaceSelectors": [{"matchLabels": {"team": "ml"}}]},
        "tests": {"enabled": False},
    }
    assert templates(render_docs(others))["rollout"] == before
    labels = before["metadata"]["labels"]
    assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(labels)
    assert not [k for k in before["metadata"].get("annotations", {}) if k.startswith("checksum/")]


def test_headless_service_keeps_not_ready_replicas_addressable():
    headless = find(render_docs(), "Service", f"{RELEASE}-rollout-pods")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    sts = find(render_docs(), "StatefulSet", f"{RELEASE}-rollout")["spec"]
    assert sts["serviceName"] == f"{RELEASE}-rollout-pods"
