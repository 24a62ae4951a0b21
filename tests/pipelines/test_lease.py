"""Two runs never push into the same replicas: the release's Lease (ovr/k8s/lease.py) through the
official kubernetes client.

No real kube-apiserver runs here: ``kmock``'s emulator serves the Lease objects over HTTP. It keeps
objects but does not check ``resourceVersion`` on updates, so the race of two runs writing a free
lease at the same instant (one must get a 409) is only shown by a real API server; every other
transition (free, held, renewed, released, expired, waited for) is shown here.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import kubernetes
import pytest

from ovr.k8s.lease import LeaseHeld, ReplicaLease

LEASES, NS, NAME = "coordination.k8s.io/v1/leases", "team-a", "ovr-rollout"


@pytest.fixture()
def coordination(kmock):
    kmock.resources[LEASES] = kmock.ResourceInfo(namespaced=True, kind="Lease")
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=str(kmock.url).rstrip("/")))
    yield kmock, kubernetes.client.CoordinationV1Api(client)
    client.close()


def _lease(api, holder: str, said: list[str] | None = None, duration_s: int = 300) -> ReplicaLease:
    return ReplicaLease(NAME, NS, holder, duration_s, api=api, say=(said if said is not None else []).append)


def _holder(kmock) -> str | None:
    return kmock.objects[kmock.resource(LEASES), NS, NAME].raw["spec"].get("holderIdentity")


async def test_a_second_run_waits_for_the_first_then_gets_the_replicas(coordination):
    kmock, api = coordination
    first, said = _lease(api, "run-a"), []
    second = _lease(api, "run-b", said)
    assert await asyncio.to_thread(first.try_acquire) is None
    assert _holder(kmock) == "run-a"
    assert await asyncio.to_thread(first.try_acquire) is None  # renewing one's own lease
    assert await asyncio.to_thread(second.try_acquire) == "run-a"
    with pytest.raises(LeaseHeld, match="in use by run run-a.*waited 0 s"):
        await asyncio.to_thread(second.acquire, 0.0)

    waiting = asyncio.create_task(asyncio.to_thread(second.acquire, 30.0, 0.05))
    await asyncio.sleep(0.3)
    assert not waiting.done() and said == ["rollout replicas in use by run run-a: waiting up to 30 s for them"]
    await asyncio.to_thread(first.release)
    await asyncio.wait_for(waiting, 30)
    assert _holder(kmock) == "run-b" and said[-1].startswith("rollout replicas leased to run run-b")


async def test_a_dead_holders_lease_expires(coordination):
    kmock, api = coordination
    dead = _lease(api, "run-dead", duration_s=60)
    assert await asyncio.to_thread(dead.try_acquire) is None
    alive = _lease(api, "run-next")
    assert await asyncio.to_thread(alive.try_acquire) == "run-dead"  # renewed a moment ago
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kmock.objects[kmock.resource(LEASES), NS, NAME].patch({"spec": {"renewTime": stale}})
    assert await asyncio.to_thread(alive.try_acquire) is None  # nobody renewed it for a whole duration
    spec = kmock.objects[kmock.resource(LEASES), NS, NAME].raw["spec"]
    assert spec["holderIdentity"] == "run-next" and spec["leaseTransitions"] == 1


async def test_held_renews_in_the_background_and_lets_go_after(coordination):
    kmock, api = coordination
    lease = _lease(api, "run-a", duration_s=1)  # renewed every third of a second

    def hold():
        with lease.held(wait_s=0):
            first = kmock.objects[kmock.resource(LEASES), NS, NAME].raw["spec"]["renewTime"]
            import time

            time.sleep(1.2)
            return first, kmock.objects[kmock.resource(LEASES), NS, NAME].raw["spec"]["renewTime"]

    first, later = await asyncio.to_thread(hold)
    assert later > first  # the renewer kept it fresh while the block ran
    assert _holder(kmock) is None  # and gave it up at the end


async def test_rl_and_eval_tasks_take_the_lease_only_for_the_installs_replicas(coordination, monkeypatch):
    """components.runtime.replica_lease: on a cluster with the install's replicas, a second run is
    refused naming the first; local servers take no lease. The in-cluster API client is pointed at
    the emulator."""
    from components import runtime
    from ovr.config import load_config
    from ovr.context import RunContext

    kmock, api = coordination
    monkeypatch.setattr("ovr.k8s.jobs.load_api_client", lambda: api.api_client)
    cfg = load_config(None, ["rollout.endpoints=[http://ovr-rollout-0:8000]", "rollout.lease_wait_s=0"], use_env=False)
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "OVR_INSTALL": "ovr", "OVR_POD_NAMESPACE": NS}
    first, second = RunContext.for_config(cfg, "run-a"), RunContext.for_config(cfg, "run-b")

    def both():
        with runtime.replica_lease(cfg, first, pod):
            with pytest.raises(LeaseHeld, match="in use by run run-a"), runtime.replica_lease(cfg, second, pod):
                pass
            with runtime.replica_lease(cfg, second.with_(rollout_endpoints=[]), pod):
                pass  # a run with its own local servers needs no lease
        with runtime.replica_lease(cfg, second, pod):  # free again
            return _holder(kmock)

    assert await asyncio.to_thread(both) == "run-b"
    assert kmock.objects[kmock.resource(LEASES), NS, NAME].raw["metadata"]["name"] == "ovr-rollout"
