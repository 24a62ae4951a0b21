"""Multi-node stage launch: a Kubeflow job built, created, followed and cleaned up.

A stage that needs several nodes (SFT or RL on N x 8 GPUs) runs as a Kubeflow Trainer v2
``TrainJob``, or as a Training Operator v1 ``PyTorchJob`` on clusters that serve only that
(chosen by API discovery, :func:`ovr.k8s.kinds.discover`). Every pod runs the spec's ``command``
(normally ``torchrun ... -m ...``); the controller sets the rendezvous variables ``torchrun`` reads.

:func:`run_job` creates the job, reports each status transition, raises :class:`JobFailed` with the
failing pods' termination messages and log tails when it fails, and deletes it (foreground
propagation: pods go with it) whatever happens, including SIGTERM turned into an exception by the
caller, unless ``keep=True``. The spec's owner (the launcher pod) makes the cluster delete the job
when the launcher pod goes, even if the launcher had no chance to.

Existing job of the same name (HTTP 409, e.g. a retried KFP task of the same run): it is **adopted**
(followed instead of created) when its ``ovr.dev/spec-hash`` annotation equals this spec's hash and
it has not Failed; otherwise it is **replaced** (deleted, waited for, created again).

The job is created with strict field validation: an API server whose job schema lacks a field of the
manifest (Trainer v2.0/v2.1 serve ``trainer.kubeflow.org/v1alpha1`` without ``runtimePatches``) refuses
it, naming the fields, instead of pruning them with a warning and running pods without their volumes,
tolerations and deadline. While the job has not finished, its pods are read on every poll
(:class:`ovr.k8s.pods.PodWatch`): one stuck (Unschedulable, ImagePullBackOff,
CreateContainerConfigError) past its grace period, or a Kueue-suspended job past its admission bound,
fails the launch with the reason (:class:`JobStuck`) instead of waiting for the deadline.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ovr.k8s.kinds import KINDS, SPEC_HASH_ANNOTATION, TERMINAL, JobKind, discover
from ovr.k8s.pods import FollowLimits, PodWatch
from ovr.k8s.spec import QUEUE_LABEL, TrainerJobSpec
from ovr.k8s.status import JobError, JobEvent, JobFailed, JobStuck, JobTimeout, pod_failures, utc_now
from ovr.retry import retry_call

MAX_TRANSIENT = 10  # consecutive 5xx/429/connection errors tolerated while following a job


def load_api_client() -> k8s.ApiClient:
    """An API client from the in-cluster service account, else from the kube config ($KUBECONFIG)."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=cfg)
    return k8s.ApiClient(cfg)


class _Job:
    """One job object on the API server: get/create/delete through the custom-objects API."""

    def __init__(self, api: k8s.CustomObjectsApi, kind: JobKind, ns: str, name: str):
        self.api, self.kind, self.ns, self.name = api, kind, ns, name
        self.label = f"{ns}/{name}"

    def event(self, phase: str, reason: str = "", message: str = "") -> JobEvent:
        return JobEvent(self.label, phase, utc_now(), reason, message, self.kind.kind)

    def get(self) -> dict[str, Any] | None:
        k = self.kind
        try:
            return self.api.get_namespaced_custom_object(k.group, k.version, self.ns, k.plural, self.name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, body: dict) -> None:
        """Create with strict field validation: unknown fields are an error, not silently pruned."""
        k = self.kind
        try:
            self.api.create_namespaced_custom_object(
                k.group, k.version, self.ns, k.plural, body, field_validation="Strict"
            )
        except ApiException as err:
            unknown = unknown_fields(err)
            if not unknown:
                raise
            raise JobError(
                f"the cluster's {k.api_version} {k.plural} schema does not know {', '.join(unknown)} of ovr's "
                f"manifest: {k.requires} is required (upgrade it; the API server would otherwise drop these fields)"
            ) from err

    def delete(self, on_status, *, strict: bool) -> None:
        """Delete with foreground propagation; 404 is fine. Non-strict (an error is already on its
        way): report a failed delete instead of raising over that error."""
        k = self.kind
        try:
            self.api.delete_namespaced_custom_object(
                k.group, k.version, self.ns, k.plural, self.name, propagation_policy="Foreground"
            )
        except Exception as err:
            if isinstance(err, ApiException) and err.status == 404:
                return
            if strict:
                raise
            on_status(self.event("DeleteFailed", type(err).__name__, str(err)[:300]))
            return
        on_status(self.event("Deleted", "Cleanup", "propagation Foreground"))


def run_job(
    spec: TrainerJobSpec,
    *,
    kind: JobKind | str | None = None,
    api_client: k8s.ApiClient | None = None,
    poll_s: float = 5.0,
    timeout_s: float | None = None,
    on_status: Callable[[JobEvent], Any] = print,
    keep: bool = False,
    log_lines: int = 50,
    limits: FollowLimits | None = None,
) -> JobKind:
    """Create the job, follow it to Succeeded, and delete it (unless ``keep``) whatever happens.

    ``kind``: a JobKind or its registry name; None discovers what the cluster serves. Raises
    :class:`JobFailed` (with the failing pods' messages and last ``log_lines`` log lines) when it
    fails, :class:`JobStuck` when a pod cannot start or admission takes longer than ``limits`` allow,
    :class:`JobTimeout` after ``timeout_s`` seconds, :class:`JobError` when the job disappears.
    Returns the kind used.
    """
    api_client = api_client or load_api_client()
    kind = KINDS[kind] if isinstance(kind, str) else kind or discover(api_client)
    job = _Job(k8s.CustomObjectsApi(api_client), kind, spec.namespace, spec.name)
    body = kind.manifest(spec)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    watch = PodWatch(
        k8s.CoreV1Api(api_client), spec.namespace, f"{kind.job_label}={spec.name}", limits or FollowLimits()
    )
    try:
        _create_or_adopt(job, body, on_status, poll_s, deadline)
        final = _follow(job, on_status, poll_s, deadline, watch)
        if final.phase == "Failed":
            pods = pod_failures(k8s.CoreV1Api(api_client), spec.namespace, spec.name, kind, log_lines)
            raise JobFailed(job.label, final.message or final.reason, pods, kind.kind)
    except BaseException:
        if not keep:
            job.delete(on_status, strict=False)
        raise
    if not keep:
        job.delete(on_status, strict=True)
    return kind


