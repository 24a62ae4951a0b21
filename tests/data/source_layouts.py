"""Small source files written in each public dataset's own column layout (as published on the Hub),
saved the way users get them: ``datasets.save_to_disk`` folders, parquet exports (image columns as
``{bytes, path}`` structs), and JSONL with image files beside it. Each writer returns
``(path, source_fields, expected_good_rows)`` where ``source_fields`` are extra DataSourceConfig
fields (``options``, ``hf_split``); some plant a corrupt or unverifiable row on purpose. The rows are
written here from the published schemas (no benchmark text is copied).

The authors' own release layouts (folders per problem, JSON beside image folders) are in
``release_layouts.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw


def png(seed: int, size: int = 48) -> bytes:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([seed % 20, 5, 20 + seed % 20, 30], fill=(seed * 37 % 255, 80, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(seed))).save(buf, format="JPEG")
    return buf.getvalue()


IMG_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def _jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- text sources
def openr1_math(root: Path):
    base = {
        "solution": "…",
        "problem_type": "Algebra",
        "source": "olympiads",
        "correctness_llama": None,
        "finish_reasons": None,
        "correctness_count": 1,
        "messages": [],
    }
    rows = [
        {
            **base,
            "problem": "Compute $2+3$.",
            "answer": "5",
            "question_type": "math-word-problem",
            "uuid": "u1",
            "generations": ["<think>2+3=6? wait</think> \\boxed{6}", "<think>2+3=5</think> So \\boxed{5}"],
            "correctness_math_verify": [False, True],
            "is_reasoning_complete": [True, True],
        },
        {
            **base,
            "problem": "Prove that $n^2 \\ge 0$.",
            "answer": "proof",
            "question_type": "proof",
            "uuid": "u2",
            "generations": ["..."],
            "correctness_math_verify": [False],
            "is_reasoning_complete": [True],
        },
        {
            **base,
            "problem": "Solve $x+1=3$.",
            "answer": "2",
            "question_type": "math-word-problem",
            "uuid": "u3",
            "generations": ["x = \\boxed{3}"],
            "correctness_math_verify": [False],
            "is_reasoning_complete": [True],
        },
        {
            **base,
            "problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?",
            "answer": "\\frac{3}{4}",
            "question_type": "math-word-problem",
            "uuid": "u4",
            "generations": ["sum is \\boxed{\\frac34}"],
            "correctness_math_verify": [True],
            "is_reasoning_complete": [True],
        },
    ]
    return _parquet(root / "openr1" / "data" / "default-00000-of-00001.parquet", rows).parent.parent, {}, 2


def hendrycks_math(root: Path):
    rows = [
        {"problem": "What is $1+1$?", "level": "Level 1", "type": "Prealgebra", "solution": "$1+1=\\boxed{2}$."},
        {
            "problem": "Simplify $\\sqrt{8}$.",
            "level": "Level 2",
            "type": "Algebra",
            "solution": "$\\sqrt{8} = \\boxed{2\\sqrt{2}}$.",
        },
        {"problem": "Show the sum is even.", "level": "Level 5", "type": "Number Theory", "solution": "No box."},
    ]
    return _parquet(root / "math" / "train.parquet", rows), {}, 2


def numina_math(root: Path):
    rows = [
        {
            "source": "amc_aime",
            "problem": "Find $3 \\cdot 4$. Put your final answer within \\boxed{}.",
            "solution": "$3\\cdot4 = \\boxed{12}$",
            "messages": [{"content": "q", "role": "user"}],
        },
        {
            "source": "cn_k12",
            "problem": "Find $10-7$.",
            "solution": "It is $\\boxed{3}$.",
            "messages": [{"content": "q", "role": "user"}],
        },
    ]
    return _parquet(root / "numina" / "data" / "train-00000-of-00001.parquet", rows), {}, 2


# --------------------------------------------------------------------------- multimodal RL sources
def geometry3k(root: Path):
    from datasets import Dataset, Features, Sequence, Value
    from datasets import Image as HFImage

    feats = Features({"images": Sequence(HFImage()), "problem": Value("string"), "answer": Value("string")})
    ds = Dataset.from_dict(
        {
            "images": [[{"bytes": png(1), "path": None}], [{"bytes": png(2), "path": None}], []],
            "problem": ["<image>Find x.", "<image>Find the area of the triangle.", "<image>Find y."],
            "answer": ["3", "24\\sqrt{3}", "5"],
        },
        features=feats,
    )
    path = root / "geometry3k"
    ds.save_to_disk(str(path))
    return path, {}, 2


def chartqa(root: Path):
    schema = pa.schema(
        [
            ("image", IMG_STRUCT),
            ("query", pa.string()),
            ("label", pa.list_(pa.string())),
            ("human_or_machine", pa.int64()),
        ]
    )
    rows = [
        {
            "image": {"bytes": png(3), "path": "a.png"},
            "query": "What is the highest value?",
            "label": ["42"],
            "human_or_machine": 0,
        },
        {
            "image": {"bytes": jpeg(4), "path": "b.jpg"},
            "query": "Which year had the lowest sales?",
            "label": ["2019"],
            "human_or_machine": 1,
        },
        {
            "image": {"bytes": png(5), "path": "c.png"},
            "query": "Is the line rising?",
            "label": ["Yes"],
            "human_or_machine": 0,
        },
    ]
    return _parquet(root / "chartqa" / "test-00000-of-00001.parquet", rows, schema), {}, 3


def scienceqa(root: Path):
    schema = pa.schema(
        [
            ("image", IMG_STRUCT),
            ("question", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("answer", pa.int8()),
            ("hint", pa.string()),
            ("task", pa.string()),
            ("grade", pa.string()),
            ("subject", pa.string()),
            ("topic", pa.string()),
            ("category", pa.string()),
            ("skill", pa.string()),
            ("lecture", pa.string()),
            ("solution", pa.string()),
        ]
    )
    common = {
        "task": "closed choice",
        "grade": "grade4",
        "subject": "natural science",
        "topic": "geography",
        "category": "Geography",
        "skill": "Identify oceans",
        "lecture": "",
        "solution": "",
    }
    rows = [
        {
            **common,
            "image": {"bytes": png(6), "path": None},
            "question": "Which ocean is highlighted?",
            "choices": ["the Indian Ocean", "the Pacific Ocean"],
            "answer": 1,
            "hint": "",
        },
        {
            **common,
            "image": None,
            "question": "Which word rhymes with cat?",
            "choices": ["hat", "dog", "sun"],
            "answer": 0,
            "hint": "Rhymes end in the same sound.",
        },
        {**common, "image": None, "question": "Broken row", "choices": ["a", "b"], "answer": 7, "hint": ""},
    ]
    return _parquet(root / "scienceqa" / "train-00000-of-00001.parquet", rows, schema), {}, 2


# --------------------------------------------------------------------------- eval sets
def math500(root: Path):
    rows = [
        {
            "problem": "Compute $\\dbinom{5}{2}$.",
            "solution": "...",
            "answer": "10",
            "subject": "Counting & Probability",
            "level": 2,
            "unique_id": "test/counting_and_probability/1.json",
        },
        {
            "problem": "Find all $x$ with $x^2=4$.",
            "solution": "...",
            "answer": "-2, 2",
            "subject": "Algebra",
            "level": 1,
            "unique_id": "test/algebra/2.json",
        },
        '{"problem": "truncated line',
    ]
    return _jsonl(root / "math500" / "test.jsonl", rows), {}, 2


def aime(root: Path):
    rows = [
        {
            "id": 60,
            "problem": "Find the remainder when $2^{10}$ is divided by $1000$.",
            "solution": "...",
            "answer": 24,
            "url": "https://example.org/aime/1",
            "year": "2024",
        },
        {
            "id": 61,
            "problem": "How many integers satisfy the condition?",
            "solution": "...",
            "answer": 204,
            "url": "https://example.org/aime/2",
            "year": "2024",
        },
    ]
    return _parquet(root / "aime24" / "train-00000-of-00001.parquet", rows), {}, 2


def mathvision(root: Path):
    (root / "mathvision" / "images").mkdir(parents=True, exist_ok=True)
    (root / "mathvision" / "images" / "1.jpg").write_bytes(jpeg(7))
    (root / "mathvision" / "images" / "2.png").write_bytes(png(8))
    (root / "mathvision" / "images" / "4.png").write_bytes(png(14))
    rows = [
        {
            "id": "1",
            "question": "Which shape comes next?\n<image1>",
            "options": ["A", "B", "C", "D", "E"],
            "image": "images/1.jpg",
            "answer": "C",
            "solution": None,
            "level": 2,
            "subject": "logic",
        },
        {
            "id": "2",
            "question": "<image1>\nHow many dots are there?",
            "options": [],
            "image": "images/2.png",
            "answer": "7",
            "solution": None,
            "level": 1,
            "subject": "counting",
        },
        {
            "id": "3",
            "question": "<image1> missing file",
            "options": [],
            "image": "images/404.png",
            "answer": "1",
            "solution": None,
            "level": 1,
            "subject": "counting",
        },
        # one combined image for several marks (about a tenth of the real test set)
        {
            "id": "4",
            "question": "The tile <image1> is turned. Which picture shows it?\n<image2>\n<image3>\n<image4>",
            "options": ["A", "B", "C", "D", "E"],
            "image": "images/4.png",
            "answer": "B",
            "solution": None,
            "level": 3,
            "subject": "transformation geometry",
        },
        {
            "id": "5",
            "question": "<image1>\n<image2>\nHow many squares are shaded in both figures together?",
            "options": [],
            "image": "images/4.png",
            "answer": "9",
            "solution": None,
            "level": 2,
            "subject": "counting",
        },
    ]
    return _jsonl(root / "mathvision" / "test.jsonl", rows), {}, 4


def _mathverse_features(image_feature):
    from datasets import Features, Value

    return Features(
        {
            "sample_index": Value("string"),
            "problem_index": Value("string"),
            "problem_version": Value("string"),
            "question": Value("string"),
            "image": image_feature,
            "answer": Value("string"),
            "question_type": Value("string"),
            "metadata": {
                "split": Value("string"),
                "source": Value("string"),
                "subject": Value("string"),
                "subfield": Value("string"),
            },
            "query_wo": Value("string"),
            "query_cot": Value("string"),
            "question_for_eval": Value("string"),
        }
    )


def _mathverse_rows(rows: list[tuple]) -> dict:
    """(sample_index, problem_index, version, question, image, answer, question_type) -> columns."""
    meta = {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"}
    keys = ["sample_index", "problem_index", "problem_version", "question", "image", "answer", "question_type"]
    data = {k: [r[i] for r in rows] for i, k in enumerate(keys)}
    n = len(rows)
    return {
        **data,
        "metadata": [meta] * n,
        "query_wo": ["..."] * n,
        "query_cot": ["..."] * n,
        "question_for_eval": ["..."] * n,
    }


def mathverse(root: Path):
    from datasets import Dataset, DatasetDict
    from datasets import Image as HFImage

    img = lambda seed: {"bytes": png(seed), "path": None}  # noqa: E731
    rows = [
        (
            "1",
            "1",
            "Text Dominant",
            "As shown in the figure, AB is parallel to CD, angle 1 = 50. Find angle 2.\n"
            "Choices:\nA:40°\nB:50°\nC:130°\nD:140°",
            img(9),
            "C",
            "multi-choice",
        ),
        ("2", "1", "Vision Only", "", img(9), "C", "multi-choice"),
        ("3", "2", "Text Lite", "Find the length of AC.", img(10), "5", "free-form"),
        # answers as the release writes them: (C), several letters, True/False, a bearing
        (
            "4",
            "3",
            "Vision Intensive",
            "Which angle is acute?\nChoices:\n(A) angle 1\n(B) angle 2\n(C) angle 3",
            img(15),
            "(C)",
            "multi-choice",
        ),
        ("5", "4", "Vision Only", "", img(16), "A\nC", "multi-choice"),
        ("6", "5", "Text Lite", "Give the bearing of T from the port.", img(17), "090^\\circ T", "free-form"),
        (
            "7",
            "6",
            "Vision Dominant",
            "Is line a parallel to line b?\nChoices:\nA:True\nB:False",
            img(18),
            "False",
            "multi-choice",
        ),
    ]
    path = root / "mathverse"
    ds = Dataset.from_dict(_mathverse_rows(rows), features=_mathverse_features(HFImage()))
    DatasetDict({"testmini": ds}).save_to_disk(str(path))
    return path, {}, 7


def mathverse_text_only(root: Path):
    """The ``testmini_text_only`` configuration: ``image`` is a string column holding ``""``."""
    from datasets import Dataset, DatasetDict, Value

    rows = [
        (
            "3941",
            "1",
            "Text Only",
            "In triangle ABC, angle A = 30 and angle B = 60. Find angle C.\nChoices:\nA:60\nB:90\nC:120\nD:150",
            "",
            "(B)",
            "multi-choice",
        ),
        ("3942", "2", "Text Only", "Two lines with equal slopes never meet. True or False?", "", "True", "free-form"),
        ("3943", "3", "Text Only", "A square has side 3. Find its area.", "", "9", "free-form"),
        ("3944", "4", "Text Only", "", "", "1", "free-form"),  # no text and no image: nothing to ask
    ]
    path = root / "mathverse_text_only"
    ds = Dataset.from_dict(_mathverse_rows(rows), features=_mathverse_features(Value("string")))
    DatasetDict({"testmini": ds, "extra": ds.select([0])}).save_to_disk(str(path))
    return path, {"hf_split": "testmini"}, 3


def mathvista(root: Path):
    from datasets import Dataset, Features, Sequence, Value
    from datasets import Image as HFImage

    feats = Features(
        {
            "pid": Value("string"),
            "question": Value("string"),
            "image": Value("string"),
            "decoded_image": HFImage(),
            "choices": Sequence(Value("string")),
            "unit": Value("string"),
            "precision": Value("float64"),
            "answer": Value("string"),
            "question_type": Value("string"),
            "answer_type": Value("string"),
            "metadata": {"task": Value("string"), "context": Value("string")},
            "query": Value("string"),
        }
    )
    data = {
        "pid": ["1", "2", "3"],
        "question": [
            "When a spring does work on an object, which is larger?",
            "What is the length of the bar?",
            "Which option is right?",
        ],
        "image": ["images/1.jpg", "images/2.jpg", "images/3.jpg"],
        "decoded_image": [
            {"bytes": jpeg(11), "path": None},
            {"bytes": png(12), "path": None},
            {"bytes": png(13), "path": None},
        ],
        "choices": [["object A", "object B"], None, ["yes", "no"]],
        "unit": [None, "cm", None],
        "precision": [None, None, None],
        "answer": ["object B", "14", "maybe"],
        "question_type": ["multi_choice", "free_form", "multi_choice"],
        "answer_type": ["text", "integer", "text"],
        "metadata": [
            {"task": "textbook question answering", "context": "scientific figure"},
            {"task": "figure question answering", "context": "bar chart"},
            {"task": "figure question answering", "context": "bar chart"},
        ],
        "query": ["..."] * 3,
    }
    path = root / "mathvista"
    Dataset.from_dict(data, features=feats).save_to_disk(str(path))
    return path, {}, 2


def amc(root: Path):
    """AI-MO/aimo-validation-amc: answers stored as floats, negative or above 999."""
    url = "https://artofproblemsolving.com/wiki/index.php/{}_AMC_{}_Problems/Problem_{}"
    rows = [
        {"id": 0, "problem": "What is $3^7 + 972$?", "answer": 3159.0, "url": url.format(2022, "12A", 4)},
        {
            "id": 1,
            "problem": "Find the smallest root of $x^2 + 10x - 24 = 0$.",
            "answer": -12.0,
            "url": url.format(2023, "10B", 7),
        },
        {
            "id": 2,
            "problem": "How many positive divisors does $2^{26}$ have?",
            "answer": 27.0,
            "url": url.format(2023, "12B", 12),
        },
        {"id": 3, "problem": "Which letter is shown?", "answer": float("nan"), "url": url.format(2022, "10A", 1)},
    ]
    return _parquet(root / "amc" / "data" / "train-00000-of-00001.parquet", rows), {}, 3


def gsm8k(root: Path):
    """openai/gsm8k ``main``: the answer ends in ``#### N`` after calculator notes."""
    rows = [
        {
            "question": "A farm has 48 hens and half as many ducks. How many birds are there?",
            "answer": "Ducks: 48/2 = <<48/2=24>>24.\nBirds: 48 + 24 = <<48+24=72>>72.\n#### 72",
        },
        {
            "question": "A school buys 617 books for $2 each. How much does it spend in cents?",
            "answer": "617 * 2 = <<617*2=1234>>1234 dollars is 123,400 cents.\n#### 123,400",
        },
        {"question": "A broken row", "answer": "The answer is 5."},
    ]
    return _parquet(root / "gsm8k" / "main" / "test-00000-of-00001.parquet", rows), {}, 2


