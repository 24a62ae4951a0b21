"""The rollout client's failure handling against replicas that misbehave on demand.

The replicas are ``fake_stream.py`` (real uvicorn processes speaking vLLM's streamed chat shape,
``/weight_info`` and ``/metrics``): a real vLLM cannot be told to cut a stream after one response,
to hang, to queue a request, or to change weights in the middle of one. The real-vLLM versions of
these paths are in ``test_vllm_replicas.py``.
"""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest

from ovr.config import RolloutConfig
from ovr.rollout.client import RolloutClient, RolloutError
from ovr.schema import Sample
from ovr.serving import ManagedServer

SAMPLE = Sample(id="q", source="test", split="rl", prompt="1 + 1?", answer="2")


def fake_server(repo_root, fake_id: int, port: int | None = None) -> ManagedServer:
    """A ``fake_stream`` replica (not yet started) whose responses carry ``fake_id``."""
    return ManagedServer(
        [sys.executable, "-m", "uvicorn", "fake_stream:app", "--app-dir", "tests/rollout", "--port", "{port}"],
        health_path="/health",
        port=port,
        cwd=repo_root,
        env={"FAKE_ID": str(fake_id), "PYTHONPATH": str(repo_root)},
        name=f"fake-stream-{fake_id}",
    )


@pytest.fixture(scope="module")
def fakes(repo_root):
    servers = [fake_server(repo_root, i + 1) for i in range(2)]
    for s in servers:
        s.start()
    yield [s.url for s in servers]
    for s in servers:
        s.stop()


def mode(url: str, **kw) -> None:
    httpx.post(url + "/_mode", json={"mode": "ok", "version": "default", **kw}).raise_for_status()


def cfg(**kw) -> RolloutConfig:
    return RolloutConfig(**{"poll_interval_s": 0.2, "progress_timeout_s": 1.0, "max_attempts": 2, **kw})


def by_replica(group) -> list[int]:
    return sorted(c.token_ids[0] for c in group.completions)


def test_a_cut_stream_keeps_its_finished_responses_and_asks_only_for_the_rest(fakes):
    a, b = fakes
    mode(a, mode="cut")
    mode(b)
    client = RolloutClient([a, b], cfg())
    (group,) = client.generate_sync([SAMPLE], n=3, max_tokens=8, progress=False)
    assert by_replica(group) == [1000, 2000, 2001]  # response 0 of a, then two from b
    assert httpx.get(a + "/_requests").json() == [3] and httpx.get(b + "/_requests").json() == [2]
    assert client.failures == {a: 1, b: 0} and group.prompt_token_ids == [1, 2, 3]
    assert all(len(c.token_ids) == 3 == len(c.logprobs) for c in group.completions)


def test_a_silent_stream_on_an_idle_replica_moves_after_the_progress_timeout(fakes):
    a, b = fakes
    mode(a, mode="stall")
    mode(b)
    client = RolloutClient([a, b], cfg())
    (group,) = client.generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)
    assert by_replica(group) == [1000, 2000] and client.failures[a] == 1


def test_a_queued_request_on_a_busy_replica_keeps_waiting(fakes):
    a, _ = fakes
    mode(a, mode="queued", silent_s=3.0)  # 3 s without a token, > progress_timeout_s, while /metrics grows
    client = RolloutClient([a], cfg())
    (group,) = client.generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)
    assert by_replica(group) == [1000, 1001] and client.failures[a] == 0


def test_a_hung_replica_alone_fails_the_prompt_naming_the_timeout(fakes):
    a, _ = fakes
    mode(a, mode="hang")
    with pytest.raises(RolloutError, match="progress_timeout_s=1"):
        RolloutClient([a], cfg()).generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)


def test_responses_are_attributed_to_the_version_they_were_sampled_under(fakes):
    a, _ = fakes
    mode(a, mode="push")  # response 0 finishes at v0, then the replica moves to v1 mid-request
    client = RolloutClient([a], cfg())
    (group,) = client.generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)
    assert sorted(c.weight_version for c in group.completions) == [0, 1]
    assert httpx.get(a + "/_requests").json() == [2, 1]  # only the response that spanned both is sampled again


class Keeper:
    """The weight sync as the client sees it: here it 'reloads' a fake replica by setting its version
    (``now``), or, like the NCCL sync, only promises the weights at the next push."""

    def __init__(self, version: int, now: bool = True, takes_s: float = 0.0):
        self.version = version
        self.now = now
        self.takes_s = takes_s  # how long a reload takes
        self.restored: list[str] = []
        self.lock = threading.Lock()

    def restore(self, endpoint: str) -> bool:
        with self.lock:
            self.restored.append(endpoint)
        time.sleep(self.takes_s)
        if self.now:
            mode(endpoint, version=str(self.version))
        return self.now


def test_a_replica_at_an_old_version_is_left_out_until_the_keeper_restores_it(fakes):
    a, b = fakes
    mode(a)  # restarted: serves its start-up weights, v0
    mode(b, version="1")
    keeper = Keeper(version=1)
    client = RolloutClient([a, b], cfg(max_concurrency=1), keeper=keeper)
    groups = client.generate_sync([SAMPLE] * 8, n=1, max_tokens=8, progress=False)
    versions = {c.weight_version for g in groups for c in g.completions}
    assert versions == {1} and keeper.restored == [a]
    assert client.replicas.restored[a] == 1 and client.replicas.served[a] >= 1  # back in service at v1
    assert all(n == 1 for n in httpx.get(a + "/_requests").json())


