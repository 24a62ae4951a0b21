"""Small source files in the layouts the benchmarks' authors publish (their GitHub/zip releases and
the common JSONL re-uploads), as opposed to the Hugging Face copies of ``source_layouts.py``.
Writers return ``(path, source_fields, expected_good_rows)``; the rows are written here from the
published schemas (no benchmark text is copied).
"""

from __future__ import annotations

import json
from pathlib import Path

from source_layouts import _jsonl, jpeg, png


def _json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def math500_layout(root: Path):
    """MATH500's rows (subject, integer level, answer column) read by the ``math`` adapter."""
    rows = [
        {
            "problem": "Compute $\\dbinom{6}{3}$.",
            "solution": "$\\dbinom{6}{3} = \\boxed{20}$.",
            "answer": "20",
            "subject": "Counting & Probability",
            "level": 2,
            "unique_id": "test/counting_and_probability/7.json",
        },
        {
            "problem": "Solve $2x = 9$.",
            "solution": "So $x = \\boxed{\\frac{9}{2}}$.",
            "answer": "\\frac{9}{2}",
            "subject": "Algebra",
            "level": 1,
            "unique_id": "test/algebra/8.json",
        },
    ]
    return _jsonl(root / "math500_layout" / "test.jsonl", rows), {}, 2


def aime_2025_jsonl(root: Path):
    """The 30-row AIME 2025 JSONL uploads: no ``year`` column; the year is in the url, the id, or
    nowhere (then option ``year``)."""
    url = "https://artofproblemsolving.com/wiki/index.php/2025_AIME_I_Problems/Problem_{}"
    rows = [
        {
            "id": "0",
            "problem": "Find the number of ordered pairs with the stated property.",
            "answer": "117",
            "url": url.format(1),
        },
        {"id": "2025-II-4", "problem": "Find the remainder of the stated sum modulo 1000.", "answer": "106"},
        {"question": "Find the least such integer.", "answer": "33"},
    ]
    return _jsonl(root / "aime25" / "aime2025.jsonl", rows), {"options": {"year": "2025"}}, 3


def chartqa_raw(root: Path):
    """ChartQA's release: ``test/test_human.json`` (imgname, query, label as a string), charts in ``test/png/``."""
    split = root / "chartqa_raw" / "test"
    (split / "png").mkdir(parents=True, exist_ok=True)
    (split / "png" / "10.png").write_bytes(png(25))
    (split / "png" / "11.png").write_bytes(jpeg(26))
    (split / "annotations").mkdir(exist_ok=True)
    _json(split / "annotations" / "10.json", {"models": [], "type": "v_bar"})  # not rows: must not be read
    rows = [
        {"imgname": "10.png", "query": "What is the value of the tallest bar?", "label": "64"},
        {"imgname": "10.png", "query": "Which category is smallest?", "label": "Rail"},
        {"imgname": "11.png", "query": "In which year did the line peak?", "label": "2016"},
        {"imgname": "12.png", "query": "What is the sum of the two bars?", "label": "9"},  # no such chart
    ]
    return _json(split / "test_human.json", rows), {}, 3


def geometry3k_raw(root: Path):
    """Geometry3K's release: ``test/<id>/data.json`` + ``img_diagram.png`` (+ files that are not rows)."""
    split = root / "geometry3k_raw" / "test"
    problems = {
        "2401": {
            "problem_text": "Find x.",
            "choices": ["3", "6", "9", "12"],
            "answer": "B",
            "precise_value": [6.0],
            "rough_value": [6],
            "problem_type_graph": ["Triangle"],
        },
        "2402": {
            "problem_text": "Find the area of the parallelogram.",
            "choices": ["20", "24", "40", "48"],
            "answer": "D",
            "precise_value": [48.0],
            "rough_value": [48],
            "problem_type_graph": ["Parallelogram"],
        },
        "10": {
            "problem_text": "Find the measure of angle 1.",
            "choices": ["30", "45", "60", "90"],
            "answer": "A",
            "precise_value": [30.0],
            "rough_value": [30],
            "problem_type_graph": ["Line"],
        },
        "2403": {
            "problem_text": "Find y.",
            "choices": ["1", "2", "3", "4"],
            "answer": "E",
            "precise_value": [5.0],
            "rough_value": [5],
            "problem_type_graph": ["Triangle"],
        },
    }
    for i, (pid, data) in enumerate(problems.items()):
        folder = split / pid
        _json(folder / "data.json", {"id": int(pid), **data, "comment": "", "problem_type_goal": ["Length"]})
        _json(folder / "logic_form.json", {"text_logic_form": [], "dissolved_text_logic_form": []})
        (folder / "img_diagram.png").write_bytes(png(30 + i))
        (folder / "img_diagram_point.png").write_bytes(png(40 + i))
    return split, {}, 3


