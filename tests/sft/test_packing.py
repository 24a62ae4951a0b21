"""Packing: rows fit, labels cover exactly the assistant turn, and a packed row gives every sample
the same loss it gets alone (text and image samples, M-RoPE positions restarting per sample)."""

from __future__ import annotations

import random

import pytest
import torch

from ovr.sft.encode import IGNORE, encode_sample
from ovr.sft.loss import segment_losses
from ovr.sft.packing import PackedCollator, pack_rows, padding_efficiency


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ovr.models.loading import load_policy, load_processor

    model = load_policy(tiny_model_dir).eval()
    return model, load_processor(tiny_model_dir)


def test_pack_rows_fits_everything_once_and_beats_one_per_row():
    rng = random.Random(0)
    lengths = [rng.randint(10, 200) for _ in range(500)]
    rows = pack_rows(lengths, capacity=256)
    flat = sorted(i for row in rows for i in row)
    assert flat == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 256 for row in rows)
    assert padding_efficiency(lengths, rows, 256) > 0.95
    assert len(rows) < 500 / 2
    with pytest.raises(ValueError, match="longer than the row capacity"):
        pack_rows([300], capacity=256)


def test_labels_cover_only_the_assistant_turn(tiny, sft_samples):
    _model, processor = tiny
    sample = sft_samples[0]
    enc = encode_sample(processor, sample)
    labelled = enc.input_ids[enc.labels != IGNORE]
    assistant = sample.messages[-1].content
    assert processor.tokenizer.decode(labelled) == assistant + "<|im_end|>"
    # the labelled span is contiguous and ends on <|im_end|> (the trailing newline is not trained)
    idx = (enc.labels != IGNORE).nonzero()[0]
    assert list(idx) == list(range(idx[0], idx[-1] + 1))
    assert idx[-1] == len(enc) - 2


def _forward_losses(model, batch, lengths):
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"].permute(1, 0, 2),
            pixel_values=batch.get("pixel_values"),
            image_grid_thw=batch.get("image_grid_thw"),
            use_cache=False,
        )
    return segment_losses(out.logits, batch["labels"], lengths)


def test_packed_row_gives_each_sample_its_unpacked_loss(tiny, sft_samples, image_sft_sample):
    model, processor = tiny
    samples = [sft_samples[1], image_sft_sample, sft_samples[2], sft_samples[3]]
    enc = [encode_sample(processor, s, model.model.get_rope_index) for s in samples]
    assert enc[1].positions is not None and enc[1].pixel_values is not None
    # the image segment's M-RoPE positions are not a plain arange: the test exercises 3-D positions
    assert (enc[1].positions[1] != enc[1].positions[0]).any()
    pad = processor.tokenizer.pad_token_id

    alone = []
    for i, e in enumerate(enc):
        batch = PackedCollator(enc, [[i]], pad, pad_to_multiple=1)([0])
        alone += _forward_losses(model, batch, [[len(e)]])

    packed_batch = PackedCollator(enc, [[0, 1, 2, 3]], pad, pad_to_multiple=64)([0])
    lengths = [[len(e) for e in enc]]
    packed = _forward_losses(model, packed_batch, lengths)
    assert packed == pytest.approx(alone, rel=1e-4, abs=1e-5)

    # control: the same row without per-sample position restarts (hence no isolation) differs
    leaky = dict(packed_batch)
    width = packed_batch["input_ids"].shape[1]
    leaky["position_ids"] = torch.arange(width).view(1, 1, -1).expand(1, 4, -1)
    leaked = _forward_losses(model, leaky, lengths)
    assert leaked[0] == pytest.approx(alone[0], rel=1e-4)  # the first sample sees nothing before it
    assert max(abs(a - b) for a, b in zip(leaked[1:], alone[1:])) > 1e-3
