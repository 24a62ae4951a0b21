"""A short real SFT run of the tiny model: it learns, keeps the vision tower frozen, checkpoints to
the store, logs to MLflow, and its export loads with the Auto classes and in vLLM's server."""

from __future__ import annotations

import httpx
import pytest
import torch
from safetensors.torch import load_file

from ovr.context import RunContext
from ovr.data.synthetic import text_samples
from ovr.models.chat import openai_messages
from ovr.serving import ManagedServer
from ovr.store import Store
from ovr.tracking import Tracker

TEST_RUN = "t1"  # the run id the `trained` fixture (conftest.py) trains under


def test_loss_falls_clearly(trained):
    _, result = trained
    assert result.global_step == 40
    assert len(result.losses) == 40
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last <= 0.7 * first, (first, last)


def test_each_step_went_to_the_progress_file_with_its_loss(trained):
    from pathlib import Path

    from ovr.progress import read_events

    cfg, result = trained
    events, _ = read_events(Path(cfg.store.uri).parent / "progress.jsonl")
    assert [(e.stage, e.step, e.total) for e in events] == [("sft", s, 40) for s in range(1, 41)]
    assert [e.metrics["loss"] for e in events] == pytest.approx(result.losses)  # this step's loss, not the last one
    assert events[-1].rate > 0 and events[-1].eta == 0


def test_vision_tower_bit_identical_and_llm_changed(trained, tiny_model_dir):
    _, result = trained
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(result.export_dir / "model.safetensors")
    assert before.keys() == after.keys()
    visual = [k for k in before if ".visual." in k or k.startswith("visual.")]
    language = [k for k in before if k not in visual]
    assert visual and language
    assert all(torch.equal(before[k], after[k]) for k in visual)
    changed = [k for k in language if not torch.equal(before[k], after[k])]
    assert changed == language


def test_checkpoints_export_and_metrics_recorded(trained):
    cfg, result = trained
    store = Store.from_config(cfg.store)
    key = f"{cfg.name}/{TEST_RUN}"
    assert [m.step for m in store.checkpoints(key, "sft")] == [20, 40]
    export = store.latest(key, "sft-export")
    assert export.step == 40 and result.export_prefix.endswith("step-00000040")
    names = {f.path for f in export.files}
    assert {"model.safetensors", "config.json", "tokenizer.json", "processor_config.json"} <= names
    assert export.metadata["metrics"]["final_loss"] == pytest.approx(result.losses[-1])
    tracker = Tracker.open(cfg, "sft", RunContext.new(cfg.name, TEST_RUN, mlflow_run_id=_run_id(cfg)))
    with tracker:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "padding_efficiency"):
            history = tracker.metric_history(f"sft/{key}")
            assert len(history) == 40, key
    assert 0.8 < result.padding_efficiency <= 1.0
    assert result.tokens_per_s > 0


def _run_id(cfg) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`ovr.run` = '{cfg.name}'")
    return runs[0].info.run_id


def test_export_loads_with_auto_classes_and_answers_boxed(trained):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ovr.models.chat import hf_messages

    _, result = trained
    model = AutoModelForImageTextToText.from_pretrained(result.export_dir).eval()
    processor = AutoProcessor.from_pretrained(result.export_dir)
    boxed = 0
    for sample in text_samples(4, seed=7, split="rl"):
        text = processor.apply_chat_template(hf_messages(sample), tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=64, do_sample=False)
        reply = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        boxed += "\\boxed{" in reply
    assert boxed >= 3


@pytest.mark.vllm
def test_export_served_by_vllm(trained, rollout_python):
    _, result = trained
    cmd = [
        str(rollout_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(result.export_dir),
        "--served-model-name",
        "sft",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--enforce-eager",
        "--max-model-len",
        "1024",
    ]
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    sample = text_samples(1, seed=7, split="rl")[0]
    with ManagedServer(cmd, env=env, name="vllm-sft", startup_timeout_s=300) as srv:
        resp = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={"model": "sft", "messages": openai_messages(sample), "max_tokens": 64, "temperature": 0},
            timeout=120,
        )
    assert resp.status_code == 200, resp.text
    assert "\\boxed{" in resp.json()["choices"][0]["message"]["content"]
