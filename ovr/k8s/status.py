"""Events of a launched job and what its failed pods left behind (termination messages, log tails).

The events and errors ``ovr.k8s.jobs.run_job`` reports, and one read of the job's pods
(``pod_failures``) by the labels its controller sets (``ovr.k8s.kinds``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class JobEvent:
    """One observed status transition (or an adopt/replace/delete action) of a job."""

    job: str  # namespace/name
    phase: str  # Created, Running, Restarting, Succeeded, Failed; Adopted, Replaced, Deleted
    time: str  # ISO-8601 UTC (the condition's lastTransitionTime when the operator gives one)
    reason: str = ""
    message: str = ""
    kind: str = "Job"  # TrainJob or PyTorchJob

    def __str__(self) -> str:
        detail = ": ".join(p for p in (self.reason, self.message) if p)
        return f"{self.time} {self.kind} {self.job} {self.phase}" + (f" ({detail})" if detail else "")


@dataclass(frozen=True)
class PodFailure:
    """A failed pod of a job: exit code, termination message and the last lines of its log."""

    pod: str
    replica: str
    exit_code: int | None
    reason: str
    message: str
    log_tail: str = ""

    def __str__(self) -> str:
        head = f"pod {self.pod} ({self.replica}) exit {self.exit_code} {self.reason}".rstrip()
        parts = [head]
        if self.message:
            parts.append("  termination message: " + self.message.strip().replace("\n", "\n    "))
        if self.log_tail:
            parts.append("  log tail:\n    " + self.log_tail.rstrip().replace("\n", "\n    "))
        return "\n".join(parts)


class JobError(RuntimeError):
    """The job could not be created or followed."""


class JobTimeout(JobError, TimeoutError):
    """The job did not finish within ``timeout_s``."""


class JobStuck(JobError):
    """The job cannot start: a pod stuck (unschedulable, image pull, missing Secret) or no admission."""


@dataclass
class JobFailed(JobError):
    """The controller marked the job Failed; ``pods`` holds what its failing pods left behind."""

    job: str
    message: str
    pods: list[PodFailure] = field(default_factory=list)
    kind: str = "Job"

    def __str__(self) -> str:
        lines = [f"{self.kind} {self.job} failed: {self.message}"] + [str(p) for p in self.pods]
        return "\n".join(lines)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_failures(core: k8s.CoreV1Api, namespace: str, name: str, kind, log_lines: int = 50) -> list[PodFailure]:
    """The job's failed pods (non-zero exit or phase Failed) with termination messages and log tails.

    ``kind`` (an ``ovr.k8s.kinds.JobKind``) names the pods' labels and trainer container. When no pod
    shows a failure (e.g. already replaced), the first pod's log tail is returned instead; when the
    pods cannot be listed, one entry says why (the job's failure is reported either way).
    """
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{kind.job_label}={name}").items
    except ApiException as err:
        return [PodFailure("-", "", None, "PodsUnavailable", f"listing pods: HTTP {err.status} {err.reason}")]
    failures, first = [], None
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        replica = (pod.metadata.labels or {}).get(kind.replica_label, "")
        first = first or pod
        term = None
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            if cs.name == kind.container:
                term = (cs.state and cs.state.terminated) or (cs.last_state and cs.last_state.terminated)
        tail = lambda pod=pod: _log_tail(core, namespace, pod.metadata.name, kind.container, log_lines)  # noqa: E731
        if term is not None and term.exit_code != 0:
            failures.append(
                PodFailure(pod.metadata.name, replica, term.exit_code, term.reason or "", term.message or "", tail())
            )
        elif pod.status and pod.status.phase == "Failed":
            failures.append(
                PodFailure(pod.metadata.name, replica, None, pod.status.reason or "", pod.status.message or "", tail())
            )
    if not failures and first is not None:
        replica = (first.metadata.labels or {}).get(kind.replica_label, "")
        failures.append(
            PodFailure(
                first.metadata.name,
                replica,
                None,
                "",
                "",
                _log_tail(core, namespace, first.metadata.name, kind.container, log_lines),
            )
        )
    return failures


def _log_tail(core: k8s.CoreV1Api, namespace: str, pod: str, container: str, lines: int) -> str:
    try:
        return core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=lines)
    except ApiException as err:
        return f"<log unavailable: HTTP {err.status} {err.reason}>"