def _waiting(status: JobEvent, obj: dict, watch: PodWatch) -> JobEvent:
    """A Suspended status as what it means for the run: waiting for admission (by Kueue)."""
    queue = ((obj.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
    bound = watch.limits.admission_s
    message = f"waiting for admission{f' in queue {queue}' if queue else ''}" + (
        f"; fails after {bound:.0f} s" if bound is not None else ""
    )
    return JobEvent(status.job, status.phase, status.time, status.reason or "Suspended", message, status.kind)


def _create_or_adopt(job: _Job, body, on_status, poll_s: float, deadline: float | None) -> None:
    try:
        job.create(body)
        return
    except ApiException as err:
        if err.status == 404:
            raise JobError(
                f"the cluster does not serve {job.kind.api_version} {job.kind.plural} in namespace "
                f"{job.ns} (is {job.kind.installs} installed?)"
            ) from err
        if err.status != 409:
            raise
    existing = job.get() or {}
    status = job.kind.status(existing) if existing else None
    ours = body["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    theirs = ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    if existing and theirs == ours and (status is None or status.phase != "Failed"):
        on_status(job.event("Adopted", "SameSpec", f"existing job in phase {status.phase if status else 'Pending'}"))
        return
    why = "previous attempt failed" if status and status.phase == "Failed" else "different spec"
    on_status(job.event("Replaced", "AlreadyExists", why))
    job.delete(on_status, strict=True)
    while job.get() is not None:  # foreground deletion: wait for the pods to go
        if deadline is not None and time.monotonic() > deadline:
            raise JobTimeout(f"{job.kind.kind} {job.label}: old job still deleting at the deadline")
        time.sleep(poll_s)
    job.create(body)


def unknown_fields(err: ApiException) -> list[str]:
    """The fields a strict create was refused for (``unknown field "spec.x"`` in the API's message)."""
    if err.status not in (400, 422):
        return []
    try:
        message = json.loads(err.body or "{}").get("message", "")
    except (TypeError, ValueError):
        message = str(err.body or "")
    return re.findall(r'unknown field \\?"([^"\\]+)\\?"', message)


def _check_start(job: _Job, obj: dict, status: JobEvent | None, watch: PodWatch, on_status) -> None:
    """Raise :class:`JobStuck` when the job waits for admission past its bound or a pod cannot start."""
    now = watch.clock()
    if status is not None and status.phase == "Suspended":
        watch.suspended_since = watch.suspended_since or now
        bound = watch.limits.admission_s
        if bound is not None and now - watch.suspended_since >= bound:
            queue = ((obj.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL, "")
            raise JobStuck(
                f"{job.kind.kind} {job.label} still suspended after {now - watch.suspended_since:.0f} s "
                f"({status.reason or 'Suspended'}): not admitted by Kueue (queue {queue or '-'}): check the "
                "LocalQueue's ClusterQueue quota for the GPUs asked, or raise admission_timeout_s"
            )
        return
    watch.suspended_since = None
    stuck = watch.check()
    if stuck is not None:
        raise JobStuck(f"{job.kind.kind} {job.label} cannot start: {stuck}")
    if watch.unreadable and not watch.told:
        watch.told = True
        on_status(job.event("PodsUnreadable", "NoPodWatch", f"{watch.unreadable}: stuck pods are not detected"))


def _follow(job: _Job, on_status, poll_s: float, deadline: float | None, watch: PodWatch) -> JobEvent:
    last: JobEvent | None = None

    def transient(err: BaseException) -> bool:  # API server restarts during a long job, throttling
        code = getattr(err, "status", None)
        return isinstance(err, (ApiException, urllib3.exceptions.HTTPError)) and (
            code is None or code >= 500 or code == 429
        )

    def said(attempt: int, err: BaseException, delay: float) -> None:
        code = getattr(err, "status", None) or ""
        on_status(job.event("ApiError", type(err).__name__, f"{code} retry {attempt}/{MAX_TRANSIENT}".strip()))

    while True:
        obj = retry_call(
            job.get, retries=MAX_TRANSIENT, backoff_s=poll_s, max_backoff_s=poll_s, retry_on=transient, on_retry=said
        )
        if obj is None:
            raise JobError(f"{job.kind.kind} {job.label} disappeared while running (deleted by someone else?)")
        status = job.kind.status(obj)
        if status is not None and (last is None or status.phase != last.phase):
            on_status(_waiting(status, obj, watch) if status.phase == "Suspended" else status)
            last = status
        if status is not None and status.phase in TERMINAL:
            return status
        _check_start(job, obj, status, watch, on_status)
        if deadline is not None and time.monotonic() > deadline:
            seen = last.phase if last else "no status"
            raise JobTimeout(f"{job.kind.kind} {job.label} not finished at the deadline (last: {seen})")
        time.sleep(poll_s)
