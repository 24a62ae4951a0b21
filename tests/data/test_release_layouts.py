"""The layouts users download (authors' releases, JSONL re-uploads, text-only configurations) load
completely, with the answers the benchmarks really write, and each reference is checked by the
reward of its answer type; rejected rows say why."""

from __future__ import annotations

import pytest
from test_adapters import adapt

from ovr.rewards import score_item
from ovr.schema import ScoreItem


def accuracy(sample, response: str) -> float:
    item = ScoreItem(response=response, reference=sample.answer, answer_type=sample.answer_type, choices=sample.choices)
    return score_item(item).accuracy


def test_mathverse_real_answers_load(source_files):
    samples, report = adapt(source_files, "mathverse")
    by_id = {s.id: s for s in samples}
    assert report.dropped["mathverse"] == {}
    paren = by_id["mathverse-4"]  # answer "(C)", options listed as "(A) angle 1"
    assert (paren.answer, paren.answer_type, paren.choices) == ("C", "choice", ["angle 1", "angle 2", "angle 3"])
    several = by_id["mathverse-5"]  # answer "A\nC", options drawn in the image
    assert (several.answer, several.choices) == ("A, C", ["A", "B", "C", "D"])
    bearing = by_id["mathverse-6"]
    assert (bearing.answer, bearing.answer_type) == ("090^\\circ T", "math")
    true_false = by_id["mathverse-7"]  # answer "False" for the listed "B:False"
    assert (true_false.answer, true_false.choices) == ("B", ["True", "False"])
    assert accuracy(paren, "\\boxed{(C)}") == accuracy(paren, "\\boxed{angle 3}") == 1.0
    assert accuracy(several, "\\boxed{C, A}") == 1.0 and accuracy(several, "\\boxed{A}") == 0.0
    assert accuracy(bearing, "\\boxed{090^\\circ T}") == 1.0 and accuracy(bearing, "\\boxed{270^\\circ T}") == 0.0
    assert accuracy(true_false, "\\boxed{False}") == 1.0 and accuracy(true_false, "\\boxed{True}") == 0.0


def test_mathverse_text_only_rows_are_text_questions(source_files):
    samples, report = adapt(source_files, "mathverse_text_only")
    assert [s.modality for s in samples] == ["text"] * 3 and all(not s.images for s in samples)
    listed, true_false, square = samples
    assert "<image>" not in listed.prompt and (listed.answer, listed.answer_type) == ("B", "choice")
    assert (true_false.answer, true_false.answer_type) == ("True", "string")
    assert accuracy(true_false, "\\boxed{\\text{true}}") == 1.0 and accuracy(true_false, "\\boxed{False}") == 0.0
    assert square.answer == "9"
    assert report.dropped["mathverse_text_only"] == {"corrupt row: empty question": 1}


def test_amc_references_are_plain_numbers_checked_by_the_reward(source_files):
    samples, report = adapt(source_files, "amc")
    assert [(s.answer, s.answer_type, s.subject, s.provenance["exam"]) for s in samples] == [
        ("3159", "number", "AMC 2022", "12A"),
        ("-12", "number", "AMC 2023", "10B"),
        ("27", "number", "AMC 2023", "12B"),
    ]
    big, negative, _ = samples
    assert accuracy(big, "\\boxed{3159}") == accuracy(big, "\\boxed{3,159}") == accuracy(big, "\\boxed{3159.0}") == 1.0
    assert accuracy(big, "\\boxed{159}") == 0.0
    assert accuracy(negative, "\\boxed{-12}") == 1.0 and accuracy(negative, "\\boxed{12}") == 0.0
    assert report.dropped["amc"] == {"corrupt row: answer is not a number": 1}
    assert report.examples[0]["detail"] == "'nan'"


def test_gsm8k_final_answer_after_hashes_without_commas(source_files):
    samples, report = adapt(source_files, "gsm8k")
    birds, cents = samples
    assert (birds.answer, cents.answer) == ("72", "123400") and birds.answer_type == "number"
    assert accuracy(cents, "\\boxed{123,400}") == accuracy(cents, "\\boxed{123400}") == 1.0
    assert accuracy(cents, "\\boxed{1234}") == 0.0
    assert report.dropped["gsm8k"] == {"corrupt row: no '#### <number>' final answer": 1}
    traces, _ = adapt(source_files, "gsm8k", split="sft")
    trace = traces[0].messages[1].content
    assert "<<" not in trace and "####" not in trace and trace.endswith("$\\boxed{72}$.")


