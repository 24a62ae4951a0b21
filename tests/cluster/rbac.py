"""Kubernetes RBAC, evaluated as the API server's RBAC authorizer does, for the cluster twin.

:class:`Rbac` holds Roles, ClusterRoles (``aggregationRule`` resolved by label, as the
clusterrole-aggregation controller does), RoleBindings and ClusterRoleBindings, and answers
:meth:`Rbac.allows` for a request's attributes: a RoleBinding grants its role's rules in its own
namespace, a ClusterRoleBinding everywhere. A rule matches when its verbs, API groups, resources
(``resource/subresource``, ``*``, ``*/subresource``) and, when set, ``resourceNames`` cover the
request (a ``create`` has no name, so a rule with ``resourceNames`` never allows it), or, for
paths outside the API (discovery, ``/openapi/v3``), its ``nonResourceURLs`` (exact or ``prefix*``).
A service account ``sa`` of namespace ``ns`` is user ``system:serviceaccount:ns:sa`` in groups
``system:serviceaccounts``, ``system:serviceaccounts:ns`` and ``system:authenticated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILE_ROLES = Path(__file__).parent / "profile" / "kubeflow-roles.yaml"
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


@dataclass(frozen=True)
class Request:
    """What the authorizer sees of a request (``path`` set only for a non-resource URL)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f'User "{self.user}" cannot {self.verb} path "{self.path}"'
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f' in the namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
        return f'User "{self.user}" cannot {self.verb} resource "{what}" in API group "{self.group}"{where}'


def service_account(namespace: str, name: str) -> tuple[str, tuple[str, ...]]:
    """(user, groups) of a service account's token."""
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
    return f"system:serviceaccount:{namespace}:{name}", groups


def profile_bindings(namespace: str) -> list[dict]:
    """The RoleBindings Kubeflow's profile controller makes in a profile namespace."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
        for account, role in (("default-editor", "kubeflow-edit"), ("default-viewer", "kubeflow-view"))
    ]


def profile_objects(namespace: str) -> list[dict]:
    """A Kubeflow profile namespace's RBAC: the standard cluster roles and the profile's bindings."""
    docs = [d for d in yaml.safe_load_all(PROFILE_ROLES.read_text()) if d]
    return docs + profile_bindings(namespace)


def _matches(labels: dict, selector: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _rule_allows(rule: dict, req: Request) -> bool:
    if "*" not in rule.get("verbs", []) and req.verb not in rule.get("verbs", []):
        return False
    if req.path is not None:
        return any(
            url == req.path or (url.endswith("*") and req.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
    if "*" not in groups and req.group not in groups:
        return False
    wanted = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    if not ("*" in resources or wanted in resources or (req.subresource and f"*/{req.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (req.name is not None and req.name in names)


class Rbac:
    """Roles and bindings of a cluster (rendered manifests, the profile's standard roles, ...)."""

    def __init__(self, objects: list[dict]):
        objs = [o for o in objects if o.get("kind") in RBAC_KINDS]
        self.cluster_roles = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ClusterRole"}
        self.roles = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs if o["kind"] == "Role"}
        self.bindings = [o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]

    def cluster_role_rules(self, name: str, seen: frozenset[str] = frozenset()) -> list[dict]:
        role = self.cluster_roles.get(name)
        if role is None or name in seen:
            return []
        rules = list(role.get("rules") or [])
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            for other, obj in self.cluster_roles.items():
                if other != name and _matches(obj["metadata"].get("labels") or {}, selector):
                    rules += self.cluster_role_rules(other, seen | {name})
        return rules

    def _bound(self, binding: dict, req: Request) -> bool:
        for s in binding.get("subjects") or []:
            if s["kind"] == "ServiceAccount":
                ns = s.get("namespace") or binding["metadata"].get("namespace")
                if req.user == f"system:serviceaccount:{ns}:{s['name']}":
                    return True
            elif (s["kind"] == "User" and s["name"] == req.user) or (s["kind"] == "Group" and s["name"] in req.groups):
                return True
        return False

    def _rules(self, binding: dict) -> list[dict]:
        ref = binding["roleRef"]
        if ref["kind"] == "ClusterRole":
            return self.cluster_role_rules(ref["name"])
        role = self.roles.get((binding["metadata"].get("namespace"), ref["name"]))
        return list((role or {}).get("rules") or [])

    def allows(self, req: Request) -> bool:
        for binding in self.bindings:
            if binding["kind"] == "RoleBinding" and binding["metadata"].get("namespace") != req.namespace:
                continue
            if self._bound(binding, req) and any(_rule_allows(r, req) for r in self._rules(binding)):
                return True
        return False
