"""Every adapter maps a small file in its source's real layout to valid, checkable Samples."""

from __future__ import annotations

import pytest

from ovr.config import DataConfig, DataSourceConfig, StoreConfig
from ovr.data.build import Report, load_source
from ovr.data.filters import verification_problem
from ovr.data.registry import all_adapters, get_adapter
from ovr.models.chat import prompt_parts
from source_layouts import WRITERS

TEMPLATE_TAIL = "put your final answer within \\boxed{}."


def adapt(source_files, name, **options):
    path, opts, _ = source_files[name]
    src = DataSourceConfig(adapter=name, path=str(path), split=get_adapter(name).split, options={**opts, **options})
    report = Report()
    samples = load_source(src, DataConfig(), StoreConfig(), report, progress=False)
    return samples, report


def test_at_least_eight_adapters_each_with_a_fixture():
    names = {a.name for a in all_adapters()}
    assert len(names) >= 8
    assert names == set(WRITERS)


def test_unknown_adapter_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown adapter 'nope'.*registered"):
        get_adapter("nope")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_adapter_maps_real_layout_to_valid_verifiable_samples(source_files, name):
    samples, report = adapt(source_files, name)
    expected = source_files[name][2]
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
    assert [(s.answer, s.difficulty, s.subject) for s in samples] == [("2", 1.0, "Prealgebra"), ("2\\sqrt{2}", 2.0, "Algebra")]
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
    assert report.dropped["scienceqa"] == {"corrupt row: ValueError": 1}
    assert "outside 2 choices" in report.examples[0]["detail"]
    only_images, _ = adapt(source_files, "scienceqa", require_image=True)
    assert [s.modality for s in only_images] == ["image"]


def test_chartqa_types_and_jpeg_kept_as_is(source_files):
    samples, _ = adapt(source_files, "chartqa")
    assert [(s.answer, s.answer_type) for s in samples] == [("42", "number"), ("2019", "number"), ("Yes", "string")]
    assert samples[1].images[0].data[:3] == b"\xff\xd8\xff"


def test_mathvision_image_marks_paths_and_missing_file(source_files):
    samples, report = adapt(source_files, "mathvision")
    shape, dots = samples
    assert shape.answer_type == "choice" and shape.choices == ["A", "B", "C", "D", "E"]
    assert shape.prompt.startswith("Which shape comes next?\n<image>")
    assert dots.prompt.startswith("<image>\nHow many dots") and dots.answer_type == "number"
    assert report.dropped["mathvision"] == {"corrupt row: ValueError": 1}


def test_mathverse_choices_versions_and_hf_split(source_files):
    samples, _ = adapt(source_files, "mathverse")
    text_dominant, vision_only, lite = samples
    assert text_dominant.choices == ["40°", "50°", "130°", "140°"] and text_dominant.answer == "C"
    assert text_dominant.prompt.count("Choices:") == 1
    assert vision_only.choices == ["A", "B", "C", "D"] and "shown in the image" in vision_only.prompt
    assert lite.answer_type == "number"
    only, report = adapt(source_files, "mathverse", versions=["Vision Only"])
    assert [s.subject for s in only] == ["Vision Only"]
    assert sum(report.dropped["mathverse"].values()) == 2


def test_mathvista_choice_text_becomes_letter(source_files):
    samples, report = adapt(source_files, "mathvista")
    spring, bar = samples
    assert (spring.answer, spring.choices) == ("B", ["object A", "object B"])
    assert bar.answer_type == "number" and "(Unit: cm)" in bar.prompt
    assert "not one of the choices" in report.examples[0]["detail"]


def test_math500_bad_json_line_reported(source_files):
    samples, report = adapt(source_files, "math500")
    assert [s.answer for s in samples] == ["10", "-2, 2"]
    assert report.dropped["math500"] == {"corrupt row: unreadable": 1}


def test_geometry3k_from_save_to_disk_sequence_of_images(source_files):
    samples, report = adapt(source_files, "geometry3k")
    assert [s.answer for s in samples] == ["3", "24\\sqrt{3}"]
    assert samples[0].prompt.startswith("<image>Find x.")
    assert report.dropped["geometry3k"] == {"no image": 1}
