"""RewardClient against the real service (batching, order, auth, retries on 429, deadline, errors)
and its in-process mode."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ovr.config import RewardConfig
from ovr.rewards.client import RewardClient, RewardServiceError
from ovr.schema import ScoreItem
from ovr.serving import free_port
from tests.rewards.conftest import TOKEN
from tests.rewards.test_service import HANG, _metric


def _numbered(n):
    return [ScoreItem(response=rf"\boxed{{{i}}}", reference=str(i if i % 3 else i + 1)) for i in range(n)]


def test_batches_keep_order(reward_server):
    client = RewardClient(reward_server.url, batch_size=7, concurrency=3)
    results = client.score_sync(_numbered(30))
    assert [r.accuracy for r in results] == [0.0 if i % 3 == 0 else 1.0 for i in range(30)]
    assert [r.extracted for r in results] == [str(i) for i in range(30)]


def test_in_process_mode_matches_service(reward_server):
    items = _numbered(9)
    remote = RewardClient(reward_server.url).score_sync(items)
    local = RewardClient.in_process().score_sync(items)
    assert [r.model_dump() for r in remote] == [r.model_dump() for r in local]


def test_token_from_config_env(auth_server, monkeypatch):
    monkeypatch.setenv("OVR_REWARD_TOKEN", TOKEN)
    cfg = RewardConfig(url=auth_server.url)
    assert RewardClient.from_config(cfg).score_sync(_numbered(2))[1].accuracy == 1.0
    monkeypatch.delenv("OVR_REWARD_TOKEN")
    with pytest.raises(RewardServiceError, match="401"):
        RewardClient.from_config(cfg).score_sync(_numbered(2))


async def test_retries_through_429(reward_server):
    """A full queue answers 429; the client waits Retry-After and gets its results."""
    hang, easy = ScoreItem(response=HANG, reference="1"), ScoreItem(response=r"\boxed{1}", reference="1")
    fill = [hang] + [easy] * 3 + [hang] + [easy] * 35
    async with RewardClient(reward_server.url, retries=5) as filler, RewardClient(reward_server.url, retries=5) as c:
        before = _metric(
            httpx.get(reward_server.url + "/metrics").text, "ovr_reward_rejected_total", 'reason="queue_full"'
        )
        first = asyncio.create_task(filler.score(fill))
        while _metric(httpx.get(reward_server.url + "/metrics").text, "ovr_reward_queue_depth") < 40:
            await asyncio.sleep(0.02)
        second = await c.score([easy] * 10)
        assert [r.accuracy for r in second] == [1.0] * 10
        assert sum(r.timed_out for r in await first) == 2
    after = _metric(httpx.get(reward_server.url + "/metrics").text, "ovr_reward_rejected_total", 'reason="queue_full"')
    assert after >= before + 1


async def test_deadline_per_call(reward_server):
    async with RewardClient(reward_server.url, timeout_s=0.3) as client:
        with pytest.raises(TimeoutError):
            await client.score([ScoreItem(response=HANG, reference="1")])


def test_bad_request_is_not_retried(reward_server):
    client = RewardClient(reward_server.url, retries=3, backoff_s=5.0)
    with pytest.raises(RewardServiceError, match="422.*unknown reward"):
        client.score_sync([{"response": "x", "reference": "y", "reward": "nope"}])


def test_unreachable_service_gives_up_after_retries():
    client = RewardClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01)
    with pytest.raises(RewardServiceError, match="after 3 attempts.*Connect"):
        client.score_sync(_numbered(1))


def _long(n: int, chars: int) -> list[ScoreItem]:
    """``n`` responses of about ``chars`` characters each (a 32k-48k-token response is 100-200 KB),
    ending in a box the reference matches when ``i % 3``."""
    filler = "Let me compute this step by step and check each term again. " * (chars // 61)
    return [ScoreItem(response=filler + rf"\boxed{{{i}}}", reference=str(i if i % 3 else i + 1)) for i in range(n)]


def test_long_responses_are_batched_under_the_body_limit(reward_server):
    """30 responses of ~300 KB are ~9 MB of JSON, over the test service's 4 MiB body limit (the real
    one: 64 MiB, which 1024 responses of 48k tokens exceed): batches are cut by bytes, not only by count."""
    items = _long(30, 300_000)
    client = RewardClient(reward_server.url, batch_size=40, max_request_bytes=3 * 2**20, concurrency=2)
    results = client.score_sync(items)
    assert [r.accuracy for r in results] == [0.0 if i % 3 == 0 else 1.0 for i in range(30)]
    assert [r.extracted for r in results] == [str(i) for i in range(30)]


def test_a_413_splits_the_batch_instead_of_failing(reward_server):
    """A client whose byte budget is above the service's limit (here 32 MiB against 4 MiB) gets 413
    and sends the halves; a single item over the service's limit stays an error naming the 413."""
    items = _long(20, 300_000)
    results = RewardClient(reward_server.url, batch_size=40).score_sync(items)
    assert [r.extracted for r in results] == [str(i) for i in range(20)]
    huge = [ScoreItem(response="x" * (5 * 2**20), reference="1")]
    with pytest.raises(RewardServiceError, match="413"):
        RewardClient(reward_server.url, retries=0).score_sync(huge)
    with pytest.raises(ValueError, match="over the request limit"):
        RewardClient(reward_server.url, max_request_bytes=2**20).score_sync(huge)
