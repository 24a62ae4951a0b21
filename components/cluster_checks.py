"""Validate config's questions to the API server, asked as the run's own service account.

Everything a later task would otherwise find out after SFT has spent GPU hours: the verbs ovr will
use (SelfSubjectAccessReview per verb and resource), the weights claim the eval and RL pods mount,
the job API and the Trainer release it serves (runtimePatches needs Trainer >= v2.2), the
ClusterTrainingRuntime the TrainJob names, and each multi-node stage's job as the API server would
admit it (a dry-run create with strict field validation: schema, RBAC, the Trainer's and Kueue's
webhooks). Each problem is a :class:`Findings` failure naming the fix; what this account may not
read is a warning naming what to check by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kubernetes import client as k8s

from ovr.k8s import access
from ovr.k8s.kinds import TRAINJOB, JobKind, NoJobApi, discover


@dataclass
class Findings:
    """Failures (the run cannot work) and warnings (could not be checked), in the order found."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunShape:
    """What the run will ask of the cluster (from the pipeline's parameters)."""

    namespace: str
    service_account: str
    sft_nodes: int = 1
    rl_nodes: int = 1
    weights_claim: str | None = None
    install: str | None = None  # the chart release whose rollout replicas the run leases (OVR_INSTALL)

    @property
    def multi_node(self) -> list[str]:
        return [s for s, n in (("sft", self.sft_nodes), ("rl", self.rl_nodes)) if n > 1]


def needs(kind: JobKind | None, install: str | None = None) -> list[access.Need]:
    """The verbs ovr itself uses in the run's namespace (KFP's own are KFP's: the profile's account has them)."""
    out = [access.Need("get", "persistentvolumeclaims", why="Validate config reads the weights claim", required=False)]
    if install:  # components/runtime.py replica_lease: the replicas serve one run's weights at a time
        why, lease = "the run leases the install's rollout replicas", f"{install}-rollout"
        out += [access.Need("create", "leases", "coordination.k8s.io", why=why)]
        out += [access.Need(v, "leases", "coordination.k8s.io", why=why, name=lease) for v in ("get", "patch")]
    if kind is not None:
        out += [access.Need(v, kind.plural, kind.group, why="multi-node stages") for v in ("create", "get", "delete")]
        out += [
            access.Need("list", "pods", why="the launcher reads the job's pods"),
            access.Need("get", "pods", subresource="log", why="the launcher reports a failed pod's log"),
        ]
    return out


def check_rbac(api: k8s.ApiClient, shape: RunShape, kind: JobKind | None, found: Findings) -> set[str]:
    """Fail for each verb the account lacks; the denied ones (as strings) are returned."""
    refused, why = access.denied(api, shape.namespace, needs(kind, shape.install))
    if why:
        found.warnings.append(f"could not review the account's permissions ({why}); RBAC is checked when used")
    for need in refused:
        if not need.required:
            found.warnings.append(f"the run's service account may not {need} ({need.why}): that check is skipped")
            continue
        found.failures.append(
            f"the run's service account {shape.service_account!r} may not {need} in namespace {shape.namespace!r} "
            f"({need.why}): run the pipeline as the profile's default-editor, or bind the chart's Role to "
            f"{shape.service_account!r} (helm value rbac.extraSubjects)"
        )
    return {str(n) for n in refused}


def check_claim(api: k8s.ApiClient, shape: RunShape, found: Findings, denied: set[str]) -> None:
    """The weights claim the eval and RL pods mount exists and is bound (else they stay Pending)."""
    if not shape.weights_claim or "get persistentvolumeclaims" in denied:
        if shape.weights_claim:
            found.warnings.append(f"cannot read claim {shape.weights_claim!r}: check it exists and is Bound")
        return
    claim, status = access.read_object(api, "", "v1", "persistentvolumeclaims", shape.weights_claim, shape.namespace)
    if status == 404:
        found.failures.append(
            f"claim {shape.weights_claim!r} (pipeline parameter weights_claim) does not exist in namespace "
            f"{shape.namespace!r}: the eval and RL pods would stay Pending. Pass weights_claim=<release>-weights "
            "(kubectl get pvc lists the install's claims)"
        )
    elif claim is not None and (phase := (claim.get("status") or {}).get("phase")) == "Lost":
        found.failures.append(f"claim {shape.weights_claim!r} is Lost (its volume is gone): recreate it")
    elif claim is not None and phase not in ("Bound", None):
        found.warnings.append(
            f"claim {shape.weights_claim!r} is {phase}: fine until its first pod with a WaitForFirstConsumer "
            "storage class; otherwise check the class provisions ReadWriteMany volumes (kubectl describe pvc)"
        )
    elif claim is None:
        found.warnings.append(
            f"cannot read claim {shape.weights_claim!r} (HTTP {status}): check it exists and is Bound"
        )


