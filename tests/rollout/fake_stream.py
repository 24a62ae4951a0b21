"""A stand-in for a vLLM replica's streamed ``/v1/chat/completions``, ``/weight_info`` and ``/metrics``,
for the rollout client's retry, progress and version tests (real uvicorn processes).

It fakes what a real replica cannot be made to do on demand: cut a stream after some responses
finished, fall silent while idle (a hung engine) or while busy with others (a queued request),
change its weight version in the middle of a request (``push``), or abort the unfinished responses
when it does (``abort``, vLLM's ``/pause?mode=abort``). Streams have vLLM's shape (one chunk per
response per step, ``token_ids``, ``logprobs``, ``finish_reason``, ``data: [DONE]``). Response ``i``
of a request is the tokens ``[FAKE_ID * 1000 + i]`` repeated ``FAKE_LEN`` times, so a test knows
which replica sampled what. ``POST /_mode`` sets ``mode`` (``ok``, ``cut``, ``stall``, ``hang``,
``queued``, ``push``, ``abort``), ``version`` and ``silent_s``; ``GET /_requests`` lists the ``n`` of every request.
"""

from __future__ import annotations

import asyncio
import json
import os

from fastapi import Body, FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

app = FastAPI()
app.state.mode = "ok"
app.state.version = "default"
app.state.silent_s = 3.0
app.state.generated = 0
app.state.requests = []
BASE = int(os.environ.get("FAKE_ID", "1")) * 1000
LENGTH = int(os.environ.get("FAKE_LEN", "3"))


def chunk(index: int, finish: bool, prompt: bool = False, reason: str = "stop") -> str:
    body = {
        "choices": [
            {
                "index": index,
                "delta": {"content": "t "},
                "token_ids": [BASE + index],
                "logprobs": {"content": [{"logprob": -0.5}]},
                "finish_reason": reason if finish else None,
            }
        ]
    }
    if prompt:
        body["prompt_token_ids"] = [1, 2, 3]
    return f"data: {json.dumps(body)}\n\n"


async def stream(n: int, mode: str):
    if mode == "queued":  # busy with others: nothing for this request for a while
        await asyncio.sleep(app.state.silent_s)
    if mode == "hang":  # a hung engine: nothing at all
        await asyncio.sleep(3600)
    for i in range(n):
        for k in range(LENGTH):
            last = k == LENGTH - 1
            yield chunk(i, last, prompt=i == 0 and k == 0)
            app.state.generated += 1
            await asyncio.sleep(0.01)
            if last and i == 0 and mode in ("cut", "stall", "push", "abort"):
                await asyncio.sleep(1.0)  # the client's monitor sees response 0 finished at this version
                if mode == "cut":
                    raise RuntimeError("replica died mid-stream")
                if mode == "stall":
                    await asyncio.sleep(3600)
                app.state.version = str(int(app.state.version if app.state.version != "default" else 0) + 1)
                app.state.mode = "ok"
                if mode == "abort":  # the push aborted the others: vLLM ends them with finish_reason "abort"
                    for j in range(1, n):
                        yield chunk(j, True, reason="abort")
                    yield "data: [DONE]\n\n"
                    return
    yield "data: [DONE]\n\n"


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    app.state.requests.append(body["n"])
    return StreamingResponse(stream(body["n"], app.state.mode), media_type="text/event-stream")


@app.get("/health")
async def health():
    return {}


@app.get("/weight_info")
async def weight_info():
    return {"weight_version": app.state.version}


@app.get("/metrics")
async def metrics():
    if app.state.mode == "queued":
        app.state.generated += 10  # tokens for other requests
    return PlainTextResponse(f'vllm:generation_tokens_total{{engine="0"}} {float(app.state.generated)}\n')


@app.post("/_mode")
async def set_mode(mode: str = Body("ok"), version: str = Body("default"), silent_s: float = Body(3.0)):
    app.state.mode, app.state.version, app.state.silent_s = mode, version, silent_s
    app.state.requests = []
    return {}


@app.get("/_requests")
async def requests():
    return app.state.requests
