"""The rollout replicas' bearer token: the ASGI middleware on its own, then loaded into a real vLLM
server (rollout venv, tiny Qwen2.5-VL) through ``--middleware``, probed route by route."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ovr.config import LocalServerConfig, RolloutConfig
from ovr.rollout.client import RolloutClient, RolloutError, auth_headers
from ovr.rollout.weights import WeightSyncError, server_versions
from services.rollout.auth import MIDDLEWARE, SERVER_TOKEN_ENV, BearerTokenMiddleware

TOKEN = "t0ken-for-tests"


def _app() -> Starlette:
    async def ok(request):
        return PlainTextResponse("ok")

    async def echo(ws):
        await ws.accept()
        await ws.send_text("hi")
        await ws.close()

    routes = [Route(p, ok, methods=["GET", "POST"]) for p in ("/health", "/ping", "/collective_rpc", "/v1/models")]
    app = Starlette(routes=routes + [WebSocketRoute("/v1/realtime", echo)])
    app.add_middleware(BearerTokenMiddleware)  # as vLLM loads a --middleware class: no arguments
    return app


@pytest.fixture()
def guarded(monkeypatch) -> TestClient:
    monkeypatch.setenv(SERVER_TOKEN_ENV, TOKEN)
    return TestClient(_app())


def test_every_route_but_the_probes_needs_the_token(guarded):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/health", "/ping"):
        assert guarded.get(path).status_code == 200
    for method, path in (("POST", "/collective_rpc"), ("GET", "/v1/models"), ("POST", "/health"), ("GET", "/nope")):
        r = guarded.request(method, path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, path)
        assert guarded.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert guarded.request(method, path, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert guarded.request(method, path, headers=bearer).status_code in (200, 404)
    assert guarded.post("/collective_rpc", headers=bearer).text == "ok"


def test_websockets_need_the_token(guarded):
    with pytest.raises(WebSocketDisconnect) as closed, guarded.websocket_connect("/v1/realtime") as ws:
        ws.receive_text()
    assert closed.value.code == 1008
    with guarded.websocket_connect("/v1/realtime", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_text() == "hi"


def test_loading_without_a_token_refuses_to_start(monkeypatch):
    monkeypatch.delenv(SERVER_TOKEN_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"{SERVER_TOKEN_ENV} is empty"):
        TestClient(_app()).get("/health")


def test_clients_send_the_token_from_the_configured_env_var(monkeypatch):
    monkeypatch.setenv("MY_ROLLOUT_TOKEN", "abc")
    monkeypatch.delenv("UNSET_TOKEN", raising=False)
    assert auth_headers("MY_ROLLOUT_TOKEN") == {"Authorization": "Bearer abc"}
    assert auth_headers("UNSET_TOKEN") == {}
    client = RolloutClient(["http://127.0.0.1:9"], RolloutConfig(token_env="MY_ROLLOUT_TOKEN"))
    assert client.http.headers["authorization"] == "Bearer abc"


def test_auth_module_imports_only_what_the_rollout_image_has(repo_root):
    """The rollout image is vLLM's: the stdlib and Starlette (a vLLM dependency), no ovr."""
    import ast

    tree = ast.parse((repo_root / "services/rollout/auth.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"__future__", "hashlib", "hmac", "os", "starlette"}


# ---------------------------------------------------------------- against a real vLLM server

#: (method, path, JSON body, status with the token); every one answers 401 without it. The NCCL
#: weight-transfer routes need CUDA: with the token they reach vLLM, which refuses them on CPU.
GUARDED = [
    (
        "POST",
        "/v1/chat/completions",
        {"model": "policy", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        200,
    ),
    ("GET", "/v1/models", None, 200),
    ("POST", "/collective_rpc", {"method": "ovr_weight_version"}, 200),
    ("GET", "/weight_info", None, 200),
    ("POST", "/update_weight_version", {"new_version": "0"}, 200),
    ("POST", "/pause", None, 200),
    ("GET", "/is_paused", None, 200),
    ("POST", "/resume", None, 200),
    ("POST", "/reset_prefix_cache", None, 200),
    ("GET", "/server_info", None, 200),
    ("POST", "/init_weight_transfer_engine", {"init_info": {}}, None),
    ("POST", "/update_weights", {"update_info": {}}, None),
    ("POST", "/health", None, 405),
]
OPEN = [("GET", "/health"), ("GET", "/ping"), ("GET", "/metrics")]


@pytest.fixture(scope="module")
def replica(tiny_model_dir, rollout_python):
    from services.rollout.launch import local_server

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OVR_ROLLOUT_TOKEN", raising=False)
        cfg = RolloutConfig(local_server=LocalServerConfig(max_model_len=512, dtype="float32"))
        with local_server(tiny_model_dir, cfg, python=rollout_python) as srv:
            assert MIDDLEWARE in srv.cmd
            yield srv, cfg


@pytest.mark.vllm
@pytest.mark.timeout(300)
def test_real_vllm_answers_401_without_the_token_on_every_guarded_route(replica):
    srv, cfg = replica
    token_headers = auth_headers(cfg.token_env)
    assert token_headers, "local_server exports the generated token in the env var named by token_env"
    table = []
    for method, path in OPEN:
        r = httpx.request(method, srv.url + path, timeout=30)
        table.append((f"{method} {path}", r.status_code, "-"))
        assert r.status_code == 200, (path, r.text[:200])
    for method, path, body, expected in GUARDED:
        bare = httpx.request(method, srv.url + path, json=body, timeout=60)
        wrong = httpx.request(method, srv.url + path, json=body, headers={"Authorization": "Bearer nope"}, timeout=60)
        good = httpx.request(method, srv.url + path, json=body, headers=token_headers, timeout=120)
        table.append((f"{method} {path}", bare.status_code, good.status_code))
        assert bare.status_code == 401 and wrong.status_code == 401, path
        assert good.status_code == expected if expected else good.status_code not in (401, 403), (path, good.text[:300])
    rpc = httpx.post(
        srv.url + "/collective_rpc", json={"method": "ovr_weight_version"}, headers=token_headers, timeout=60
    ).json()
    assert rpc["results"][0]["version"] == 0
    print("\nendpoint | without token | with token\n" + "\n".join(f"{e} | {a} | {b}" for e, a, b in table))


@pytest.mark.vllm
def test_weight_sync_and_rollout_client_fail_clearly_without_the_token(replica, monkeypatch):
    srv, cfg = replica
    assert server_versions([srv.url], token_env=cfg.token_env) == [0]
    monkeypatch.delenv(cfg.token_env)
    with pytest.raises(WeightSyncError, match="401"):
        server_versions([srv.url], token_env=cfg.token_env)
    from ovr.schema import Sample

    sample = Sample(id="s", source="test", split="rl", prompt="Hi", answer="1")
    with pytest.raises(RolloutError, match=f"401: \\${cfg.token_env} is not set"):
        RolloutClient([srv.url], cfg).generate_sync([sample], n=1, max_tokens=2, progress=False)
