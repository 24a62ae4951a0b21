"""evaluate() end to end against a scripted OpenAI-compatible server started as a real uvicorn
process: the rollout client, the reward functions, behaviour counts, the judge, files and MLflow
are all real; only the model's answers are scripted, so avg@k can be computed by hand."""

from __future__ import annotations

import httpx
import pytest
from scripted_data import judge_rules, policy_rules, samples, served

from ovr.eval.records import EvalResult, read_records
from ovr.eval.runner import evaluate


def test_avg_at_k_matches_hand_computed_values(scripted_server, eval_cfg, tmp_path):
    data = samples()
    srv = scripted_server(judge_rules() + policy_rules(data[3:]))
    cfg = eval_cfg(
        "eval.k=4",
        "eval.temperature=0.7",
        "eval.top_p=0.9",
        "eval.max_tokens=32",
        "eval.benchmarks=[arith, synthetic_visual]",
        "eval.judge.enabled=true",
        f"eval.judge.base_url={srv.url}/v1",
        "eval.judge.behaviours=[verification, backtracking, visual_reflection]",
    )
    out = tmp_path / "eval"
    result = evaluate(served(cfg, srv.url), data, out_dir=out, progress=False, label="ckpt", step=7)

    bench = {s.benchmark: s for s in result.benchmarks}
    assert bench["arith"].avg_at_k == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert bench["arith"].pass_at_k == pytest.approx(2 / 3)
    assert bench["arith"].truncation_rate == pytest.approx(1 / 12)
    assert bench["synthetic_visual"].avg_at_k == pytest.approx((0.75 + 0.25) / 2)
    assert bench["synthetic_visual"].modality == "image"
    # lengths are word counts of the scripted responses
    assert bench["arith"].mean_length == pytest.approx((2 + 4 + 3 + 2 + 1 + 1 + 1 + 4 + 1 * 4) / 12)
    subj = {(s.benchmark, s.subject): s.avg_at_k for s in result.subjects}
    assert subj[("arith", "add")] == pytest.approx(0.25) and subj[("arith", "mul")] == 1.0

    # sampling settings reached the server
    sent = [r for r in httpx.get(srv.url + "/requests").json() if r.get("n") == 4]
    assert len(sent) == 5 and {(r["temperature"], r["top_p"], r["max_tokens"]) for r in sent} == {(0.7, 0.9, 32)}

    # behaviours: keywords per benchmark, judge counts with malformed replies as unknown
    rates = {g.group: g for g in result.behaviour}
    assert rates["arith"].rates["kw_wait"] == pytest.approx(1 / 12)
    assert rates["synthetic_visual"].rates["kw_wait"] == pytest.approx(2 / 8)
    assert rates["synthetic_visual"].rates["kw_recheck"] == pytest.approx(1 / 8)
    assert rates["arith"].rates["verification"] == 1.0 and rates["arith"].unknown["verification"] == 0
    assert rates["arith"].rates["backtracking"] is None and rates["arith"].unknown["backtracking"] == 12
    assert "visual_reflection" not in rates["arith"].rates  # not asked for text questions
    assert rates["synthetic_visual"].rates["visual_reflection"] == 0.0
    assert result.transfer["kw_wait"] == pytest.approx((2 / 8) / (1 / 12))
    assert result.transfer["verification"] == 1.0

    # per-response file, table and result.json on disk; metrics in MLflow
    records = read_records(out / "responses.jsonl")
    assert len(records) == 20 and sum(r.accuracy for r in records) == 2 + 0 + 4 + 3 + 1
    assert "| arith | text | 3 | 50.0 |" in (out / "results.md").read_text()
    assert EvalResult.load(out) == result
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cfg.tracking.uri)
    history = client.get_metric_history(result.mlflow_run_id, "eval/synthetic_visual/avg_at_4")
    assert [(m.step, m.value) for m in history] == [(7, 0.5)]
    assert {a.path for a in client.list_artifacts(result.mlflow_run_id, "eval/ckpt")} >= {
        "eval/ckpt/responses.jsonl",
        "eval/ckpt/results.md",
        "eval/ckpt/result.json",
    }


def test_unknown_benchmark_is_a_clear_error(eval_cfg, tmp_path):
    cfg = eval_cfg("eval.benchmarks=[mathvista]")
    with pytest.raises(ValueError, match=r"\['mathvista'\] have no eval samples; available: \['arith'"):
        evaluate(served(cfg, "http://127.0.0.1:9"), samples(), out_dir=tmp_path, progress=False)


def test_scoring_through_the_reward_service_gives_the_same_avg_at_k(scripted_server, eval_cfg, tmp_path):
    from services.reward.server import local_server

    data = samples()
    srv = scripted_server(policy_rules(data[3:]))
    cfg = eval_cfg("eval.k=4", "eval.benchmarks=[arith, synthetic_visual]", "tracking.enabled=false")
    with local_server(workers=1) as reward:
        result = evaluate(served(cfg, srv.url, reward.url), data, out_dir=tmp_path, progress=False)
    bench = {s.benchmark: s.avg_at_k for s in result.benchmarks}
    assert bench == pytest.approx({"arith": 0.5, "synthetic_visual": 0.5})


def test_unreachable_judge_is_an_error_but_responses_are_kept(scripted_server, eval_cfg, tmp_path):
    from ovr.eval.judge import JudgeError
    from ovr.serving import free_port

    data = samples()[:3]
    srv = scripted_server(policy_rules(samples()[3:]))
    cfg = eval_cfg(
        "eval.k=4",
        "eval.benchmarks=[arith]",
        "tracking.enabled=false",
        "eval.judge.enabled=true",
        f"eval.judge.base_url=http://127.0.0.1:{free_port()}/v1",
        "eval.judge.retries=0",
    )
    with pytest.raises(JudgeError, match="failed after 1 tries"):
        evaluate(served(cfg, srv.url), data, out_dir=tmp_path, progress=False)
    assert len(read_records(tmp_path / "responses.jsonl")) == 12
