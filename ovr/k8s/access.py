"""What the run's account may do and what the cluster serves, asked before any GPU is spent.

- :func:`denied`: SelfSubjectAccessReviews (every account may create them) for each verb and resource
  ovr will use, answered by the cluster's own RBAC for the pod's service account;
- :func:`trainjob_fields` / :func:`trainer_gap`: the TrainJob fields the API server serves, from its
  OpenAPI v3 document of ``trainer.kubeflow.org/v1alpha1`` (readable by every authenticated account);
  Trainer v2.0 and v2.1 serve the same group-version without ``runtimePatches`` and
  ``activeDeadlineSeconds``, which ovr's manifest needs;
- :func:`read_object`: a named object (a claim, the cluster-scoped ``torch-distributed``
  ClusterTrainingRuntime) as found, missing, or not readable by this account;
- :func:`dry_run_create`: the API server's full admission of a job (schema, RBAC, the Trainer's and
  Kueue's webhooks) without creating it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

TRAINER_GROUP, TRAINER_VERSION = "trainer.kubeflow.org", "v1alpha1"
#: TrainJob spec fields that tell the releases apart (from their CRDs, trainer.kubeflow.org/v1alpha1)
RELEASE_MARKERS = (
    ("v2.2 or later", "runtimePatches"),
    ("v2.1", "podTemplateOverrides"),
    ("v2.0", "podSpecOverrides"),
)
#: TrainJob spec fields ovr's manifest sets (ovr.k8s.kinds.trainjob_manifest): Trainer >= v2.2
TRAINJOB_NEEDS = ("runtimeRef", "trainer", "runtimePatches", "activeDeadlineSeconds")


@dataclass(frozen=True)
class Need:
    """One verb on one resource the run will use, and what for."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    why: str = ""
    name: str = ""  # one object (a Role may grant a verb on named objects only)
    required: bool = True  # False: only a check needs it (denied: the check is skipped, with a warning)

    def __str__(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {res}" + (f" ({self.group})" if self.group else "")


def denied(api_client: k8s.ApiClient, namespace: str | None, needs: list[Need]) -> tuple[list[Need], str | None]:
    """The needs this account is not granted in ``namespace`` (None: cluster-scoped resources); (``[]``,
    why) when the reviews themselves cannot be made (nothing is known then)."""
    api = k8s.AuthorizationV1Api(api_client)
    refused = []
    for need in needs:
        attrs = k8s.V1ResourceAttributes(
            namespace=namespace,
            verb=need.verb,
            group=need.group,
            resource=need.resource,
            subresource=need.subresource or None,
            name=need.name or None,
        )
        review = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
        try:
            answer = api.create_self_subject_access_review(review)
        except ApiException as err:
            return [], f"SelfSubjectAccessReview answered HTTP {err.status} {err.reason}"
        if not (answer.status and answer.status.allowed):
            refused.append(need)
    return refused, None


def get_path(api_client: k8s.ApiClient, path: str) -> tuple[int, Any]:
    """GET a raw API path: (HTTP status, parsed JSON or None)."""
    try:
        resp = api_client.call_api(
            path, "GET", auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True
        )
    except ApiException as err:
        return err.status, None
    return resp.status, json.loads(resp.data or b"null")


def trainjob_fields(api_client: k8s.ApiClient) -> tuple[set[str] | None, str]:
    """The ``spec`` fields of TrainJob this API server serves, and where they were read; None (with the
    reason) when the OpenAPI v3 document cannot be read or names no TrainJob."""
    path = f"/openapi/v3/apis/{TRAINER_GROUP}/{TRAINER_VERSION}"
    status, doc = get_path(api_client, path)
    if status != 200 or not isinstance(doc, dict):
        return None, f"GET {path} answered HTTP {status}"
    for schema in ((doc.get("components") or {}).get("schemas") or {}).values():
        gvks = schema.get("x-kubernetes-group-version-kind") or []
        if any(g.get("group") == TRAINER_GROUP and g.get("kind") == "TrainJob" for g in gvks):
            spec = resolve_ref(doc, (schema.get("properties") or {}).get("spec") or {})
            return set((spec.get("properties") or {}).keys()), path
    return None, f"{path} has no TrainJob schema"


def resolve_ref(doc: dict, node: dict) -> dict:
    """``node`` with ``$ref`` and single-entry ``allOf`` indirections of an OpenAPI v3 document followed."""
    for _ in range(16):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
        elif len(node.get("allOf") or []) == 1 and not node.get("properties"):
            node = node["allOf"][0]
        else:
            break
    return node


def trainer_release(fields: set[str]) -> str:
    """Which Trainer release serves these TrainJob ``spec`` fields (by the fields only one release has)."""
    return next((release for release, marker in RELEASE_MARKERS if marker in fields), "unknown")


def trainer_gap(fields: set[str]) -> str | None:
    """None when the served TrainJob has every field ovr's manifest sets; else what is wrong and the fix."""
    missing = [f for f in TRAINJOB_NEEDS if f not in fields]
    if not missing:
        return None
    return (
        f"Kubeflow Trainer >= v2.2 required, this cluster serves TrainJob of Trainer {trainer_release(fields)} "
        f"(no {', '.join(missing)}): upgrade Kubeflow Trainer, or run with sft_nodes=1 and rl_nodes=1 "
        "(single-node stages need no TrainJob)"
    )


def read_object(
    api_client: k8s.ApiClient, group: str, version: str, plural: str, name: str, namespace: str | None = None
) -> tuple[dict | None, int]:
    """(object, 200) when found; (None, HTTP status) otherwise: 404 missing, 403 not readable by this account."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{namespace}/{plural}/{name}" if namespace else f"{base}/{plural}/{name}"
    status, obj = get_path(api_client, path)
    return (obj if status == 200 else None), status


def dry_run_create(api_client: k8s.ApiClient, kind, body: dict) -> ApiException | None:
    """Admit ``body`` (a job of ``kind``, an ``ovr.k8s.kinds.JobKind``) with ``dryRun=All`` and strict
    field validation: nothing is created; None when the API server would accept it, else its error
    (409, a job of that name already there, counts as accepted)."""
    api = k8s.CustomObjectsApi(api_client)
    ns = body["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(
            kind.group, kind.version, ns, kind.plural, body, dry_run="All", field_validation="Strict"
        )
    except ApiException as err:
        return None if err.status == 409 else err
    return None
