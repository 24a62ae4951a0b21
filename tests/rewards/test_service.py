"""The reward service over HTTP against a real uvicorn process (no fakes)."""

from __future__ import annotations

import asyncio
import re

import httpx

from ovr.rewards import score_items
from ovr.rewards.pool import VerifierPool
from ovr.schema import ScoreItem, ScoreResponse
from tests.rewards.conftest import LIMITS, TOKEN
from tests.rewards.test_reward_table import TABLE

HANG = r"\boxed{2^{2^{2^{2^{2^{2}}}}}}"  # sympy never finishes this one
NESTED = r"\boxed{" + r"\frac{1}{" * 300 + "2" + "}" * 300 + "}"  # ~6 s in math-verify
HUGE_POWER = r"\boxed{10^{10^{10}}}"


def _items(rows):
    return [
        {"reward": r, "response": resp, "reference": ref, "answer_type": t, "choices": ch}
        for r, resp, ref, t, ch, _ in rows
    ]


def _post(srv, items, **kw):
    return httpx.post(srv.url + "/v1/score", json={"items": items}, timeout=60, **kw)


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" ([0-9.e+]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def test_batch_results_match_in_process_in_order(reward_server):
    rows = TABLE[:40]
    resp = _post(reward_server, _items(rows))
    assert resp.status_code == 200, resp.text
    results = ScoreResponse.model_validate_json(resp.content).results
    assert [r.accuracy for r in results] == [float(row[5]) for row in rows]
    local = score_items([ScoreItem(**it) for it in _items(rows)])
    assert [r.model_dump() for r in results] == [r.model_dump() for r in local]