def scienceqa_raw(root: Path):
    """ScienceQA's release: ``problems.json`` (pid -> row with its split) beside ``pid_splits.json``;
    images under ``images/<split>/<pid>/image.png``. Option ``splits`` keeps the test rows."""
    base = root / "scienceqa_raw" / "data" / "scienceqa"
    common = {
        "task": "closed choice",
        "grade": "grade5",
        "subject": "natural science",
        "topic": "physics",
        "category": "Velocity",
        "skill": "Compare speeds",
        "lecture": "",
        "solution": "",
        "hint": "",
    }
    problems = {
        "7": {
            **common,
            "question": "Which ball is moving fastest?",
            "choices": ["ball 1", "ball 2", "ball 3"],
            "answer": 2,
            "image": "image.png",
            "split": "test",
        },
        "8": {
            **common,
            "question": "Which word names a tool?",
            "choices": ["hammer", "river"],
            "answer": 0,
            "image": None,
            "split": "test",
        },
        "9": {
            **common,
            "question": "Which object is heavier?",
            "choices": ["a brick", "a feather"],
            "answer": 0,
            "image": "image.png",
            "split": "train",
        },
        "12": {
            **common,
            "question": "Which magnet pulls harder?",
            "choices": ["left", "right"],
            "answer": 1,
            "image": "image.png",
            "split": "test",
        },  # its image folder is missing
    }
    (base / "images" / "test" / "7").mkdir(parents=True, exist_ok=True)
    (base / "images" / "test" / "7" / "image.png").write_bytes(png(50))
    (base / "images" / "train" / "9").mkdir(parents=True, exist_ok=True)
    (base / "images" / "train" / "9" / "image.png").write_bytes(png(51))
    _json(base / "pid_splits.json", {"train": ["9"], "test": ["7", "8", "12"]})
    return _json(base / "problems.json", problems), {"options": {"splits": ["test"]}}, 2


def logicvista(root: Path):
    """LogicVista's release: ``data/dataset.json`` (id -> imagename, question with its options,
    answer letters) and ``data/images/``."""
    data = root / "logicvista" / "data"
    (data / "images").mkdir(parents=True, exist_ok=True)
    (data / "images" / "1.png").write_bytes(png(60))
    (data / "images" / "2.png").write_bytes(png(61))
    rows = {
        "1": {
            "imagename": "1.png",
            "question": "Which figure completes the pattern?\nChoices:\nA. 1\nB. 2\nC. 3\nD. 4",
            "answer": "C",
            "reasoning": "...",
            "skill": ["inductive"],
            "broad_capability": ["patterns"],
        },
        "2": {
            "imagename": "2.png",
            "question": "Which two shapes are mirror images? Select all that apply.",
            "answer": "A, C",
            "reasoning": "...",
            "skill": ["spatial"],
            "broad_capability": ["3d shapes"],
        },
        "3": {
            "imagename": "2.png",
            "question": "Which gear turns clockwise?",
            "answer": "the left one",
            "reasoning": "...",
            "skill": ["mechanical"],
            "broad_capability": ["physics"],
        },
    }
    return _json(data / "dataset.json", rows), {}, 2


# fixture name -> (adapter, writer)
RELEASES = {
    "math500_layout": ("math", math500_layout),
    "aime25": ("aime", aime_2025_jsonl),
    "chartqa_raw": ("chartqa", chartqa_raw),
    "geometry3k_raw": ("geometry3k", geometry3k_raw),
    "scienceqa_raw": ("scienceqa", scienceqa_raw),
    "logicvista": ("logicvista", logicvista),
}
