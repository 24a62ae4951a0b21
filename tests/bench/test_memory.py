"""The memory bench at small sizes: its table has one row per stage, the new path peaks below the
old one everywhere, the file written is what it printed; its ZeRO-3 and extrapolation arithmetic
matches hand-computed values."""

from __future__ import annotations

import re

import pytest

from bench.memory import ZeroSetup, extrapolate, main

ROW = re.compile(r"^\| (RL actor|RL critic|SFT) \| ([\d +]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (yes|no) \|$")


def test_small_trace_table_structure_and_new_below_old(tmp_path, capsys):
    out = tmp_path / "memory.md"
    code = main(
        [
            "--rl-tokens",
            "2048",
            "--sft-tokens",
            "8192",
            "--prompt-tokens",
            "64",
            "--layers",
            "1",
            "2",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    lines = printed.splitlines()
    assert lines[0] == "| stage | tokens | old peak GB/GPU | new peak GB/GPU | ratio old/new | fits 80GB |"
    rows = [ROW.match(line) for line in lines[2:5]]
    assert all(rows), lines[2:5]
    assert [(m[1], m[2]) for m in rows] == [("RL actor", "64 + 2048"), ("RL critic", "64 + 2048"), ("SFT", "8192")]
    for m in rows:
        old, new, ratio = float(m[3]), float(m[4]), float(m[5])
        assert new < old and ratio == pytest.approx(old / new, abs=0.06)
        assert m[6] == ("yes" if new <= 80 else "no")
    assert "extrapolated linearly to 28 layers" in printed
    assert "_scaled_dot_product_flash_attention" in printed  # the O(L) kernel, not the math one
    assert code == 0 and "within 70 GB per GPU at every stage: yes" in printed


def test_zero3_bytes_and_linear_extrapolation():
    z = ZeroSetup(world=8)
    # 8e9 params, 7e9 trainable: (2 * 8e9 + 16 * 7e9) / 8 bytes
    assert z.shards(8_000_000_000, 7_000_000_000) == 16e9
    assert z.working_set(500_000_000) == 2 * (1e9 + 5e8) + 2 * 5e8
    assert extrapolate(10.0, 14.0, 2, 4) == (62.0, 2.0)  # 10 + 26 layers * 2
