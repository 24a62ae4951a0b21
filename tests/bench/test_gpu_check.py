"""The GPU check without a GPU: its shell script parses, and its Python entry runs the packed
micro-batches of the longest RL stage and of SFT on the CPU at toy sizes (real tensors), with the
traced figure beside each and the attention calls that actually ran counted (no wall-time asserts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from bench.gpu_check import TOY, main

REPO = Path(__file__).resolve().parents[2]


def test_shell_script_parses():
    script = REPO / "bench/gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "bench.gpu_check" in script.read_text()


@pytest.fixture()
def one_thread():
    """Toy-sized ops gain nothing from more threads, and lose much on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_entry_runs_the_packed_micro_batches_on_cpu_at_toy_size(tmp_path, capsys, one_thread):
    out = tmp_path / "gpu.md"
    mixes = ["1 long + short", "1 long image + short image", "8 documents"]  # text rows, image rows, documents
    code = main(["--device", "cpu", "--toy", "--layers", "2", "--mixes", ",".join(mixes), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.read_text() in printed
    rows = [line.strip("| ").split(" | ") for line in printed.splitlines() if line.startswith(("| RL", "| SFT"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("RL 96", m, s) for m in mixes[:2] for s in ("actor", "critic")] + [
        ("SFT 160", mixes[2], "sft")
    ]
    layers, depth = 2, TOY["vision_config"]["depth"]
    for _stage, mix, step, tokens, traced, measured, ratio, _seconds, calls in rows:
        assert int(tokens) > 0 and float(traced) > 0 and measured == ratio == "n/a"  # nothing measured off CUDA
        # one step: each decoder layer's packed attention ran per row, forward and checkpointed recompute
        ran = dict(c.rsplit(" x", 1) for c in calls.split(", "))
        expected = {"decoder/sdpa_per_segment": str(2 * layers)}
        if "image" in mix:  # and the vision tower's blocks over its images and windows
            expected["vision/sdpa_per_segment"] = str(2 * depth)
        assert ran == expected, (mix, step, calls)
    assert "2 decoder layers" in printed and "scaled_dot_product" in printed  # the profiler's CPU kernels
    assert all(96 < int(r[3]) <= 192 for r in rows[:4])  # a long row + short ones within the budget (real tokens)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err