def wemath(root: Path):
    """We-Math/We-Math testmini parquet: ``option`` is one string, ``image_path`` the image struct."""
    schema = pa.schema(
        [
            ("ID", pa.string()),
            ("split", pa.string()),
            ("knowledge concept", pa.string()),
            ("question", pa.string()),
            ("option", pa.string()),
            ("answer", pa.string()),
            ("image_path", IMG_STRUCT),
            ("key", pa.string()),
            ("question number", pa.int64()),
            ("knowledge concept description", pa.string()),
        ]
    )
    common = {"split": "testmini", "knowledge concept description": "..."}
    rows = [
        {
            **common,
            "ID": "1@3steps_1",
            "knowledge concept": "Angles",
            "question": "Find the angle marked x.",
            "option": "A. 30°; B. 60°; C. 90°; D. 120°; E. No correct answer",
            "answer": "B",
            "image_path": {"bytes": png(19), "path": "1.png"},
            "key": "1@3steps",
            "question number": 1,
        },
        {
            **common,
            "ID": "2@1step",
            "knowledge concept": "Area",
            "question": "Find the area of the rectangle.",
            "option": "A. 12; B. 14; C. 24; D. 28",
            "answer": "C",
            "image_path": {"bytes": png(20), "path": "2.png"},
            "key": "2@1step",
            "question number": 1,
        },
        {
            **common,
            "ID": "3@1step",
            "knowledge concept": "Area",
            "question": "Which is larger?",
            "option": "A. left; B. right",
            "answer": "F",
            "image_path": {"bytes": png(21), "path": "3.png"},
            "key": "3@1step",
            "question number": 1,
        },
    ]
    return _parquet(root / "wemath" / "testmini.parquet", rows, schema), {}, 2