def test_limits_413_and_422(reward_server):
    one = {"response": r"\boxed{1}", "reference": "1"}
    r = _post(reward_server, [one] * (LIMITS["max_batch_items"] + 1))
    assert r.status_code == 413 and "limit is 40" in r.json()["detail"]
    r = httpx.post(
        reward_server.url + "/v1/score",
        content=b"x" * (5 * 2**20),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = _post(reward_server, [one, {"response": "x" * 1_600_000, "reference": "1"}])
    assert r.status_code == 422 and "items[1].response has 1600000 characters" in r.json()["detail"]
    r = _post(reward_server, [{**one, "reward": "nope"}])
    assert r.status_code == 422 and "unknown reward 'nope'" in r.json()["detail"]
    r = _post(reward_server, [{**one, "options": {"bogus": 1}}])
    assert r.status_code == 422 and "bogus" in r.json()["detail"]
    r = _post(reward_server, [{**one, "answer_type": "colour"}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "answer_type"
    r = httpx.post(
        reward_server.url + "/v1/score", content=b"{not json", timeout=10, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_pathological_inputs_time_out_while_normal_requests_flow(reward_server):
    """Hanging, slow, huge-number and 1 MB items come back within their limits; a stream of normal
    requests sent meanwhile keeps being answered quickly."""
    limit = LIMITS["time_limit_s"]
    bad = [
        {"response": HANG, "reference": "5"},
        {"response": NESTED, "reference": "5"},
        {"response": HUGE_POWER, "reference": "5"},
        {"response": "Wait, " * 170_000 + r"\boxed{42}", "reference": "42"},  # ~1 MB
    ]
    good = [{"response": r"\boxed{\frac{1}{2}}", "reference": "0.5"}] * 3

    async def run():
        async with httpx.AsyncClient(base_url=reward_server.url, timeout=120) as client:
            events: list[str] = []  # the order in which answers came back

            async def pathological():
                r = await client.post("/v1/score", json={"items": bad})
                events.append("pathological")
                return r

            async def normal_stream():
                for _ in range(15):
                    r = await client.post("/v1/score", json={"items": good})
                    assert r.status_code == 200
                    assert [x["accuracy"] for x in r.json()["results"]] == [1.0] * 3
                    events.append("normal")
                    if "pathological" in events:
                        break
                    await asyncio.sleep(0.05)

            resp, _ = await asyncio.gather(pathological(), normal_stream())
            return resp, events

    resp, events = asyncio.run(run())
    assert resp.status_code == 200
    res = resp.json()["results"]
    assert res[0]["timed_out"] and res[0]["overall"] == 0.0 and f"exceeded {limit:g} s" in res[0]["error"]
    assert res[1]["timed_out"] and res[1]["overall"] == 0.0
    assert res[2]["overall"] == 0.0
    assert res[3]["accuracy"] == 1.0 and res[3]["reflection"]["wait,"] == 170_000
    # normal requests kept being answered while the pathological ones ran into their limits: several
    # came back before the pathological request did (with a blocked pool, none would)
    assert events.index("pathological") >= 3, events
    metrics = httpx.get(reward_server.url + "/metrics").text
    assert _metric(metrics, "ovr_reward_timeouts_total") >= 2
    assert _metric(metrics, "ovr_reward_workers_alive") == LIMITS["workers"]


def test_full_queue_answers_429_with_retry_after(reward_server):
    hang, easy = {"response": HANG, "reference": "1"}, {"response": r"\boxed{1}", "reference": "1"}
    # chunks of 4: the first two chunks start with a hanging item, holding both workers for ~1 s
    fill = [hang] + [easy] * 3 + [hang] + [easy] * 35

    async def run():
        async with httpx.AsyncClient(base_url=reward_server.url, timeout=60) as client:
            first = asyncio.create_task(client.post("/v1/score", json={"items": fill}))
            while _metric((await client.get("/metrics")).text, "ovr_reward_queue_depth") < 40:
                await asyncio.sleep(0.02)
            second = await client.post("/v1/score", json={"items": [easy] * 10})
            return await first, second

    first, second = asyncio.run(run())
    assert first.status_code == 200 and sum(r["timed_out"] for r in first.json()["results"]) == 2
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert "bound 48" in second.json()["detail"]
    metrics = httpx.get(reward_server.url + "/metrics").text
    assert _metric(metrics, "ovr_reward_rejected_total", 'reason="queue_full"') >= 1


def test_metrics_count_requests(reward_server):
    before = _metric(
        httpx.get(reward_server.url + "/metrics").text, "ovr_reward_requests_total", 'path="/v1/score",status="200"'
    )
    for _ in range(3):
        assert _post(reward_server, [{"response": r"\boxed{2}", "reference": "2"}]).status_code == 200
    text = httpx.get(reward_server.url + "/metrics").text
    assert _metric(text, "ovr_reward_requests_total", 'path="/v1/score",status="200"') == before + 3
    assert _metric(text, "ovr_reward_request_seconds_count", 'path="/v1/score"') >= before + 3
    assert "ovr_reward_queue_depth 0.0" in text
    assert httpx.get(reward_server.url + "/openapi.json").json()["paths"]["/v1/score"]["post"]


def test_auth_on(auth_server):
    item = [{"response": r"\boxed{3}", "reference": "3"}]
    r = _post(auth_server, item)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert _post(auth_server, item, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = _post(auth_server, item, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["results"][0]["accuracy"] == 1.0
    assert httpx.get(auth_server.url + "/readyz").status_code == 200  # probes stay open


def test_auth_off(reward_server):
    assert _post(reward_server, [{"response": r"\boxed{3}", "reference": "3"}]).status_code == 200


def test_readyz_flips_from_503_to_200(monkeypatch):
    """The real app and pool, in process; the test decides when the pool may start warming up, so the
    503 is seen for sure (an HTTP poll of a fast-starting server can miss it)."""
    from services.reward.app import create_app
    from services.reward.settings import RewardSettings

    async def run():
        gate = asyncio.Event()
        start = VerifierPool.start

        async def gated_start(pool):
            await gate.wait()
            return await start(pool)

        monkeypatch.setattr(VerifierPool, "start", gated_start)
        app = create_app(RewardSettings(workers=1))
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            held = [(await c.get("/readyz")).status_code for _ in range(3)]
            health = (await c.get("/healthz")).status_code  # alive while not ready
            refused = (await c.post("/v1/score", json={"items": [{"response": "1", "reference": "1"}]})).status_code
            gate.set()
            for _ in range(600):  # the pool warms up (worker processes): poll its state, not the clock
                if app.state.pool.ready:
                    break
                await asyncio.sleep(0.1)
            return held, health, refused, (await c.get("/readyz")).status_code

    held, health, refused, after = asyncio.run(run())
    assert held == [503, 503, 503] and health == 200 and refused == 503
    assert after == 200
