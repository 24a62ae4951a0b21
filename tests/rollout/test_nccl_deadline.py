"""NCCL weight push: fan-out, rank offsets, deadline and failure handling.

vLLM's NCCL weight transfer needs CUDA GPUs, which these machines lack. So the replicas are a
local fake of their HTTP weight-transfer routes (``fake_rl_routes.py``, real uvicorn processes
that require the bearer token through ovr's middleware) and vLLM's trainer engine is replaced by a
stand-in that makes the same client calls.
"""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from ovr.rollout.nccl_sync import NcclWeightSync, rendezvous_address, run_with_deadline
from ovr.rollout.weights import WeightSyncError, WeightSyncTimeout, server_versions
from ovr.serving import ManagedServer

TOKEN = "nccl-test-token"
H = {"Authorization": f"Bearer {TOKEN}"}


class StandInEngine:
    """Drives the client like vLLM's ``NCCLTrainerWeightTransferEngine`` (minus the NCCL broadcast)."""

    def __init__(self, init_info, client, model):
        self.client = client
        client.init_weight_transfer_engine({**init_info, "rank_offset": 1, "packed": True})

    def send_weights(self):
        self.client.start_weight_update()
        self.client.update_weights({"names": ["lm_head.weight"], "dtype_names": ["float32"], "shapes": [[4, 4]]})
        self.client.finish_weight_update()

    def shutdown(self):
        pass


@pytest.fixture(autouse=True)
def client_token(monkeypatch):
    monkeypatch.setenv("OVR_ROLLOUT_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def replicas(repo_root):
    servers = [
        ManagedServer(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fake_rl_routes:app",
                "--app-dir",
                "tests/rollout",
                "--port",
                "{port}",
                "--log-level",
                "warning",
            ],
            health_path="/health",
            cwd=repo_root,
            env={"OVR_ROLLOUT_TOKEN": TOKEN, "PYTHONPATH": str(repo_root)},
            name="fake-rl",
        )
        for _ in range(2)
    ]
    for s in servers:
        s.start()
    yield [s.url for s in servers]
    for s in servers:
        s.stop()


def make(endpoints, timeout_s=5.0):
    return NcclWeightSync(
        endpoints, master_address="10.0.0.1", ranks_per_replica=2, timeout_s=timeout_s, engine_factory=StandInEngine
    )


def test_push_fans_out_with_rank_offsets_and_sets_versions(replicas):
    for url in replicas:
        httpx.post(url + "/_mode", json={"update": "ok"}, headers=H)
    sync = make(replicas)
    assert sync.push_weights(model=None) == 1
    assert sync.push_weights(model=None) == 2
    assert server_versions(replicas) == [2, 2]
    calls = [httpx.get(u + "/_calls", headers=H).json() for u in replicas]
    inits = [next(c[1] for c in cs if c[0] == "init") for cs in calls]
    assert [i["rank_offset"] for i in inits] == [1, 3]  # trainer is rank 0, each replica has 2 ranks
    assert {i["world_size"] for i in inits} == {5} and {i["master_address"] for i in inits} == {"10.0.0.1"}
    assert [c[0] for c in calls[0]].count("update") == 2


def test_hung_transfer_raises_within_deadline_and_blocks_later_pushes(replicas):
    httpx.post(replicas[1] + "/_mode", json={"update": "hang"}, headers=H)
    sync = make(replicas, timeout_s=2.0)
    start = time.monotonic()
    with pytest.raises(WeightSyncTimeout):
        sync.push_weights(model=None)
    assert time.monotonic() - start < 6.0
    with pytest.raises(WeightSyncError, match="earlier NCCL transfer failed"):
        sync.push_weights(model=None)
    httpx.post(replicas[1] + "/_mode", json={"update": "ok"}, headers=H)


