"""Unknown-field pruning of custom objects, as the Kubernetes API server does it with a CRD's
structural schema (apiextensions-apiserver ``pkg/apiserver/schema/pruning``).

:func:`prune` removes, in place, every field the schema does not declare and returns the dotted
paths it removed. The rules: at the root ``apiVersion``/``kind`` stay and ``metadata`` keeps only
ObjectMeta's fields; an object with ``properties`` keeps only those; ``additionalProperties`` keeps
every key and prunes the values by its schema; ``x-kubernetes-preserve-unknown-fields`` keeps
unknown keys; ``x-kubernetes-embedded-resource`` keeps ``apiVersion``/``kind``/``metadata``; an
object schema that declares none of these keeps nothing; arrays prune their items.

Field validation (the request's ``fieldValidation``, default ``Warn``) decides what the client
sees: ``Strict`` fails the request naming the fields, ``Warn`` answers with a ``Warning`` header
(which the Python client ignores), ``Ignore`` says nothing. The object is stored pruned either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CRDS = Path(__file__).parent / "crds"
OBJECT_META = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
}  # fmt: skip


def load_crd(name: str) -> dict:
    """A schema file of ``tests/cluster/crds`` (group, version, plural, kind, openAPIV3Schema)."""
    return yaml.load((CRDS / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def prune(obj: dict, schema: dict) -> list[str]:
    """Drop what ``schema`` (an openAPIV3Schema) does not declare from ``obj``; the removed paths."""
    removed: list[str] = []
    for key in list(obj):
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            for field in [f for f in obj["metadata"] if f not in OBJECT_META]:
                del obj["metadata"][field]
                removed.append(f"metadata.{field}")
            continue
        _prune_field(obj, key, schema, "", removed)
    return removed


def _prune_field(parent: dict, key: str, schema: dict, path: str, removed: list[str]) -> None:
    props = schema.get("properties")
    where = f"{path}.{key}" if path else key
    if props is not None and key in props:
        _prune_value(parent[key], props[key], where, removed)
    elif isinstance(schema.get("additionalProperties"), dict):
        _prune_value(parent[key], schema["additionalProperties"], where, removed)
    elif not _keeps_unknown(schema, key):
        del parent[key]
        removed.append(where)


def _keeps_unknown(schema: dict, key: str) -> bool:
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties") is True:
        return True
    return bool(schema.get("x-kubernetes-embedded-resource")) and key in ("apiVersion", "kind", "metadata")


def _prune_value(value: Any, schema: dict, path: str, removed: list[str]) -> None:
    if isinstance(value, dict) and schema.get("type") == "object":
        for key in list(value):
            _prune_field(value, key, schema, path, removed)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune_value(item, schema["items"], f"{path}[{i}]", removed)
