"""Every adapter maps small files in its source's real layouts to valid, checkable Samples."""

from __future__ import annotations

import pytest
from layouts import LAYOUTS

from ovr.config import DataConfig, DataSourceConfig, StoreConfig
from ovr.data.build import Report, load_source
from ovr.data.filters import verification_problem
from ovr.data.registry import all_adapters, get_adapter
from ovr.models.chat import prompt_parts

TEMPLATE_TAIL = "put your final answer within \\boxed{}."


def adapt(source_files, name, *, split=None, **options):
    """Load one fixture through its adapter (``options`` added to the fixture's)."""
    fields = source_files[name].source(name, **options)
    if split is not None:
        fields["split"] = split
    report = Report()
    samples = load_source(DataSourceConfig(**fields), DataConfig(), StoreConfig(), report, progress=False)
    return samples, report


def test_every_adapter_has_a_fixture_in_a_real_layout():
    names = {a.name for a in all_adapters()}
    assert len(names) >= 16
    assert names == {adapter for adapter, _ in LAYOUTS.values()}


def test_unknown_adapter_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown adapter 'nope'.*registered"):
        get_adapter("nope")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_adapter_maps_real_layout_to_valid_verifiable_samples(source_files, name):
    samples, report = adapt(source_files, name)
    expected = source_files[name].expected
    assert len(samples) == expected, report.as_dict()
    assert report.read[name] == sum(report.dropped[name].values()) + expected
    for s in samples:
        assert s.source == name and s.id.startswith(f"{name}-")
        assert s.prompt.endswith(TEMPLATE_TAIL)
        assert s.prompt.count("<image>") == len(s.images)
        prompt_parts(s)  # the chat renderer accepts it
        assert all(i.data[:4] == b"\x89PNG" or i.data[:3] == b"\xff\xd8\xff" for i in s.images)
        assert verification_problem(s) is None, s
    assert len({s.id for s in samples}) == len(samples)


def test_openr1_takes_first_verified_generation_and_skips_proofs(source_files):
    samples, report = adapt(source_files, "openr1_math")
    by_answer = {s.answer: s for s in samples}
    assert by_answer["5"].messages[1].content.endswith("\\boxed{5}")
    assert by_answer["5"].messages[0].content == by_answer["5"].prompt
    assert report.dropped["openr1_math"] == {"proof or no final answer": 1, "no verified complete generation": 1}


def test_math_answer_is_last_boxed_of_solution(source_files):
    samples, report = adapt(source_files, "math")
    assert [(s.answer, s.difficulty, s.subject) for s in samples] == [
        ("2", 1.0, "Prealgebra"),
        ("2\\sqrt{2}", 2.0, "Algebra"),
    ]
    assert report.dropped["math"] == {"no \\boxed{} answer in the solution": 1}


def test_numina_source_instruction_is_replaced_by_the_template(source_files):
    samples, _ = adapt(source_files, "numina_math")
    first = samples[0].prompt
    assert first.startswith("Find $3 \\cdot 4$.\n") and first.count("\\boxed{}") == 1


def test_scienceqa_choices_letters_and_corrupt_row(source_files):
    samples, report = adapt(source_files, "scienceqa")
    ocean, rhyme = samples
    assert (ocean.answer, ocean.answer_type, ocean.modality) == ("B", "choice", "image")
    assert "A. the Indian Ocean\nB. the Pacific Ocean" in ocean.prompt
    assert rhyme.modality == "text" and rhyme.prompt.startswith("Context: Rhymes")
    assert report.dropped["scienceqa"] == {"corrupt row: answer index outside the choices": 1}
    assert report.examples[0]["detail"] == "7 (of 2 choices)"
    only_images, _ = adapt(source_files, "scienceqa", require_image=True)
    assert [s.modality for s in only_images] == ["image"]


def test_chartqa_types_and_jpeg_kept_as_is(source_files):
    samples, _ = adapt(source_files, "chartqa")
    assert [(s.answer, s.answer_type) for s in samples] == [("42", "number"), ("2019", "number"), ("Yes", "string")]
    assert samples[1].images[0].data[:3] == b"\xff\xd8\xff"


def test_mathvision_image_marks_paths_and_missing_file(source_files):
    samples, report = adapt(source_files, "mathvision")
    shape, dots = samples[:2]
    assert shape.answer_type == "choice" and shape.choices == ["A", "B", "C", "D", "E"]
    assert shape.prompt.startswith("Which shape comes next?\n<image>")
    assert dots.prompt.startswith("<image>\nHow many dots") and dots.answer_type == "number"
    assert report.dropped["mathvision"] == {"corrupt row: image unreadable": 1}
    assert "image file not found" in report.examples[0]["detail"] and "404.png" in report.examples[0]["detail"]


def test_mathvision_several_marks_for_one_combined_image(source_files):
    samples, _ = adapt(source_files, "mathvision")
    tile, squares = samples[2:]
    assert len(tile.images) == 1 and tile.prompt.count("<image>") == 1
    assert tile.prompt.startswith("The tile <image> is turned. Which picture shows it?\nA. A\nB. B")
    assert "<image2>" not in tile.prompt and tile.answer == "B"
    assert squares.prompt.startswith("<image>\nHow many squares") and squares.answer == "9"


def test_mathverse_choices_versions_and_hf_split(source_files):
    samples, _ = adapt(source_files, "mathverse")
    text_dominant, vision_only, lite = samples[:3]
    assert text_dominant.choices == ["40°", "50°", "130°", "140°"] and text_dominant.answer == "C"
    assert text_dominant.prompt.count("Choices:") == 1
    assert vision_only.choices == ["A", "B", "C", "D"] and "shown in the image" in vision_only.prompt
    assert lite.answer_type == "number"
    only, report = adapt(source_files, "mathverse", versions=["Vision Only"])
    assert [s.subject for s in only] == ["Vision Only", "Vision Only"]
    assert report.dropped["mathverse"] == {
        "problem_version 'Text Dominant' not selected": 1,
        "problem_version 'Text Lite' not selected": 2,
        "problem_version 'Vision Intensive' not selected": 1,
        "problem_version 'Vision Dominant' not selected": 1,
    }


def test_mathvista_choice_text_becomes_letter(source_files):
    samples, report = adapt(source_files, "mathvista")
    spring, bar = samples
    assert (spring.answer, spring.choices) == ("B", ["object A", "object B"])
    assert bar.answer_type == "number" and "(Unit: cm)" in bar.prompt
    assert report.dropped["mathvista"] == {"corrupt row: answer names no option": 1}
    assert report.examples[0]["detail"].startswith("'maybe'")


def test_math500_bad_json_line_reported(source_files):
    samples, report = adapt(source_files, "math500")
    assert [s.answer for s in samples] == ["10", "-2, 2"]
    assert report.dropped["math500"] == {"corrupt row: unreadable": 1}


def test_geometry3k_from_save_to_disk_sequence_of_images(source_files):
    samples, report = adapt(source_files, "geometry3k")
    assert [s.answer for s in samples] == ["3", "24\\sqrt{3}"]
    assert samples[0].prompt.startswith("<image>Find x.")
    assert report.dropped["geometry3k"] == {"no image": 1}


@pytest.mark.parametrize(
    "module", ["ovr.data.registry", "ovr.data.prompts", "ovr.data.hub", "ovr.data.adapters.visual_evalsets"]
)
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