def test_a_reload_slower_than_a_batch_is_followed_by_the_next_batch_not_started_again(fakes):
    """The keeper's reload outlives the ``generate`` call that started it (each RL round is its own
    call and event loop): the next calls wait for that same reload, count it once, and pick the
    replica again when it serves the current weights."""
    a, b = fakes
    mode(a)  # restarted: serves v0
    mode(b, version="1")
    keeper = Keeper(version=1, takes_s=2.0)
    client = RolloutClient([a, b], cfg(max_concurrency=1), keeper=keeper)
    calls = 0
    while not client.replicas.served[a]:
        groups = client.generate_sync([SAMPLE] * 2, n=1, max_tokens=8, progress=False)
        assert {c.weight_version for g in groups for c in g.completions} == {1}
        calls += 1
        assert calls < 50, "the restored replica was never picked again"
    assert calls > 1  # the reload did outlive the first call
    assert keeper.restored == [a] and client.replicas.restored[a] == 1


def test_a_replica_waiting_for_the_next_push_stays_out(fakes):
    a, b = fakes
    mode(a)
    mode(b, version="1")
    keeper = Keeper(version=1, now=False)
    client = RolloutClient([a, b], cfg(max_concurrency=1), keeper=keeper)
    groups = client.generate_sync([SAMPLE] * 4, n=1, max_tokens=8, progress=False)
    assert {c.weight_version for g in groups for c in g.completions} == {1}
    assert keeper.restored == [a] and httpx.get(a + "/_requests").json() == []


def test_async_keeps_a_response_that_spans_a_push_with_the_versions_it_spans(fakes):
    """Async RL (``spans=True``): the response sampled across the push is kept, labelled from the
    version before the request (its oldest tokens) to the one after; nothing is sampled again."""
    a, _ = fakes
    mode(a, mode="push")
    client = RolloutClient([a], cfg(), spans=True)
    (group,) = client.generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)
    assert [(c.weight_version, c.weight_version_max) for c in group.completions] == [(0, 1), (0, 1)]
    assert httpx.get(a + "/_requests").json() == [2]
    assert client.busy_s > 1.0  # the request was in flight through the push


def test_responses_a_push_aborted_are_sent_again_without_counting_a_failure(fakes):
    """``inflight_on_push: abort``: vLLM ends the unfinished responses with finish_reason "abort";
    they are not kept, they are asked for again at once, and the replica is not held at fault."""
    a, _ = fakes
    mode(a, mode="abort")
    client = RolloutClient([a], cfg(), spans=True)
    (group,) = client.generate_sync([SAMPLE], n=3, max_tokens=8, progress=False)
    assert [c.finish_reason for c in group.completions] == ["stop"] * 3
    assert [(c.weight_version, c.weight_version_max) for c in group.completions] == [(0, 1), (1, None), (1, None)]
    assert httpx.get(a + "/_requests").json() == [3, 2] and client.failures[a] == 0


def test_an_unreachable_replica_is_left_out_even_when_the_other_is_busy_and_benched(fakes):
    """A replica whose process is gone refuses connections: routing leaves it out, so a prompt's
    retries go to the live replica even while that one is busy and just failed an attempt (before,
    the dead one, idle and as benched, won the pick and took every attempt)."""
    import asyncio

    from ovr.rollout.protocol import ReplicaFailed
    from ovr.rollout.replicas import Replicas
    from ovr.serving import free_port

    live, dead = fakes[0], f"http://127.0.0.1:{free_port()}"
    mode(live)
    replicas = Replicas([live, dead])

    async def look() -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(ReplicaFailed, match="ConnectError"):
                await replicas.version_of(http, dead)
            replicas.failed(dead)
            replicas.failed(live)  # e.g. a version race: benched too
            replicas.in_flight[live] = 5
            assert {replicas.pick() for _ in range(4)} == {live}
            await replicas.version_of(http, live)
            with pytest.raises(ReplicaFailed):
                await replicas.version_of(http, dead)
            assert replicas.down == {dead} and replicas.outages == {live: 0, dead: 1}  # one outage, seen twice

    asyncio.run(look())


def test_a_replica_not_up_yet_is_waited_for_not_given_up_within_seconds(fakes, repo_root):
    """The only replica refuses connections when the batch starts (a pod restarting) and comes up a
    few seconds later: the prompt waits for it (``progress_timeout_s``) instead of spending its
    attempts on refused connections."""
    from ovr.serving import free_port

    server = fake_server(repo_root, 3, port=free_port())  # its port is known (and refused) before it starts
    late = threading.Timer(2.0, server.start)
    late.start()
    try:
        client = RolloutClient([server.url], cfg(progress_timeout_s=60.0))
        (group,) = client.generate_sync([SAMPLE], n=2, max_tokens=8, progress=False)
        assert by_replica(group) == [3000, 3001]
        assert client.replicas.down == set() and httpx.get(server.url + "/_requests").json() == [2]
        assert client.replicas.outages[server.url] == 1
    finally:
        late.join()
        server.stop()
