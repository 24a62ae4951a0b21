"""A stand-in for a vLLM replica's weight-transfer HTTP routes (dev mode), for the NCCL sync tests.

The real routes only work with CUDA GPUs (NCCL), which these machines lack; this app answers the
same paths, records every call, and can be told to hang or fail ``/update_weights``. With
``OVR_ROLLOUT_TOKEN`` set it requires that bearer token like a real replica (ovr's middleware).
"""

from __future__ import annotations

import asyncio
import os

from fastapi import Body, FastAPI, HTTPException

from services.rollout.auth import SERVER_TOKEN_ENV, BearerTokenMiddleware

app = FastAPI()
if os.environ.get(SERVER_TOKEN_ENV):
    app.add_middleware(BearerTokenMiddleware)
app.state.version = "default"
app.state.calls = []
app.state.update_mode = "ok"
app.state.fingerprint = "fp"  # what every worker reports; a test sets another to play a bad replica
app.state.workers = 2  # tensor-parallel workers of this replica


@app.get("/health")
async def health():
    return {}


@app.get("/weight_info")
async def weight_info():
    return {"weight_version": app.state.version}


@app.post("/update_weight_version")
async def update_weight_version(new_version: str = Body(..., embed=True)):
    app.state.version = new_version
    return {"success": True, "new_version": new_version}


@app.post("/init_weight_transfer_engine")
async def init(init_info: dict = Body(..., embed=True)):
    app.state.calls.append(["init", init_info])
    return {"message": "ok"}


@app.post("/start_weight_update")
async def start():
    app.state.calls.append(["start", None])
    return {"message": "ok"}


@app.post("/update_weights")
async def update(update_info: dict = Body(..., embed=True)):
    app.state.calls.append(["update", update_info])
    if app.state.update_mode == "hang":
        await asyncio.sleep(60)
    if app.state.update_mode == "fail":
        raise HTTPException(500, "NCCL error: unhandled system error")
    return {"message": "ok"}


@app.post("/finish_weight_update")
async def finish():
    app.state.calls.append(["finish", None])
    return {"message": "ok"}


@app.post("/collective_rpc")
async def collective_rpc(method: str = Body(..., embed=True), timeout: float | None = Body(None, embed=True)):
    if method != "ovr_weight_version":
        raise HTTPException(400, f"unknown method {method}")
    return {
        "results": [{"version": 0, "fingerprint": f"{app.state.fingerprint}-rank{i}"} for i in range(app.state.workers)]
    }


@app.post("/_mode")
async def set_mode(update: str = Body("ok", embed=True), fingerprint: str = Body("fp", embed=True)):
    app.state.update_mode = update
    app.state.fingerprint = fingerprint
    return {"update": update}


@app.get("/_calls")
async def calls():
    return app.state.calls
