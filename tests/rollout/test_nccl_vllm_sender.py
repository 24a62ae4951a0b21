"""ovr's NCCL weight stream judged by vLLM 0.32's own trainer-side sender and replica-side loader.

``vllm_nccl_replay.py`` runs in the rollout venv (vLLM is not in the project venv): ovr's
``GatheredWeights`` with vLLM's grouping (as ``push_weights`` builds it for ``weight_sync: nccl``)
over transformers' Qwen2.5-VL at the published 7B config on the meta device, through ovr's engine
factory into vLLM's ``NCCLTrainerWeightTransferEngine.send_weights``, whose packed broadcast feeds
vLLM's worker ``NCCLWeightTransferEngine.update_weights`` into vLLM's own Qwen2.5-VL (meta device).
Only the NCCL communicators, the CUDA streams and the HTTP hop are stand-ins (see the script).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from bench.memory_trace import QWEN25_VL_7B

# what vLLM's layerwise grouping puts after every indexed layer (they have no layer index)
UNINDEXED_LAST = [
    "model.visual.merger.ln_q.weight",
    "model.language_model.embed_tokens.weight",
    "model.language_model.norm.weight",
    "lm_head.weight",
]


def project_names(config: dict) -> list[list]:
    """``named_parameters()`` of the project venv's transformers Qwen2.5-VL (meta device, bf16)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config))
    finally:
        torch.set_default_dtype(previous)
    return [[n, str(p.dtype), list(p.shape)] for n, p in model.named_parameters()]


def triples(rows: list[list]) -> list[tuple]:
    return sorted((name, dtype, tuple(shape)) for name, dtype, shape in rows)


@pytest.fixture(scope="module")
def replay(rollout_python, repo_root, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("replay")
    (work / "config.json").write_text(json.dumps(QWEN25_VL_7B))
    (work / "names.json").write_text(json.dumps(project_names(QWEN25_VL_7B)))
    env = dict(os.environ, PYTHONPATH=str(repo_root), HF_HUB_OFFLINE="1", VLLM_LOGGING_LEVEL="WARNING")
    script = repo_root / "tests/rollout/vllm_nccl_replay.py"
    (work / "vllm").mkdir()
    args = ["--config", work / "config.json", "--names", work / "names.json", "--out", work / "result.json"]
    args += ["--work", work / "vllm"]
    done = subprocess.run(
        [str(rollout_python), str(script), *map(str, args)], env=env, capture_output=True, text=True, timeout=400
    )
    if not (work / "result.json").exists():
        pytest.fail(f"replay script failed (rc {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads((work / "result.json").read_text())


@pytest.mark.vllm
@pytest.mark.timeout(420)
def test_vllms_sender_accepts_ovrs_7b_stream(replay):
    """vLLM's ``_checked_iter`` (name, dtype, shape of every tensor against ``metadata()``, in order)
    passes, the replica is told the declared order, and the worker cuts the packed stream into the
    same chunks the trainer sent. Fails on the base commit: metadata in ``named_parameters()``
    order, iteration in vLLM's grouping -> ValueError at index 385 (merger.ln_q vs merger.mlp.0)."""
    ovr = replay["ovr"]
    assert ovr["error"] is None and ovr["ok"]
    assert ovr["calls"] == ["init", "start", "update", "finish"]
    declared = [name for name, _, _ in ovr["declared"]]
    assert ovr["update_names"] == declared
    assert triples(ovr["declared"]) == triples(replay["project_names"])  # each parameter once, as the trainer has it
    assert declared[-len(UNINDEXED_LAST) :] == UNINDEXED_LAST
    assert len(ovr["sent"]) > 1 and ovr["received"] == ovr["sent"]
    # the source's groups are vLLM's layerwise_groups of its metadata, and vLLM's default
    # iter_groups (its group-order check) runs through ovr's stream
    assert ovr["groups_are_vllms"]
    assert replay["vllm_default_iter_groups_error"] is None


@pytest.mark.vllm
@pytest.mark.timeout(420)
def test_vllms_qwen25vl_loader_takes_every_name_ovr_sends(replay):
    """Through vLLM's ``hf_to_vllm_mapper`` and stacked qkv / gate_up loaders every parameter of
    vLLM's Qwen2.5-VL-7B is reported loaded and handed exactly its own element count, and those
    counts add up to the trainer's (so no sent tensor was silently dropped)."""
    ovr = replay["ovr"]
    assert ovr["not_loaded"] == []
    assert ovr["short_written"] == {}
    assert ovr["written_numel"] == ovr["trainer_numel"] > 8_000_000_000


@pytest.mark.vllm
@pytest.mark.timeout(420)
def test_rollout_venvs_transformers_names_the_trainers_parameters(replay):
    """The stream judged above (the rollout venv's transformers) is the trainer's (the project venv's)."""
    assert replay["trainer_names"] == replay["project_names"]


@pytest.mark.vllm
@pytest.mark.timeout(420)
def test_replica_side_rejects_a_misnamed_parameter(replay):
    """Control: the same stream with ``lm_head.weight`` sent as ``model.lm_head.weight`` passes the
    sender (metadata and iteration agree) but vLLM's loader refuses it, so the checks above can fail."""
    bad = replay["misnamed"]
    assert not bad["ok"]
    assert "There is no module or parameter named 'lm_head'" in bad["error"]
    assert "language_model.lm_head.weight" in bad["not_loaded"]
