"""Who may push weights into the install's shared rollout replicas: one run at a time.

The replicas of a Helm release are shared by every run in the namespace, and a weight push replaces
what they serve. Before its first push a run (RL, or an eval publishing a model) takes the
release's Kubernetes ``Lease`` (``coordination.k8s.io/v1``, named ``<release>-rollout``) with its
run id as holder, renews it while it runs (a background thread, every third of the lease's
duration) and gives it up at the end. A second run finds the lease held: it waits up to
``wait_s`` for it, then fails naming the holder. A holder that died stops renewing, and its lease
is free once ``duration_s`` has passed without a renewal. Writes are patches that carry the object's
``resourceVersion`` as a precondition, so of two runs racing for a free lease the API server lets
exactly one win (the other gets a 409 and sees the winner).

>>> lease = ReplicaLease("ovr-rollout", "team-a", holder="20261206-013000-ab12")   # doctest: +SKIP
>>> with lease.held(wait_s=600):                                                   # doctest: +SKIP
...     push_weights()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException


class LeaseHeld(RuntimeError):
    """Another run holds the replicas' lease and did not let go within the wait."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(when: dt.datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, in UTC."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReplicaLease:
    """The lease of one release's replicas (see the module docstring)."""

    def __init__(
        self,
        name: str,
        namespace: str,
        holder: str,
        duration_s: int = 300,
        api: k8s.CoordinationV1Api | None = None,
        say: Callable[[str], None] = print,
    ):
        self.name, self.namespace, self.holder, self.duration_s = name, namespace, holder, int(duration_s)
        self.api = api or k8s.CoordinationV1Api()
        self.say = say
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # ------------------------------------------------------------------ one attempt
    def try_acquire(self) -> str | None:
        """Take (or renew) the lease; None on success, else the holder that has it."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            return self._create()
        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity
        if holder and holder != self.holder and not self._expired(spec):
            return holder
        now = _now()
        acquired = spec.acquire_time if holder == self.holder and spec.acquire_time else now
        body = {
            "metadata": {"resourceVersion": lease.metadata.resource_version},  # a precondition: 409 if it moved
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration_s,
                "acquireTime": _micro(acquired),
                "renewTime": _micro(now),
                "leaseTransitions": (spec.lease_transitions or 0) + (holder != self.holder),
            },
        }
        try:
            self.api.patch_namespaced_lease(self.name, self.namespace, body)
        except ApiException as err:
            if err.status == 409:
                return self._current_holder() or "another run"
            raise
        return None

    def _create(self) -> str | None:
        now = _now()
        body = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=self.name, labels={"app.kubernetes.io/managed-by": "ovr"}),
            spec=k8s.V1LeaseSpec(
                holder_identity=self.holder,
                lease_duration_seconds=self.duration_s,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self.api.create_namespaced_lease(self.namespace, body)
        except ApiException as err:
            if err.status == 409:  # created by another run a moment ago
                return self._current_holder() or "another run"
            raise
        return None

    def _current_holder(self) -> str | None:
        lease = self.api.read_namespaced_lease(self.name, self.namespace)
        return lease.spec.holder_identity if lease.spec else None

    def _expired(self, spec: k8s.V1LeaseSpec) -> bool:
        last = spec.renew_time or spec.acquire_time
        if last is None:
            return True
        if last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        return (_now() - last).total_seconds() > (spec.lease_duration_seconds or self.duration_s)

    # ------------------------------------------------------------------ the run's use
    def acquire(self, wait_s: float, poll_s: float = 5.0) -> None:
        """Take the lease, waiting up to ``wait_s`` while another run holds it (said once)."""
        deadline = time.monotonic() + wait_s
        told = None
        while (holder := self.try_acquire()) is not None:
            if time.monotonic() >= deadline:
                raise LeaseHeld(
                    f"the rollout replicas are in use by run {holder} (Lease {self.namespace}/{self.name}); "
                    f"waited {wait_s:.0f} s. Let it finish, cancel it, or raise rollout.lease_wait_s"
                )
            if told != holder:
                self.say(f"rollout replicas in use by run {holder}: waiting up to {wait_s:.0f} s for them")
                told = holder
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        self.say(f"rollout replicas leased to run {self.holder} ({self.namespace}/{self.name})")

    def release(self) -> None:
        """Give the lease up (only if this run still holds it)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException:
            return
        if lease.spec and lease.spec.holder_identity == self.holder:
            body = {
                "metadata": {"resourceVersion": lease.metadata.resource_version},
                "spec": {"holderIdentity": None, "renewTime": _micro(_now())},
            }
            with contextlib.suppress(ApiException):  # else it expires on its own
                self.api.patch_namespaced_lease(self.name, self.namespace, body)

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                if (holder := self.try_acquire()) is not None:
                    self.say(f"lost the rollout replicas' lease to run {holder}")
                    return
            except (ApiException, OSError) as err:  # the API server restarting: try again next period
                self.say(f"renewing the rollout replicas' lease failed ({err}); retrying")

    @contextmanager
    def held(self, wait_s: float, poll_s: float = 5.0) -> Iterator[ReplicaLease]:
        """The lease for the duration of the block, renewed in the background."""
        self.acquire(wait_s, poll_s)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_forever, name="ovr-lease", daemon=True)
        self._renewer.start()
        try:
            yield self
        finally:
            self.release()