def dynamath(root: Path):
    """DynaMath/DynaMath_Sample: one split per variant (``hf_split`` picks one)."""
    from datasets import Dataset, DatasetDict, Features, Value
    from datasets import Image as HFImage

    feats = Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "image": Value("string"),
            "decoded_image": HFImage(),
            "ground_truth": Value("string"),
            "answer_type": Value("string"),
            "subject": Value("string"),
            "knowledge_level": Value("string"),
        }
    )
    data = {
        "id": ["1", "2", "3"],
        "question": [
            "Which function is increasing on the interval shown?\nChoices:\n(A) f\n(B) g\n(C) h",
            "What is the slope of the line in the graph?",
            "What color is the largest bar?",
        ],
        "image": ["images/1.png", "images/2.png", "images/3.png"],
        "decoded_image": [
            {"bytes": png(22), "path": None},
            {"bytes": png(23), "path": None},
            {"bytes": png(24), "path": None},
        ],
        "ground_truth": ["B", "0.5", "red"],
        "answer_type": ["multiple choice", "float", "free form"],
        "subject": ["analytic geometry", "analytic geometry", "statistics"],
        "knowledge_level": ["high school", "high school", "elementary school"],
    }
    path = root / "dynamath"
    ds = Dataset.from_dict(data, features=feats)
    DatasetDict({"sample_variant1": ds, "sample_variant2": ds.select([0])}).save_to_disk(str(path))
    return path, {"hf_split": "sample_variant1"}, 3


WRITERS = {
    "openr1_math": openr1_math,
    "math": hendrycks_math,
    "numina_math": numina_math,
    "geometry3k": geometry3k,
    "chartqa": chartqa,
    "scienceqa": scienceqa,
    "math500": math500,
    "aime": aime,
    "mathvision": mathvision,
    "mathverse": mathverse,
    "mathvista": mathvista,
    "amc": amc,
    "gsm8k": gsm8k,
    "wemath": wemath,
    "dynamath": dynamath,
}
