"""A small OpenAI-compatible chat server that answers from a script (run as a real uvicorn server).

The script (a JSON file) is a list of rules ``{"match": "...", "responses": [...],
"finish_reasons": [...]}``. A request is answered by the first rule whose ``match`` occurs in the
text of its last user message; its ``n`` choices are the rule's next ``n`` responses (a cursor per
rule, wrapping around), so a test knows exactly which k responses each question receives. Token ids
are the positions of the whitespace-separated words of a response: its length in tokens is its word
count. Requests matching no rule get HTTP 404, so a test never passes on an unscripted answer.

    python tests/eval/scripted_openai.py --script rules.json --port 8000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


def create_app(rules: list[dict[str, Any]], model: str = "policy") -> FastAPI:
    app = FastAPI()
    app.state.cursors = [0] * len(rules)
    app.state.requests = []

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "scripted"}]}

    @app.get("/requests")
    def requests() -> list:
        """Every request body received (tests assert on sampling parameters)."""
        return app.state.requests

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        app.state.requests.append({k: v for k, v in body.items() if k != "messages"})
        text = _last_user_text(body.get("messages", []))
        idx = next((i for i, r in enumerate(rules) if r["match"] in text), None)
        if idx is None:
            raise HTTPException(404, f"no scripted rule matches prompt {text[:120]!r}")
        rule, n = rules[idx], int(body.get("n") or 1)
        choices = []
        for j in range(n):
            pos = (app.state.cursors[idx] + j) % len(rule["responses"])
            content = rule["responses"][pos]
            finish = (rule.get("finish_reasons") or ["stop"] * len(rule["responses"]))[pos]
            words = content.split()
            ids = list(range(len(words)))
            choice: dict[str, Any] = {
                "index": j,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
                "token_ids": ids,
            }
            if body.get("logprobs"):
                as_ids = body.get("return_tokens_as_token_ids")
                choice["logprobs"] = {
                    "content": [
                        {
                            "token": f"token_id:{i}" if as_ids else w,
                            "logprob": -0.5,
                            "bytes": list(w.encode()),
                            "top_logprobs": [],
                        }
                        for i, w in zip(ids, words, strict=True)
                    ]
                }
            choices.append(choice)
        app.state.cursors[idx] += n
        usage = sum(len(c["token_ids"]) for c in choices)
        return {
            "id": f"chatcmpl-{len(app.state.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", model),
            "choices": choices,
            "prompt_token_ids": [0],
            "usage": {"prompt_tokens": 1, "completion_tokens": usage, "total_tokens": usage + 1},
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="policy")
    args = parser.parse_args()
    rules = json.loads(args.script.read_text())
    uvicorn.run(create_app(rules, args.model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
