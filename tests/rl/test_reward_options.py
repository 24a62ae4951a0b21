"""The trainer's sampling path reaches the reward service with the recipe's reward options: a
scripted OpenAI-compatible server (real uvicorn process; scripted answers of known lengths) stands
in for vLLM, the reward service is the real one under uvicorn. Overlong shaping and the truncated
reward can only show in the scores if the service received them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ovr.config import load_config
from ovr.rl.metrics import rollout_metrics
from ovr.rl.state import PromptCursor
from ovr.rl.step import sample_step
from ovr.schema import Sample


def test_overlong_shaping_and_truncated_reward_reach_the_service(scripted_server, tmp_path):
    from ovr.rewards.client import RewardClient
    from ovr.rollout.client import RolloutClient
    from services.reward.server import local_server

    prompts = [
        Sample(id=f"q{i}", source="arith", split="rl", prompt=f"question {i}: 2 + 2", answer="4") for i in range(2)
    ]
    short, near = r"so \boxed{4}", " ".join(["step"] * 9) + r" \boxed{4}"  # 2 and 10 "tokens"
    cut = " ".join(["step"] * 12)
    srv = scripted_server(
        [{"match": "question", "responses": [short, near, cut], "finish_reasons": ["stop", "stop", "length"]}]
    )
    cfg = load_config(
        None,
        [
            "reward.overlong_buffer=4",
            "reward.truncated_reward=-0.5",
            "rl.algorithm=dapo",
            "rl.prompts_per_step=2",
            "rl.samples_per_prompt=3",
            "rl.dynamic_sampling=false",
            "tracking.enabled=false",
        ],
        use_env=False,
    )
    with local_server(workers=1) as reward:
        cfg.rollout.endpoints, cfg.reward.url = [srv.url], reward.url
        run = SimpleNamespace(cfg=cfg, rl=cfg.rl, samples=prompts, state=SimpleNamespace(cursor=PromptCursor(2, 0)))
        svc = SimpleNamespace(
            rollout=RolloutClient([srv.url], cfg.rollout), reward=RewardClient.from_config(cfg.reward)
        )
        got = sample_step(run, svc, max_tokens=12, progress=False)
    by_len = {len(c.token_ids): r for c, r in zip(got.groups[0].completions, got.results[:3])}
    # 12-token limit, 4-token buffer: 2 tokens -> no penalty; 10 -> -0.5; 12 tokens, cut -> -0.5 - 1
    assert by_len[2].overall == pytest.approx(1.0) and by_len[2].extra["overlong"] == 0.0
    assert by_len[10].overall == pytest.approx(1.0 - 0.5) and by_len[10].accuracy == 1.0
    assert by_len[12].overall == pytest.approx(-0.5 - 1.0) and by_len[12].accuracy == 0.0
    from ovr.rl.experience import build_experience
    from ovr.rl.forward import EncodedPrompt

    enc = {s.id: EncodedPrompt([1, 2], None, None) for s in prompts}
    rows = build_experience(got.groups, enc, got.results)
    assert sorted({r.score for r in rows}) == pytest.approx([-1.5, 0.5, 1.0])  # what the update optimises
    assert rollout_metrics(rows, got.results, [], 0)["overlong_mean"] < 0
