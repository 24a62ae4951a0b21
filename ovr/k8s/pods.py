"""Why a launched job's pods are not running, read from their conditions and container states.

A job whose pods cannot start does not fail by itself: the controller keeps it Created/Running while
the pods sit Pending (no node has the GPUs, a taint nobody tolerates), loop in ``ImagePullBackOff``
(a wrong image or a missing pull secret) or in ``CreateContainerConfigError`` (a Secret or key the
env names does not exist), until the job's deadline — days later. :class:`PodWatch` reads the job's
pods on every poll of :func:`ovr.k8s.jobs.run_job` and names the first pod stuck past its grace
period, with the kubelet's or the scheduler's message and what to change. A Kueue-suspended job has
no pods; its wait is bounded by :attr:`FollowLimits.admission_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

_PULL = "check the image name and tag, and the pull secrets (the install's OVR_IMAGE_PULL_SECRETS)"
#: container waiting reason -> seconds it may last before the job is failed (the kubelet keeps
#: retrying; these rarely clear up by themselves) and what to check
WAITING = {
    "ErrImagePull": (300.0, _PULL),
    "ImagePullBackOff": (120.0, _PULL),
    "InvalidImageName": (0.0, "the image reference is malformed (the install's OVR_TRAINER_IMAGE)"),
    "CreateContainerConfigError": (
        60.0,
        "a Secret, ConfigMap or key the pod's env names does not exist in the namespace: create it, or pass the "
        "pipeline parameter (s3_secret, mlflow_secret, reward_secret, rollout_secret) naming the right one",
    ),
    "CreateContainerError": (120.0, "the container runtime could not create the container (see the message)"),
}
UNSCHEDULABLE_HINT = (
    "no node can take the pod: check gpus_per_node against the GPUs of one node, the install's node selector "
    "and tolerations (OVR_TRAINER_NODE_SELECTOR / OVR_TRAINER_TOLERATIONS), and the namespace's quota"
)


@dataclass(frozen=True)
class FollowLimits:
    """How long a job may wait for what the cluster must give it before it is failed."""

    unschedulable_s: float = 1800.0  # a pod Unschedulable (a cluster autoscaler may be adding nodes)
    admission_s: float | None = None  # Suspended (a Kueue queue has not admitted it); None = no bound
    waiting: dict[str, float] = field(default_factory=lambda: {k: v[0] for k, v in WAITING.items()})


@dataclass(frozen=True)
class Stuck:
    """A pod that has been unable to start for longer than its grace period."""

    pod: str
    reason: str
    message: str
    seconds: float
    hint: str

    def __str__(self) -> str:
        msg = f": {self.message}" if self.message else ""
        return f"pod {self.pod} {self.reason} for {self.seconds:.0f} s{msg} ({self.hint})"


def blockers(pod: k8s.V1Pod) -> list[tuple[str, str]]:
    """(reason, message) of what keeps ``pod`` from running: Unschedulable, or a waiting reason of
    :data:`WAITING` on an init or main container. Empty for a pod that is fine or merely starting."""
    status = pod.status
    if status is None:
        return []
    found = []
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            found.append(("Unschedulable", cond.message or ""))
    for cs in (status.init_container_statuses or []) + (status.container_statuses or []):
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in WAITING:
            found.append((waiting.reason, f"container {cs.name}: {waiting.message or ''}".rstrip(": ")))
    return found


class PodWatch:
    """Follows the pods of one job (by its controller's label) and reports the first one stuck."""

    def __init__(
        self,
        core: k8s.CoreV1Api,
        namespace: str,
        selector: str,
        limits: FollowLimits,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.core, self.namespace, self.selector, self.limits, self.clock = core, namespace, selector, limits, clock
        self.since: dict[tuple[str, str], float] = {}  # (pod, reason) -> first seen
        self.unreadable: str | None = None  # why the pods cannot be listed (then the watch is off)
        self.told = False  # the launcher said the watch is off
        self.suspended_since: float | None = None  # when the job was first seen suspended

    def check(self) -> Stuck | None:
        """List the pods once; the first blocker past its grace, else None. A pod list the account may
        not read (403) or an API without pods turns the watch off (``unreadable`` says why)."""
        if self.unreadable is not None:
            return None
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        except ApiException as err:
            if err.status in (401, 403, 404):
                self.unreadable = f"listing pods: HTTP {err.status} {err.reason}"
                return None
            return None  # a transient API error: look again at the next poll
        now, seen = self.clock(), set()
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            for reason, message in blockers(pod):
                key = (pod.metadata.name, reason)
                seen.add(key)
                first = self.since.setdefault(key, now)
                grace = self.limits.unschedulable_s if reason == "Unschedulable" else self.limits.waiting[reason]
                if now - first >= grace:
                    hint = UNSCHEDULABLE_HINT if reason == "Unschedulable" else WAITING[reason][1]
                    return Stuck(pod.metadata.name, reason, message, now - first, hint)
        self.since = {k: v for k, v in self.since.items() if k in seen}  # a cleared state starts over
        return None
