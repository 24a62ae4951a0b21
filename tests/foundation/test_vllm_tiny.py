"""The tiny model folder is served by the real vLLM OpenAI server from the rollout venv."""

from __future__ import annotations

import base64
import io

import httpx
import pytest

from ovr.serving import ManagedServer


@pytest.mark.vllm
def test_vllm_serves_tiny_model_chat_with_image_n4(tiny_model_dir, rollout_python):
    from PIL import Image

    cmd = [
        str(rollout_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_model_dir),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--enforce-eager",
        "--max-model-len",
        "1024",
    ]
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    buf = io.BytesIO()
    Image.new("RGB", (112, 112), "blue").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with ManagedServer(cmd, env=env, name="vllm-tiny", startup_timeout_s=300) as srv:
        resp = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": url}},
                            {"type": "text", "text": "What colour is the image?"},
                        ],
                    }
                ],
                "n": 4,
                "max_tokens": 6,
                "temperature": 1.0,
                "logprobs": True,
                "return_token_ids": True,
            },
            timeout=120,
        )
    assert resp.status_code == 200, resp.text
    choices = resp.json()["choices"]
    assert len(choices) == 4
    for c in choices:
        assert c["finish_reason"] in ("stop", "length")
        assert 1 <= len(c["token_ids"]) <= 6
        assert len(c["logprobs"]["content"]) == len(c["token_ids"])
