"""The run report from two evaluations (scripted server, real rollout client, rewards, MLflow)
of two "checkpoints" in one MLflow run. The training curves are logged into that run through the
Tracker exactly as the RL stage logs them (``rl/reward_mean`` ...), since no trainer runs here;
the vLLM test (test_vllm_eval.py) builds a report from a real tiny model's evaluation."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from scripted_data import improved_rules, policy_rules, run_on, samples, served

from ovr.data.build import build_dataset
from ovr.eval.report import build_report, reward_gain, training_order
from ovr.eval.runner import evaluate
from ovr.store import Store
from ovr.tracking import Tracker


def _png_ok(data: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(data))
    img.verify()
    return Image.open(io.BytesIO(data)).size


def test_report_renders_accuracy_curves_and_behaviours(scripted_server, eval_cfg, tmp_path):
    data = samples()
    cfg = eval_cfg(
        "eval.k=4",
        "eval.benchmarks=[arith, synthetic_visual]",
        "data.synthetic.text_samples=80",
        "data.synthetic.visual_samples=0",
        "data.synthetic.eval_samples=0",
    )
    build_dataset(cfg, Store.from_config(cfg.store), progress=False)  # the cold start the report counts
    with Tracker.open(cfg, "rl") as rl:  # the run the checkpoints belong to, with its training curves
        curve = [
            (0.2, 40.0),
            (0.3, 39.0),
            (0.1, 38.0),
            (0.35, 36.0),
            (0.4, 35.0),
            (0.6, 33.0),
            (0.55, 32.0),
            (0.5, 31.0),
        ]
        for step, (reward, length) in enumerate(curve, start=1):
            rl.log_metrics(
                {
                    "reward_mean": reward,
                    "response_len_mean": length,
                    "accuracy": reward,
                    "behaviour/image/reflection": step / 10,
                    "behaviour/image/verification": 0.0,
                },
                step=step,
            )

    early = evaluate(
        cfg,
        data,
        ctx=run_on(cfg, scripted_server(policy_rules(data[3:])).url, rl.run_id),
        out_dir=tmp_path / "e0",
        progress=False,
        label="sft",
        step=0,
    )
    late = evaluate(
        cfg,
        data,
        ctx=run_on(cfg, scripted_server(improved_rules(data[3:])).url, rl.run_id),
        out_dir=tmp_path / "e3",
        progress=False,
        label="rl-step-3",
        step=3,
    )
    assert early.mlflow_run_id == late.mlflow_run_id == rl.run_id

    out = tmp_path / "report"
    path = build_report(cfg, [late, early], out)  # order restored by step
    text = path.read_text()

    assert "| benchmark | sft (avg@4) | rl-step-3 (avg@4) |" in text
    assert "| arith | 50.0 | 100.0 |" in text and "| synthetic_visual | 50.0 | 100.0 |" in text
    assert "RL reward (mean): 0.5 at step 8" in text and "RL response length (tokens): 31 at step 8" in text
    assert "RL reward: mean 0.200 over the first 3 steps, 0.480 over the last 5 (+0.280)." in text
    assert "| vision | image | 8 |" in text  # behaviour table at the last checkpoint
    assert "| kw_wait | 1.00 |" in text  # all responses say "Wait," in both modalities: transfer 1.0
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == [
        "figures/accuracy.png",
        "figures/training.png",
        "figures/behaviour.png",
        "figures/transfer.png",
        "figures/behaviour_rl.png",
    ]
    for link in links:
        w, h = _png_ok((out / link).read_bytes())
        assert w >= 400 and h >= 300

    # the transfer story: cold-start data (the recipe's mix: a fifth reflect, a tenth verify) -> SFT -> RL
    section = text.split("## Behaviour transfer", 1)[1]
    data_row = re.search(r"\| SFT data \| text \| 80 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", section)
    assert data_row, section
    reflection, verification, backtracking = map(float, data_row.groups())
    assert 10 < reflection < 35 and 2 < verification < 25 and backtracking == 0.0
    assert "| SFT model | text | 12 | 8.3 |" in section  # 1 of t1's 4 answers says "Wait,"
    assert "| SFT model | image | 8 | 25.0 |" in section and "| RL model | image | 8 | 100.0 |" in section
    assert section.startswith("\n\nThis run shows transfer: reflection")
    assert "On image questions RL amplified it (25.0 % → 100.0 % of the answers)" in section
    assert "| RL model | image | 8 of 8 | 100.0 | – | – |" in section  # no answer without it: no gap
    assert "| SFT model | image | 2 of 8 | 50.0 | 50.0 | +0.0 |" in section  # v0 right with "Wait", v1 wrong

    inline = (out / "report_inline.md").read_text()
    urls = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([^)]+)\)", inline)
    assert len(urls) == 5 and "figures/" not in inline
    assert base64.b64decode(urls[0]) == (out / "figures/accuracy.png").read_bytes()

    from mlflow.tracking import MlflowClient

    names = {a.path for a in MlflowClient(cfg.tracking.uri).list_artifacts(rl.run_id, "report")}
    assert {"report/report.md", "report/report_inline.md", "report/figures"} <= names


def test_report_without_training_metrics(scripted_server, eval_cfg, tmp_path):
    data = samples()
    cfg = eval_cfg("eval.k=4", "eval.benchmarks=[arith]", "tracking.enabled=false")
    result = evaluate(
        served(cfg, scripted_server(policy_rules(data[3:])).url), data[:3], out_dir=tmp_path / "e", progress=False
    )
    text = build_report(cfg, [result], tmp_path / "r").read_text()
    assert "No training metrics" in text and "| arith | 50.0 |" in text
    assert not (tmp_path / "r/figures/training.png").exists()


def test_reward_gain_windows():
    curve = [(s, float(s)) for s in range(10)]
    assert reward_gain(curve) == (1.0, 7.0)
    assert reward_gain(list(reversed(curve)), head=1, tail=1) == (0.0, 9.0)  # by step, not list order
    assert reward_gain(curve[:7]) is None  # windows would overlap


def test_training_order_puts_the_cold_start_first():
    from types import SimpleNamespace as R

    results = [R(label="rl", step=80), R(label="rl-step-40", step=40), R(label="sft", step=160)]
    assert [r.label for r in sorted(results, key=training_order)] == ["sft", "rl-step-40", "rl"]
