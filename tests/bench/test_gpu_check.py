"""The GPU check without a GPU: its shell script parses, and its Python entry runs every stage on
the CPU at toy sizes (real tensors), printing the traced figure next to each timed step."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from bench.gpu_check import main

REPO = Path(__file__).resolve().parents[2]


def test_shell_script_parses():
    script = REPO / "bench/gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "bench.gpu_check" in script.read_text()


def test_entry_runs_every_stage_on_cpu_at_toy_size(tmp_path, capsys):
    out = tmp_path / "gpu.md"
    code = main(["--device", "cpu", "--toy", "--layers", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.read_text() in printed
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith("| RL") or line.startswith("| SFT")]
    assert [(r[0], r[1]) for r in rows] == [("| RL actor", "new")] * 2 + [("| RL critic", "new")] * 2 + [
        ("| SFT", "new"),
        ("| RL actor", "old"),
    ]
    for r in rows:
        assert float(r[3]) >= 0 and r[4] == "n/a"  # traced GB; nothing measured off CUDA
        assert float(r[6]) > 0 and float(r[7].rstrip(" |")) > 0  # seconds per step, tokens/s
    assert "2 decoder layers" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err
