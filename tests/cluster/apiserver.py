"""The cluster twin's API server: kmock's Kubernetes emulator (objects in memory, watch streams,
discovery) plus the two parts of a real kube-apiserver a first run trips over.

- Authentication and RBAC: each pod's service account has a bearer token (:meth:`ApiServer.token`);
  every request is authorized by :class:`rbac.Rbac` (the chart's rendered Roles and bindings plus a
  Kubeflow profile's standard roles) and refused with 403 ``Forbidden`` as the real one words it.
  ``SelfSubjectAccessReview`` is answered from the same rules. Every request is logged
  (:attr:`ApiServer.calls`).
- Unknown-field pruning of custom objects by the served CRD schema (:mod:`pruning`; a Trainer
  v2.1 or v2.3 TrainJob schema, :meth:`ApiServer.serve_crd`): with ``fieldValidation=Strict`` a
  request carrying an unknown field fails with 400 naming it, otherwise (``Warn``, the default, or
  ``Ignore``) the object is stored without it and a ``Warning`` header says so. Every pruned field
  is logged (:attr:`ApiServer.pruned`). ``dryRun=All`` answers as a create would and stores nothing.
  The CRD's schema is also served as the OpenAPI v3 document of its group-version
  (``/openapi/v3/apis/<group>/<version>``), as the API server publishes it.

:meth:`ApiServer.hold` stores what ``helm install`` created (ConfigMaps, Secrets, claims, shown
Bound; ServiceAccounts) and the cluster's ClusterTrainingRuntimes. Not emulated: admission webhooks
(Trainer's and Kueue's), CEL validation rules, defaulting, server-side apply, resourceVersion
conflicts, and every schema check other than unknown fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp.web
import attrs
import kubernetes
from kmock import KubernetesEmulator, KubernetesError
from pruning import prune
from rbac import Rbac, Request, service_account

SSAR = ("authorization.k8s.io", "selfsubjectaccessreviews")
#: what the twin's cluster serves besides the custom resources a test declares (kind, namespaced)
SERVED = {
    "v1/pods": ("Pod", True),
    "v1/events": ("Event", True),
    "v1/secrets": ("Secret", True),
    "v1/configmaps": ("ConfigMap", True),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "coordination.k8s.io/v1/leases": ("Lease", True),
    "argoproj.io/v1alpha1/workflows": ("Workflow", True),
    "argoproj.io/v1alpha1/workflowtaskresults": ("WorkflowTaskResult", True),
    "authorization.k8s.io/v1/selfsubjectaccessreviews": ("SelfSubjectAccessReview", False),
}
VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "DELETE": "delete"}


@dataclass(frozen=True)
class Call:
    """One request as the authorizer saw it, and its answer."""

    request: Request
    allowed: bool


@dataclass(frozen=True)
class Pruned:
    """Fields of a custom object the server dropped (or refused, under Strict)."""

    resource: str  # group/version/plural
    name: str
    fields: tuple[str, ...]
    validation: str


@attrs.define(kw_only=True)
class ApiServer(KubernetesEmulator):
    rbac: Rbac | None = None  # None: every request allowed
    schemas: dict[str, dict] = attrs.field(factory=dict)  # "group/version/plural" -> openAPIV3Schema
    tokens: dict[str, tuple[str, tuple[str, ...]]] = attrs.field(factory=dict)
    calls: list[Call] = attrs.field(factory=list)
    pruned: list[Pruned] = attrs.field(factory=list)
    openapi: dict[str, dict] = attrs.field(factory=dict)  # /openapi/v3/apis/<group>/<version> -> document

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource, (kind, namespaced) in SERVED.items():
            subresources = {"log"} if resource == "v1/pods" else set()
            self.resources[resource] = self.ResourceInfo(kind=kind, namespaced=namespaced, subresources=subresources)

    def token(self, namespace: str, account: str) -> str:
        """The bearer token of service account ``namespace/account`` (what its pods mount)."""
        token = f"twin-{namespace}-{account}"
        self.tokens[token] = service_account(namespace, account)
        return token

    def serve_crd(self, crd: dict) -> None:
        """Serve a custom resource (a ``tests/cluster/crds`` file): discovery, pruning, OpenAPI v3."""
        key = f"{crd['group']}/{crd['version']}/{crd['plural']}"
        self.resources[key] = self.ResourceInfo(namespaced=True, kind=crd["kind"])
        self.schemas[key] = crd["openAPIV3Schema"]
        gvk = {"group": crd["group"], "version": crd["version"], "kind": crd["kind"]}
        name = f"{'.'.join(reversed(crd['group'].split('.')))}.{crd['version']}.{crd['kind']}"
        schema = crd["openAPIV3Schema"] | {"x-kubernetes-group-version-kind": [gvk]}
        self.openapi[f"/openapi/v3/apis/{crd['group']}/{crd['version']}"] = {
            "openapi": "3.0.0",
            "components": {"schemas": {name: schema}},
        }

    def hold(self, docs: list[dict], namespace: str, runtimes: tuple[str, ...] = ("torch-distributed",)) -> None:
        """The installed objects a run reads through the API, and the cluster's training runtimes."""
        plural = {"ConfigMap": "configmaps", "Secret": "secrets", "PersistentVolumeClaim": "persistentvolumeclaims"}
        self.resources["v1/serviceaccounts"] = self.ResourceInfo(kind="ServiceAccount", namespaced=True)
        plural["ServiceAccount"] = "serviceaccounts"
        for d in docs:
            if d["kind"] in plural:
                obj = dict(d) | {"metadata": dict(d["metadata"]) | {"namespace": namespace}}
                if d["kind"] == "PersistentVolumeClaim":
                    obj["status"] = {"phase": "Bound"}
                self.objects[self.resource(f"v1/{plural[d['kind']]}"), namespace, d["metadata"]["name"]] = obj
        res = "trainer.kubeflow.org/v1alpha1/clustertrainingruntimes"
        self.resources[res] = self.ResourceInfo(namespaced=False, kind="ClusterTrainingRuntime")
        for name in runtimes:
            body = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime"}
            self.objects[self.resource(res), None, name] = body | {"metadata": {"name": name}}

    def forbidden(self) -> list[Call]:
        return [c for c in self.calls if not c.allowed]

    def _attributes(self, request) -> Request:
        auth = request.headers.get("Authorization", "")
        user, groups = self.tokens.get(
            auth.removeprefix("Bearer ").strip(), ("system:anonymous", ("system:unauthenticated",))
        )
        res = request.resource
        method = str(request.method.value if hasattr(request.method, "value") else request.method).lower()
        if res is None or res.plural is None:
            return Request(user, groups, method, path=request.url.path)
        action = request.action.value if request.action is not None else ""
        verb = VERBS.get(action, "")
        if action == "UPDATE":
            verb = "patch" if method == "patch" else "update"
        elif action == "DELETE" and request.name is None:
            verb = "deletecollection"
        verb = verb or {"put": "update", "patch": "patch", "delete": "deletecollection"}.get(method, method)
        return Request(
            user, groups, verb, res.group or "", res.plural, request.subresource or "", request.namespace, request.name
        )

    async def _handle(self, request) -> aiohttp.web.StreamResponse:
        attrs_ = self._attributes(request)
        allowed = self.rbac is None or self.rbac.allows(attrs_)
        self.calls.append(Call(attrs_, allowed))
        if not allowed:
            what = f"{attrs_.resource}.{attrs_.group}" if attrs_.group else attrs_.resource or attrs_.path
            named = f' "{attrs_.name}"' if attrs_.name else ""
            message = f"{what}{named} is forbidden: {attrs_}"
            return await self._render_error(KubernetesError(status=403, reason="Forbidden", message=message))
        res = request.resource
        if attrs_.path is not None and attrs_.path in self.openapi:
            return aiohttp.web.json_response(self.openapi[attrs_.path])
        if res is not None and (res.group, res.plural) == SSAR and attrs_.verb == "create":
            return self._access_review(request.data or {}, attrs_)
        key = f"{res.group}/{res.version}/{res.plural}" if res is not None else ""
        warning = None
        if key in self.schemas and attrs_.verb in ("create", "update", "patch") and isinstance(request.data, dict):
            name = request.name or (request.data.get("metadata") or {}).get("name", "")
            removed = prune(request.data, self.schemas[key])
            if removed:
                mode = request.params.get("fieldValidation", "Warn")
                self.pruned.append(Pruned(key, name, tuple(removed), mode))
                unknown = ", ".join(f'unknown field "{f}"' for f in removed)
                if mode == "Strict":
                    message = f"{name} cannot be handled: strict decoding error: {unknown}"
                    return await self._render_error(KubernetesError(status=400, reason="BadRequest", message=message))
                warning = None if mode == "Ignore" else f'299 - "{unknown}"'
        if request.params.get("dryRun") == "All" and attrs_.verb in ("create", "update", "patch"):
            return aiohttp.web.json_response(request.data, status=201 if attrs_.verb == "create" else 200)
        response = await super()._handle(request)
        if warning and not response.prepared:
            response.headers["Warning"] = warning
        return response

    def _access_review(self, body: dict, caller: Request) -> aiohttp.web.StreamResponse:
        spec = body.get("spec") or {}
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if nra:
            asked = Request(caller.user, caller.groups, nra.get("verb", ""), path=nra.get("path", ""))
        else:
            ra = ra or {}
            asked = Request(
                caller.user,
                caller.groups,
                ra.get("verb", ""),
                ra.get("group", ""),
                ra.get("resource", ""),
                ra.get("subresource", ""),
                ra.get("namespace") or None,
                ra.get("name") or None,
            )
        allowed = self.rbac is None or self.rbac.allows(asked)
        status = {"allowed": allowed} | ({} if allowed else {"reason": str(asked)})
        answer = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}
        return aiohttp.web.json_response(answer | {"status": status}, status=201, dumps=json.dumps)


def client_for(api: ApiServer, namespace: str, account: str) -> kubernetes.client.ApiClient:
    """A kubernetes client authenticated as service account ``namespace/account``."""
    cfg = kubernetes.client.Configuration(host=str(api.url).rstrip("/"))
    cfg.api_key = {"authorization": f"Bearer {api.token(namespace, account)}"}
    return kubernetes.client.ApiClient(cfg)