def test_math500_rows_through_the_math_adapter_keep_subject_and_answer(source_files):
    samples, _ = adapt(source_files, "math500_layout")
    assert [(s.subject, s.difficulty, s.answer) for s in samples] == [
        ("Counting & Probability", 2.0, "20"),
        ("Algebra", 1.0, "\\frac{9}{2}"),
    ]


def test_aime_sets_without_year_column_get_their_year(source_files):
    samples, _ = adapt(source_files, "aime25")
    assert [s.subject for s in samples] == ["AIME 2025"] * 3  # from the url, the id, option `year`
    assert samples[0].provenance["exam"] == "I"
    no_option, _ = adapt(source_files, "aime25", year=None)
    assert [s.subject for s in no_option] == ["AIME 2025", "AIME 2025", "AIME"]


def test_chartqa_raw_release_reads_png_folder(source_files):
    samples, report = adapt(source_files, "chartqa_raw")
    assert [(s.answer, s.answer_type) for s in samples] == [("64", "number"), ("Rail", "string"), ("2016", "number")]
    assert samples[2].images[0].data[:3] == b"\xff\xd8\xff"  # the JPEG bytes are kept
    assert report.read["chartqa_raw"] == 4  # the annotations/*.json beside it are not rows
    assert report.dropped["chartqa_raw"] == {"corrupt row: image unreadable": 1}
    assert report.examples[0]["detail"].endswith("png/12.png")


def test_geometry3k_raw_release_one_folder_per_problem(source_files):
    samples, report = adapt(source_files, "geometry3k_raw")
    assert [s.id for s in samples] == ["geometry3k_raw-10", "geometry3k_raw-2401", "geometry3k_raw-2402"]
    assert [(s.answer, s.answer_type) for s in samples] == [("A", "choice"), ("B", "choice"), ("D", "choice")]
    assert samples[1].choices == ["3", "6", "9", "12"] and "A. 3\nB. 6" in samples[1].prompt
    assert report.read["geometry3k_raw"] == 4  # logic_form.json files are not rows
    assert report.dropped["geometry3k_raw"] == {"corrupt row: answer names no option": 1}
    values, _ = adapt(source_files, "geometry3k_raw", free_form=True)
    assert [(s.answer, s.answer_type, s.choices) for s in values] == [
        ("30", "number", None),
        ("6", "number", None),
        ("48", "number", None),
    ]


def test_scienceqa_raw_problems_json_images_by_split_and_pid(source_files):
    samples, report = adapt(source_files, "scienceqa_raw")
    balls, tool = samples
    assert (balls.id, balls.answer, balls.modality) == ("scienceqa_raw-7", "C", "image")
    assert (tool.id, tool.modality) == ("scienceqa_raw-8", "text")
    assert report.dropped["scienceqa_raw"] == {"split not in ['test']": 1, "corrupt row: image unreadable": 1}
    assert any(e["detail"] and e["detail"].endswith("images/test/12/image.png") for e in report.examples)


@pytest.mark.parametrize(
    "name,answers,choices",
    [
        ("logicvista", ["C", "A, C"], [["1", "2", "3", "4"], ["A", "B", "C", "D"]]),
        ("wemath", ["B", "C"], [["30°", "60°", "90°", "120°", "No correct answer"], ["12", "14", "24", "28"]]),
    ],
)
def test_letter_benchmarks_parse_their_options(source_files, name, answers, choices):
    samples, report = adapt(source_files, name)
    assert [s.answer for s in samples] == answers and [s.choices for s in samples] == choices
    assert report.dropped[name] == {"corrupt row: answer names no option": 1}


def test_dynamath_answer_types_and_variant_split(source_files):
    samples, report = adapt(source_files, "dynamath")
    assert [(s.answer, s.answer_type) for s in samples] == [("B", "choice"), ("0.5", "number"), ("red", "string")]
    assert samples[0].choices == ["f", "g", "h"] and report.read["dynamath"] == 3  # sample_variant1 only
