"""The memory bench at toy size: one table per length stage with the row mixes the trainer's own
batching packed (token budget respected, one image per image row), every micro-batch traced through
PyTorch's varlen kernel (no [L, L] kernel), the file written is what it printed; its ZeRO-3,
extrapolation and largest-image arithmetic matches hand-computed values."""

from __future__ import annotations

import pytest
import torch

from bench.memory import TOY_RECIPE, ZeroSetup, extrapolate, main
from bench.memory_mixes import largest_image_grid


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tables(printed: str) -> dict[str, list[list[str]]]:
    tables, stage = {}, None
    for line in printed.splitlines():
        if line.startswith("### "):
            stage = line[4:]
            tables[stage] = []
        elif stage and line.startswith("| ") and not line.startswith("| mix") and "---" not in line:
            tables[stage].append(line.strip("| ").split(" | "))
    return tables


def test_toy_bench_traces_each_stage_worst_micro_batches(tmp_path, capsys, one_thread):
    out = tmp_path / "memory.md"
    code = main(["--toy", "--rl-tokens", "48", "96", "--layers", "1", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.read_text() == printed and code == 0
    tables = _tables(printed)
    assert list(tables) == ["RL 48", "RL 96", "SFT 160"]
    mixes = ["one row", "1 long + short", "short rows", "1 long image + short image", "image rows"]
    for stage in ("RL 48", "RL 96"):
        rows = {r[0]: r for r in tables[stage]}
        assert list(rows) == mixes
        for name, n_rows, images, tokens, actor, critic, _ratio in rows.values():
            assert int(tokens) <= TOY_RECIPE.budget and float(actor) > 0 and float(critic) > 0
            assert images == ("0" if "image" not in name else n_rows)  # every image row its own image
        assert rows["one row"][6] == "1.00" and int(rows["short rows"][1]) == TOY_RECIPE.budget // 24
    sft = {r[0]: r for r in tables["SFT 160"]}
    assert [int(sft[m][1]) for m in ("1 document", "8 documents", "64 documents")] == [1, 8, 64]
    assert "torch_attn._varlen_attn" in printed and "_scaled_dot_product_attention_math" not in printed
    assert "Within 70 GB per GPU at every stage: yes" in printed
    assert "16 image tokens" in printed  # the toy max_pixels' largest image


def test_zero3_bytes_extrapolation_and_largest_image():
    z = ZeroSetup(world=8)
    # 8e9 params, 7e9 trainable: (2 * 8e9 + 16 * 7e9) / 8 bytes
    assert z.shards(8_000_000_000, 7_000_000_000) == 16e9
    assert z.working_set(500_000_000) == 2 * (1e9 + 5e8) + 2 * 5e8
    assert extrapolate(10.0, 14.0, 2, 4) == (62.0, 2.0)  # 10 + 26 layers * 2
    assert largest_image_grid(1280 * 28 * 28) == (1, 64, 80)  # 1280 tokens of 28 x 28 pixels
    assert largest_image_grid(28 * 28 * 16) == (1, 8, 8)
