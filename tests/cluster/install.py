"""The chart as the twin's cluster holds it: rendered into a Kubeflow profile namespace, with the
profile's standard RBAC beside it, and the account a run uses read from the release NOTES."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from rbac import Rbac, profile_objects

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ovr"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "StorageClass", "PriorityClass"}


def render(values: dict, release: str, namespace: str) -> tuple[list[dict], str]:
    """(objects, NOTES) of a `helm install` of the chart; namespaced objects carry the namespace."""
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
    docs = [d for p, t in sorted(manifests.items()) if not p.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            d["metadata"].setdefault("namespace", namespace)
    return docs, notes


def run_account(notes: str) -> str:
    """The service account the NOTES tell to pass to ``ovr submit --service-account``."""
    hit = re.search(r"--service-account\s+([a-z0-9][-a-z0-9.]*)", notes)
    if hit is None:
        raise AssertionError("the release NOTES name no account for `ovr submit --service-account <name>`")
    return hit.group(1)


def profile_rbac(docs: list[dict], namespace: str) -> Rbac:
    """RBAC of a profile namespace with the chart installed: the chart's Roles and bindings plus
    Kubeflow's standard roles and the profile controller's bindings."""
    return Rbac(profile_objects(namespace) + docs)
