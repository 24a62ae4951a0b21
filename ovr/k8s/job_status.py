"""Status of a PyTorchJob and what its failed pods left behind (termination messages, log tails).

Pure parsing of the operator's status conditions (``job_status``) plus one read of the job's pods
(``pod_failures``); the events and errors that ``ovr.k8s.pytorchjob.run_pytorchjob`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

CONTAINER = "pytorch"  # the training operator requires the trainer container to carry this name
JOB_LABEL = "training.kubeflow.org/job-name"  # set by the operator on the job's pods
REPLICA_LABEL = "training.kubeflow.org/replica-type"
TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class JobEvent:
    """One observed status transition (or an adopt/replace/delete action) of a job."""

    job: str  # namespace/name
    phase: str  # Created, Running, Restarting, Succeeded, Failed; Adopted, Replaced, Deleted
    time: str  # ISO-8601 UTC (the condition's lastTransitionTime when the operator gives one)
    reason: str = ""
    message: str = ""

    def __str__(self) -> str:
        detail = ": ".join(p for p in (self.reason, self.message) if p)
        return f"{self.time} PyTorchJob {self.job} {self.phase}" + (f" ({detail})" if detail else "")


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


class PyTorchJobError(RuntimeError):
    """The job could not be created or followed."""


class PyTorchJobTimeout(PyTorchJobError, TimeoutError):
    """The job did not finish within ``timeout_s``."""


@dataclass
class PyTorchJobFailed(PyTorchJobError):
    """The operator marked the job Failed; ``pods`` holds what its failing pods left behind."""

    job: str
    message: str
    pods: list[PodFailure] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"PyTorchJob {self.job} failed: {self.message}"] + [str(p) for p in self.pods]
        return "\n".join(lines)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_status(obj: dict[str, Any]) -> JobEvent | None:
    """The current phase of a PyTorchJob object from its status conditions (None before any).

    Failed and Succeeded win over the others; otherwise the last condition whose status is True.
    """
    meta = obj.get("metadata", {})
    job = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    conds = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    if not conds:
        return None
    pick = next((c for t in TERMINAL[::-1] for c in conds if c.get("type") == t), conds[-1])
    return JobEvent(
        job=job, phase=pick.get("type", "Unknown"), time=pick.get("lastTransitionTime") or utc_now(),
        reason=pick.get("reason") or "", message=pick.get("message") or "",
    )


def pod_failures(core: k8s.CoreV1Api, namespace: str, name: str, log_lines: int = 50) -> list[PodFailure]:
    """The job's failed pods (non-zero exit or phase Failed) with termination messages and log tails.

    When no pod shows a failure (e.g. already replaced), the Master's log tail is returned instead;
    when the pods cannot be listed, one entry says why (the job's failure is reported either way).
    """
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{JOB_LABEL}={name}").items
    except ApiException as err:
        return [PodFailure("-", "", None, "PodsUnavailable", f"listing pods: HTTP {err.status} {err.reason}")]
    failures, master = [], None
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        replica = (pod.metadata.labels or {}).get(REPLICA_LABEL, "")
        if replica.lower() == "master":
            master = pod
        term = None
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            if cs.name == CONTAINER:
                term = (cs.state and cs.state.terminated) or (cs.last_state and cs.last_state.terminated)
        tail = lambda: _log_tail(core, namespace, pod.metadata.name, log_lines)  # noqa: E731
        if term is not None and term.exit_code != 0:
            failures.append(PodFailure(pod.metadata.name, replica, term.exit_code, term.reason or "",
                                       term.message or "", tail()))
        elif pod.status and pod.status.phase == "Failed":
            failures.append(PodFailure(pod.metadata.name, replica, None, pod.status.reason or "",
                                       pod.status.message or "", tail()))
    if not failures and master is not None:
        failures.append(PodFailure(master.metadata.name, "master", None, "", "",
                                   _log_tail(core, namespace, master.metadata.name, log_lines)))
    return failures


def _log_tail(core: k8s.CoreV1Api, namespace: str, pod: str, lines: int) -> str:
    try:
        return core.read_namespaced_pod_log(pod, namespace, container=CONTAINER, tail_lines=lines)
    except ApiException as err:
        return f"<log unavailable: HTTP {err.status} {err.reason}>"