def check_trainer(api: k8s.ApiClient, runtime: str, found: Findings) -> None:
    """The served TrainJob schema has every field ovr sets; the runtime it names exists."""
    fields, where = access.trainjob_fields(api)
    if fields is None:
        found.warnings.append(
            f"cannot read the served TrainJob schema ({where}): jobs are created strictly, so an "
            "older Trainer refuses them at launch"
        )
    elif gap := access.trainer_gap(fields):
        found.failures.append(gap)
    read = access.Need("get", "clustertrainingruntimes", access.TRAINER_GROUP, name=runtime, required=False)
    refused, _ = access.denied(api, None, [read])
    if refused:  # asked first: a refused read would be a forbidden call in the audit log
        found.warnings.append(
            f"this account may not read the cluster-scoped ClusterTrainingRuntime {runtime!r} (the chart's "
            f"rbac.readClusterRuntimes grants it): check `kubectl get clustertrainingruntime {runtime}` "
            "(the dry-run create asks the Trainer's webhook)"
        )
        return
    _, status = access.read_object(
        api, access.TRAINER_GROUP, access.TRAINER_VERSION, "clustertrainingruntimes", runtime
    )
    if status == 404:
        found.failures.append(
            f"ClusterTrainingRuntime {runtime!r} does not exist: install Kubeflow Trainer's runtimes "
            "(manifests/overlays/runtimes), or name an installed one in the install's OVR_TRAINER_RUNTIME"
        )
    elif status != 200:
        found.warnings.append(
            f"cannot read the cluster-scoped ClusterTrainingRuntime {runtime!r} with this account (HTTP {status}): "
            f"check `kubectl get clustertrainingruntime {runtime}` (the dry-run create asks the Trainer's webhook)"
        )


def check_job(api: k8s.ApiClient, kind: JobKind, stage: str, body: dict, found: Findings) -> None:
    """The API server admits ``body`` (dry run, strict): else its reason, with the fix where known."""
    err = access.dry_run_create(api, kind, body)
    if err is None:
        return
    try:
        message = json.loads(err.body or "{}").get("message") or err.reason
    except (TypeError, ValueError):
        message = str(err.body or err.reason)
    if err.status == 400 and "unknown field" in message:
        found.failures.append(f"the {stage} {kind.kind} is refused: {message}: {kind.requires} is required")
    elif err.status == 403:
        found.failures.append(f"the run's account may not create {kind.plural} ({message}): see the RBAC findings")
    else:
        found.failures.append(f"the API server refuses the {stage} {kind.kind} (HTTP {err.status}): {message}")


def job_kind(api: k8s.ApiClient, shape: RunShape, found: Findings) -> JobKind | None:
    """The job API the multi-node stages will use (None when there are none, or none is served)."""
    if not shape.multi_node:
        return None
    try:
        return discover(api)
    except NoJobApi as err:
        found.failures.append(f"{', '.join(shape.multi_node)} on several nodes: {err}; or run with *_nodes=1")
        return None


def check_cluster(api: k8s.ApiClient, shape: RunShape, jobs: dict[str, object], runtime: str) -> Findings:
    """Every cluster-side check; ``jobs`` maps each multi-node stage to its ``TrainerJobSpec`` (or why
    it cannot be built), sent as the discovered kind's manifest in a dry run."""
    found = Findings()
    kind = job_kind(api, shape, found)
    denied = check_rbac(api, shape, kind, found)
    check_claim(api, shape, found, denied)
    if kind is TRAINJOB:
        check_trainer(api, runtime, found)
    for stage, spec in jobs.items():
        if isinstance(spec, str):
            found.failures.append(f"the {stage} job cannot be built: {spec}")
            continue
        if kind is None:
            continue
        try:
            body = kind.manifest(spec)
        except ValueError as err:
            found.failures.append(f"the {stage} {kind.kind} cannot be built: {err}")
            continue
        check_job(api, kind, stage, body, found)
    return found
