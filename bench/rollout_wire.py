"""Rollout bytes on the wire per generated token: the old whole-JSON answer vs the streamed one.

One local vLLM replica (tiny Qwen2.5-VL, float32, the launcher's middlewares) answers the same
prompts with the same ``n`` and a forced length (``min_tokens`` = ``max_tokens``, ``ignore_eos``),
per-token log-probs and token ids, in each way a client can ask:

- baseline: one JSON answer per request, uncompressed (the client before streaming);
- streamed at vLLM's default granularity (a chunk per token), and every ``--interval`` tokens;
- the same two answers gzip-compressed (``Accept-Encoding: gzip``, ``services/rollout/compress.py``);
- :class:`ovr.rollout.client.RolloutClient` itself (streamed every ``rollout.stream_interval``
  tokens, gzip), counting what it received.

Bytes are counted as received (compressed where compressed), tokens from the answers' token ids.

    .venv/bin/python bench/rollout_wire.py --prompts 4 --n 4 --tokens 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def measure(url: str, body: dict, gzip: bool) -> tuple[int, int]:
    """(bytes received, tokens generated) of one request."""
    import httpx

    from ovr.rollout.client import auth_headers
    from ovr.rollout.stream import sse_data

    headers = auth_headers() | {"Accept-Encoding": "gzip" if gzip else "identity"}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=None) as r:
        r.raise_for_status()
        text = r.read()
        raw = r.num_bytes_downloaded
    payload = text.decode()
    if body.get("stream"):
        chunks = [sse_data(line) for line in payload.splitlines()]
        tokens = sum(len(c.get("token_ids") or []) for ch in chunks if ch for c in ch["choices"])
    else:
        tokens = sum(len(c["token_ids"]) for c in json.loads(payload)["choices"])
    return raw, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4, help="Prompts (half image, half text).")
    parser.add_argument("--n", type=int, default=4, help="Samples per prompt.")
    parser.add_argument("--tokens", type=int, default=256, help="Tokens per response (forced).")
    parser.add_argument("--interval", type=int, default=64, help="stream_interval of the streamed variants.")
    parser.add_argument("--model", type=Path, default=None, help="Model folder (default: build the tiny model).")
    args = parser.parse_args()

    from ovr.config import LocalServerConfig, RolloutConfig
    from ovr.data.synthetic import text_samples, visual_samples
    from ovr.models.tiny import make_tiny
    from ovr.rollout.client import RolloutClient
    from ovr.rollout.stream import chat_request
    from services.rollout.launch import local_server

    tmp = Path(tempfile.mkdtemp(prefix="ovr-bench-wire-"))
    model_dir = args.model or make_tiny(tmp / "model", seed=0)
    half = args.prompts // 2
    samples = visual_samples(half, seed=3, split="rl") + text_samples(args.prompts - half, seed=3, split="rl")
    max_len = 1024 + args.tokens
    cfg = RolloutConfig(local_server=LocalServerConfig(dtype="float32", max_model_len=max_len))
    cfg = cfg.model_copy(update={"stream_interval": args.interval})
    forced = {"min_tokens": args.tokens, "ignore_eos": True}
    ways = [
        ("whole JSON (baseline)", None, False),
        ("streamed, every token", 1, False),
        (f"streamed, every {args.interval} tokens", args.interval, False),
        ("whole JSON, gzip", None, True),
        (f"streamed, every {args.interval} tokens, gzip", args.interval, True),
    ]
    rows = []
    with local_server(model_dir, cfg) as server:
        for name, interval, gzip in ways:
            total_bytes = total_tokens = 0
            for s in samples:
                body = chat_request(s, cfg.served_model_name, args.n, args.tokens, 1.0, 1.0, None, interval, forced)
                b, t = measure(server.url, body, gzip)
                total_bytes, total_tokens = total_bytes + b, total_tokens + t
            rows.append((name, total_bytes / total_tokens))
        client = RolloutClient([server.url], cfg)
        client.generate_sync(samples, n=args.n, max_tokens=args.tokens, extra=forced, progress=False)
        rows.append(("RolloutClient (what RL and eval use)", client.wire_bytes_per_token()))

    base = rows[0][1]
    print(f"\nprompts={len(samples)} n={args.n} tokens/response={args.tokens}")
    print(f"{'answer':44s} {'B/token':>8s} {'vs baseline':>12s}")
    for name, per_token in rows:
        print(f"{name:44s} {per_token:8.1f} {per_token / base:11.2f}x")


if __name__ == "__main__":
    main()
