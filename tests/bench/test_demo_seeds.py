"""The seeds bench's tables: per-seed gain, accuracy, RL/SFT ratio against the run's own SFT
checkpoint, behaviour rates, and the range line the README quotes (the runs themselves are the
demo's: too long for a test)."""

from __future__ import annotations

from bench.demo_seeds import SeedRun, markdown


def test_tables_and_range_from_two_seeds():
    runs = [
        SeedRun(
            0,
            450.0,
            (0.2, 0.6),
            {"sft": {"img": 0.2}, "rl": {"img": 0.6}},
            {"SFT data/text": {"reflection": 0.25}, "RL model/image": {"reflection": 0.0}},
        ),
        SeedRun(1, 510.0, (0.1, 0.4), {"sft": {"img": 0.0}, "rl": {"img": 0.5}}, {}),
    ]
    text = markdown(runs)
    assert "| 0 | 0.200→0.600 | +0.400 | 20.0 | 60.0 | img 3.00x | 7.5 |" in text
    assert "| 1 | 0.100→0.400 | +0.300 | 0.0 | 50.0 | img - | 8.5 |" in text  # no ratio over a zero baseline
    assert "| 0 | SFT data/text | 25.0 |" in text and "| 0 | RL model/image | 0.0 |" in text
    assert "gain over 2 seed(s): +0.300 to +0.400; wall time 7.5 to 8.5 min." in text