def test_failed_transfer_raises_naming_the_replica(replicas):
    httpx.post(replicas[0] + "/_mode", json={"update": "fail"}, headers=H)
    sync = make(replicas)
    with pytest.raises(WeightSyncError, match="1/2 replicas") as err:
        sync.push_weights(model=None)
    assert replicas[0] in str(err.value) and "NCCL error" in str(err.value)
    httpx.post(replicas[0] + "/_mode", json={"update": "ok"}, headers=H)


def test_push_without_the_token_is_refused(replicas, monkeypatch):
    monkeypatch.delenv("OVR_ROLLOUT_TOKEN")
    with pytest.raises(WeightSyncError, match="401"):
        make(replicas)
    assert httpx.post(replicas[0] + "/update_weights", json={"update_info": {}}).status_code == 401


def test_push_fails_naming_the_replica_whose_fingerprint_differs(replicas):
    httpx.post(replicas[0] + "/_mode", json={"update": "ok"}, headers=H)
    httpx.post(replicas[1] + "/_mode", json={"update": "ok", "fingerprint": "stale"}, headers=H)
    sync = NcclWeightSync(
        replicas + [replicas[0]],
        master_address="10.0.0.1",
        ranks_per_replica=2,
        timeout_s=5.0,
        engine_factory=StandInEngine,
    )
    with pytest.raises(WeightSyncError, match="TP rank 0") as err:
        sync.push_weights(model=None)
    assert replicas[1] in str(err.value) and "2 other(s)" in str(err.value)
    httpx.post(replicas[1] + "/_mode", json={"update": "ok"}, headers=H)


def test_rendezvous_is_the_pod_ip_from_the_downward_api():
    assert rendezvous_address(None, {"OVR_POD_IP": "10.4.2.7"}) == "10.4.2.7"
    assert rendezvous_address("trainer.example", {"OVR_POD_IP": "10.4.2.7"}) == "trainer.example"
    with pytest.raises(WeightSyncError, match="status.podIP"):
        rendezvous_address(None, {})


def test_run_with_deadline_returns_raises_and_times_out():
    assert run_with_deadline(lambda: 7, 1.0, "quick") == 7
    with pytest.raises(ZeroDivisionError):
        run_with_deadline(lambda: 1 / 0, 1.0, "broken")
    start = time.monotonic()
    with pytest.raises(WeightSyncTimeout, match="sleepy"):
        run_with_deadline(lambda: time.sleep(30), 0.3, "sleepy")
    assert time.monotonic() - start < 2.0


def inits(url: str) -> list[dict]:
    return [c[1] for c in httpx.get(url + "/_calls", headers=H).json() if c[0] == "init"]


def test_a_restarted_replica_rejoins_a_rebuilt_group_at_the_next_push(replicas):
    for url in replicas:
        httpx.post(url + "/_mode", json={"update": "ok"}, headers=H)
    before = [len(inits(u)) for u in replicas]
    sync = make(replicas)
    first = sync.push_weights(model=None)
    # replica 1 restarts: it serves its start-up weights and lost its end of the NCCL group
    httpx.post(replicas[1] + "/update_weight_version", json={"new_version": "default"}, headers=H)
    assert sync.restore(replicas[1]) is False  # served again only after the next push
    assert sync.push_weights(model=None) == first + 1
    assert [len(inits(u)) - b for u, b in zip(replicas, before)] == [2, 2]  # the group was built again
    assert [i["rank_offset"] for i in (inits(u)[-1] for u in replicas)] == [1, 3]
    assert server_versions(replicas) == [first + 1] * 2 and not sync.rejoin


def test_an_unreachable_replica_is_left_out_of_the_group(replicas):
    from ovr.serving import free_port

    gone = f"http://127.0.0.1:{free_port()}"
    sync = make([replicas[0], gone])
    version = sync.push_weights(model=None)
    assert sync.members == [replicas[0]] and sync.behind == {gone}
    assert inits(replicas[0])[-1]["world_size"] == 3  # the trainer and replica 0's two ranks
    assert server_versions([replicas[0]]) == [version]
