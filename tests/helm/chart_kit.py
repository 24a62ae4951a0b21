"""Render helpers for the chart tests: helm-python-sdk embeds Helm v4 as a library (no helm binary,
no cluster; `lookup` returns nothing, so generated secrets are fresh random values). Imported by name
(``from chart_kit import ...``): a module named ``conftest`` is whichever folder's conftest pytest
loaded last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ovr"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE, NAMESPACE = "ovr", "ml"
#: the one value an install must set: the weights claim's ReadWriteMany StorageClass (``fail`` without it)
REQUIRED: dict[str, Any] = {"rollout": {"weights": {"storageClass": "rwx-nfs"}}}


def with_required(values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` over :data:`REQUIRED` (nested keys merged, ``values`` wins)."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return merge(REQUIRED, values or {})


def render_docs(
    values: dict[str, Any] | None = None, chart: Path = CHART, required: bool = True
) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with ``values`` (over :data:`REQUIRED` unless
    ``required`` is False; hooks and test pods included)."""
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(
            with_required(values) if required else values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def render_notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as loaded:
        manifests = loaded.render(with_required(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return manifests[f"{CHART.name}/templates/NOTES.txt"]


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def find(docs: list[dict], kind: str, name: str) -> dict:
    """The one object of ``kind`` named ``name``; fails listing what exists."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name} not rendered; have {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return hits[0]


def pod_spec(doc: dict) -> dict:
    """The pod spec of a workload or a bare Pod."""
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod"}
