"""The parts of kube-apiserver that kmock's emulator does not do, for the launcher's and Validate
config's tests. kmock keeps objects, answers discovery and CRUD; this module adds, and fakes only:

- TrainJob field validation as the API server applies a CRD's structural schema, at the ``spec`` and
  ``spec.trainer`` levels with the fields a given Kubeflow Trainer release declares
  (``crds/trainjob-served-fields.yaml``): ``fieldValidation=Strict`` refuses unknown fields with 400
  ``strict decoding error: unknown field "spec.x"``, any other mode prunes them (a warning only);
  ``dryRun=All`` admits without storing. (kmock stores a created object before any reaction runs;
  a refused or dry-run one is removed again within the same request.)
- the OpenAPI v3 document ``/openapi/v3/apis/trainer.kubeflow.org/v1alpha1`` with that release's
  TrainJob schema (its CRD's shape: inline ``spec`` under an ``x-kubernetes-group-version-kind``);
- SelfSubjectAccessReviews answered from a set of granted ``(verb, group, resource[/subresource])``
  (the cluster's RBAC evaluation for the pod's account is faked by that set);
- ClusterTrainingRuntimes as plain objects (the Trainer's own webhook is not run).
"""

from __future__ import annotations

from pathlib import Path

import kmock as kmocklib
import yaml

SERVED = yaml.safe_load((Path(__file__).parent / "crds" / "trainjob-served-fields.yaml").read_text())
TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"
RUNTIMES = "trainer.kubeflow.org/v1alpha1/clustertrainingruntimes"
PVCS, PODS = "v1/persistentvolumeclaims", "v1/pods"
SSAR = "authorization.k8s.io/v1/selfsubjectaccessreviews"


def unknown(body: dict, release: str) -> list[str]:
    """Fields of ``body`` the release's TrainJob schema does not declare (``spec.x``, ``spec.trainer.y``)."""
    spec = body.get("spec") or {}
    fields = SERVED[release]
    out = [f"spec.{k}" for k in spec if k not in fields["spec"]]
    out += [f"spec.trainer.{k}" for k in spec.get("trainer") or {} if k not in fields["trainer"]]
    return sorted(out)


def openapi_doc(release: str) -> dict:
    """The OpenAPI v3 document of trainer.kubeflow.org/v1alpha1 as the API server builds it from the CRD."""
    fields = SERVED[release]
    spec = {
        "type": "object",
        "required": ["runtimeRef"],
        "properties": {
            f: (
                {"type": "object", "properties": {t: {} for t in fields["trainer"]}}
                if f == "trainer"
                else {"type": "object"}
            )
            for f in fields["spec"]
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
            "spec": {"allOf": [{"$ref": "#/components/schemas/spec-of-trainjob"}]},
            "status": {"type": "object"},
        },
        "x-kubernetes-group-version-kind": [
            {"group": "trainer.kubeflow.org", "kind": "TrainJob", "version": "v1alpha1"}
        ],
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "org.kubeflow.trainer.v1alpha1.TrainJob": schema,
                "spec-of-trainjob": spec,
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object"},
            }
        },
    }


def serve_trainer(kmock, release: str = "v2.3.0", runtimes: tuple[str, ...] = ("torch-distributed",)) -> list[dict]:
    """TrainJobs of ``release`` on the emulated API server; returns the list of dry-run bodies admitted."""
    kmock.resources[TRAINJOBS] = kmock.ResourceInfo(namespaced=True, kind="TrainJob")
    kmock.resources[RUNTIMES] = kmock.ResourceInfo(namespaced=False, kind="ClusterTrainingRuntime")
    for name in runtimes:
        kmock.objects[RUNTIMES, None, name] = {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "ClusterTrainingRuntime",
            "metadata": {"name": name},
            "spec": {},
        }
    kmock["get /openapi/v3/apis/trainer.kubeflow.org/v1alpha1"] << openapi_doc(release)
    dry_runs: list[dict] = []

    def create(request):
        extra = unknown(request.data, release)
        meta = request.data.get("metadata") or {}
        stored = (kmock.resource(TRAINJOBS), request.namespace or meta.get("namespace"), meta.get("name"))
        dry_run = (request.params or {}).get("dryRun") == "All"
        if dry_run or (extra and (request.params or {}).get("fieldValidation") == "Strict"):
            del kmock.objects[stored]  # kmock stored it before this reaction: a refused or dry-run create is not
        if extra and (request.params or {}).get("fieldValidation") == "Strict":
            kind = request.data.get("kind", "TrainJob")
            raise kmocklib.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'{kind} in version "v1alpha1" cannot be handled as a {kind}: strict decoding error: '
                + ", ".join(f'unknown field "{f}"' for f in extra),
            )
        for path in extra:  # pruned, as the API server does under fieldValidation Warn / Ignore
            node = request.data
            *parents, leaf = path.split(".")
            for p in parents:
                node = node[p]
            node.pop(leaf)
        if dry_run:
            dry_runs.append(request.data)
            return request.data
        return None  # stored by the emulator

    kmock["post", kmock.resource(TRAINJOBS)] << create
    return dry_runs


def serve_rbac(kmock, granted: set[tuple[str, str, str]]) -> list[dict]:
    """SelfSubjectAccessReviews allowed iff ``(verb, group, resource[/subresource])`` is granted; returns
    the reviews asked."""
    asked: list[dict] = []

    def review(request):
        del kmock.objects[kmock.resource(SSAR), None, None]  # a review is not stored
        attrs = request.data["spec"]["resourceAttributes"]
        asked.append(attrs)
        res = attrs["resource"] + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        allowed = (attrs["verb"], attrs.get("group") or "", res) in granted
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": request.data["spec"],
            "status": {"allowed": allowed},
        }

    kmock["post", kmock.resource(SSAR)] << review
    return asked


def add_claim(kmock, namespace: str, name: str, modes=("ReadWriteMany",), phase: str = "Bound") -> None:
    kmock.resources[PVCS] = kmock.ResourceInfo(namespaced=True, kind="PersistentVolumeClaim")
    kmock.objects[PVCS, namespace, name] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": list(modes)},
        "status": {"phase": phase},
    }
