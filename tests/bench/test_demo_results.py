"""README's demo figures are the seeds bench's last output, measured on today's recipe and generators.

``bench/results/demo_seeds.json`` records what ``bench/demo_seeds.py`` measured and a content hash
of every input that decides the demo (the tiny recipe, the data generators, the tiny model's
builder); README's demo block is rendered from it. A changed input or a hand-edited figure fails
here: re-measure with ``bench/demo_seeds.py --seeds 0 1 2 3 4 --update-readme``.
"""

from __future__ import annotations

from bench import demo_results as dr

RERUN = "re-measure: .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 3 4 --update-readme"


def _record(seed: int, first: float, last: float, sft_img: float, rl_img: float, refl: float) -> dict:
    behaviour = {
        "SFT data/text": {"reflection": 0.2, "verification": 0.1},
        "SFT model/text": {"reflection": refl, "verification": 0.05},
        "SFT model/image": {"reflection": refl / 2, "verification": 0.02},
    }
    accuracy = {"sft": {dr.IMAGE_BENCH: sft_img, dr.TEXT_BENCH: 0.3}, "rl-100": {dr.IMAGE_BENCH: rl_img}}
    return dr.seed_record(seed, 420.0 + seed, (first, last), 100, accuracy, behaviour, 1.5)


def test_readme_quotes_the_results_file():
    doc = dr.load()
    quoted = dr.quoted_block(dr.README.read_text())
    assert quoted is not None, f"README has no demo block between {dr.README_START!r} and {dr.README_END!r}"
    assert quoted == dr.readme_block(doc), f"README's demo figures differ from {dr.RESULTS.name}: {RERUN}"


def test_results_were_measured_on_todays_recipe_and_generators():
    changed = dr.changed_inputs(dr.load()["inputs"])
    assert changed == [], f"{changed} changed since the demo was measured: {RERUN}"


def test_results_cover_five_seeds_with_the_default_one():
    seeds = [r["seed"] for r in dr.load()["seeds"]]
    assert sorted(seeds) == [0, 1, 2, 3, 4]


def test_a_changed_input_or_figure_is_caught(tmp_path):
    for rel in dr.DEMO_INPUTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"content of {rel}\n")
    recorded = dr.input_hashes(tmp_path)
    assert dr.changed_inputs(recorded, tmp_path) == []
    (tmp_path / "recipes/tiny-cpu.yaml").write_text("rl: {max_steps: 1}\n")
    assert dr.changed_inputs(recorded, tmp_path) == ["recipes/tiny-cpu.yaml"]

    doc = dr.results_doc([_record(0, 0.3, 0.8, 0.2, 0.7, 0.15), _record(1, 0.25, 0.5, 0.3, 0.45, 0.05)], "cmd")
    block = dr.readme_block(doc)
    readme = dr.with_block(f"intro\n{dr.README_START}\nold\n{dr.README_END}\nrest\n", block)
    assert dr.quoted_block(readme) == block
    edited = readme.replace("+0.250–+0.500", "+0.300–+0.500")
    assert edited != readme and dr.quoted_block(edited) != block


def test_block_shows_range_default_seed_and_checks():
    doc = dr.results_doc([_record(0, 0.3, 0.8, 0.2, 0.7, 0.15), _record(1, 0.25, 0.5, 0.3, 0.45, 0.05)], "cmd")
    block = dr.readme_block(doc)
    reward = "| RL reward, mean of the first 3 → last 5 of 100 steps | 0.250–0.300 → 0.500–0.800 (gain +0.250–+0.500)"
    assert reward in block
    assert "| eval avg@4, image questions, SFT → RL (%) | 20.0–30.0 → 45.0–70.0 | 20.0 → 70.0 |" in block
    assert "1 of 2 seeds pass every check" in block  # seed 1: +15 image points, 5 % text / 2.5 % image reflection
    missed = "seed 1: SFT reflection on images >= 5 %, SFT reflection on text >= half the traces', image eval +20"
    assert f"Checks missed — {missed} points." in block
    assert doc["seeds"][1]["checks"] == {
        "gain >= 0.2": True,
        "image eval +20 points": False,
        "SFT reflection on text >= half the traces'": False,
        "SFT reflection on images >= 5 %": False,
    }
