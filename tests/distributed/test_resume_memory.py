"""A PPO resume at 2 ranks (``torchrun``, gloo, DeepSpeed ZeRO-3) of a Qwen2.5-VL at the 7B's width
(one decoder layer, bf16, ~0.2 GB for actor + critic): the weights come back exactly, in bf16, and
the host memory the resume itself needs - building the models and reading DeepSpeed's partition
files, both host memory on a GPU node too - stays below a quarter of ONE copy of the models for the
whole node (the old resume built the critic and read a copy of its file on every rank, then read
each partition file into anonymous memory). The engines' own state, which is device memory on
GPUs, is measured apart (bench/resume_memory.py prints every figure)."""

from __future__ import annotations

import pytest

from bench.resume_memory import REPO, build_model, model_params, resume, torchrun

pytestmark = [pytest.mark.slow]


def test_resume_at_two_ranks_is_exact_and_reads_no_model_into_host_memory(tmp_path):
    from transformers import AutoConfig

    model = build_model(tmp_path / "model", layers=1, intermediate=1024)
    pa, pc = model_params(AutoConfig.from_pretrained(str(model)))
    one_copy = 2 * (pa + pc)  # actor + critic in bf16
    worker, sets = str(REPO / "bench/resume_worker.py"), ["--set", "model.dtype=bfloat16"]
    torchrun(
        [worker, "--phase", "save", "--model", str(model), "--root", str(tmp_path), *sets], REPO, 2, tmp_path / "s.log"
    )

    m = resume(REPO / "bench/resume_worker.py", model, tmp_path, REPO, 2, check=True, sets=["model.dtype=bfloat16"])
    ranks = m["ranks"]
    assert [r["resumed_from"] for r in ranks] == [1, 1]
    assert ranks[0]["exact"] == {"actor": True, "critic": True}  # gathered weights == the checkpoint's
    assert all(r["dtypes"] == {"actor": ["torch.bfloat16"], "critic": ["torch.bfloat16"]} for r in ranks)
    assert m["samples"] > 10  # the node was sampled during the resume
    mb = {k: round(v / 2**20) for k, v in m["host"].items()}
    print(f"2-rank resume: node growth {mb} MB; actor + critic in bf16: {one_copy >> 20} MB")  # shown with -s
    assert m["host"]["RssAnon"] < 0.25 * one_copy, f"host memory of the resume {mb} MB, models {one_copy >> 20} MB"
    build = m["phase"]["build"]["VmRSS"]  # mapped file pages included: no rank reads a model's file
    assert build < 0.25 * one_copy, f"a rank grew by {build >> 20} MB building its models"
