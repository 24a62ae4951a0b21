"""``recipes/ovr-7b.yaml``'s sources: a non-empty plan for every split the pipeline trains on, and each
training source's adapter reading a row laid out as its hub dataset card documents it (columns as
published; no download here). An empty data config is refused before any stage runs."""

from __future__ import annotations

import pytest
from PIL import Image

from ovr.config import load_config
from ovr.data.plan import DatasetPlanError, dataset_plan
from ovr.data.registry import RowContext, get_adapter

IMAGE = Image.new("RGB", (28, 28), "white")
#: source name -> one row in its hub layout (the dataset card's features)
ROWS = {
    "openr1_math": {
        "problem": "Find $2+3$.",
        "solution": "5",
        "answer": "5",
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "source": "olympiads",
        "uuid": "u1",
        "is_reasoning_complete": [True],
        "generations": ["<think>2+3=5. Wait, let me recheck: 5.</think> \\boxed{5}"],
        "correctness_math_verify": [True],
        "correctness_llama": [None],
        "finish_reasons": ["stop"],
        "correctness_count": 1,
        "messages": [],
    },
    "numina_math": {
        "problem": "Compute $6 \\cdot 7$.",
        "solution": "$6 \\cdot 7 = \\boxed{42}$",
        "answer": "42",
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "problem_is_valid": "Yes",
        "solution_is_valid": "Yes",
        "source": "amc_aime",
        "synthetic": False,
    },
    "math": {"problem": "What is $1+1$?", "level": "Level 1", "type": "Prealgebra", "solution": "$\\boxed{2}$"},
    "aime_1983_2023": {
        "ID": "1983-1",
        "Year": 1983,
        "Problem Number": 1,
        "Question": "Let $x$, $y$ and $z$ all exceed $1$ ...",
        "Answer": "60",
        "Part": None,
    },
    "geometry3k": {
        "images": [IMAGE],
        "problem": "<image>Find x.",
        "answer": "3",
        "id": 1,
        "choices": ["3", "4", "5", "6"],
        "ground_truth": "A",
    },
    "geoqa_plus": {"images": [IMAGE], "problem": "<image>As shown in the figure, find the angle.", "answer": "40"},
    "chartqa": {"image": IMAGE, "query": "What is the highest value?", "label": ["77"], "human_or_machine": 0},
    "scienceqa": {
        "image": IMAGE,
        "question": "Which animal's feet are also adapted for swimming?",
        "choices": ["duck", "cat"],
        "answer": 0,
        "hint": "",
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "biology",
        "category": "Adaptations",
        "skill": "Animal adaptations",
        "lecture": "",
        "solution": "",
    },
}
ROWS["openr1_math_extended"] = ROWS["openr1_math"]
ROWS["math_rl"] = ROWS["math"]
ROWS["numina_math_rl"] = ROWS["numina_math"]


@pytest.fixture(scope="module")
def recipe(repo_root):
    return load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)


def test_the_7b_recipe_plans_every_split_from_public_sources(recipe):
    plan = dataset_plan(recipe)
    counts = {split: len(plan.split(split)) for split in ("sft", "rl", "eval")}
    assert counts["sft"] >= 3 and counts["rl"] >= 6 and counts["eval"] == len(recipe.eval.benchmarks)
    assert all(s.path.startswith(("hf://datasets/", "s3://")) for s in plan.sources)
    modal = {s.name for s in plan.split("rl")}
    assert {"geometry3k", "geoqa_plus", "chartqa", "scienceqa", "aime_1983_2023"} <= modal
    assert set(ROWS) == {s.name for s in plan.sources if s.split != "eval"}  # every training source is read below


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_training_source_reads_its_hub_layout(recipe, name):
    (src,) = [s for s in recipe.data.sources if s.name == name]
    ctx = RowContext(name, src.split, 0, src.path, None, recipe.data.prompt_template, src.options)
    sample = get_adapter(src.adapter)(ROWS[name], ctx)
    assert sample.answer and sample.split == src.split
    assert bool(sample.messages and sample.messages[-1].role == "assistant") == (src.split == "sft")
    if src.name in {"geometry3k", "geoqa_plus", "chartqa", "scienceqa"}:
        assert sample.images


def test_aime_up_to_2023_only(recipe):
    """The RL set keeps AIME up to 2023: 2024 and 2025 are benchmarks (aime24, aime25)."""
    from ovr.data.registry import Drop

    (src,) = [s for s in recipe.data.sources if s.name == "aime_1983_2023"]
    ctx = RowContext(src.name, "rl", 0, options=src.options)
    assert get_adapter("aime")(ROWS["aime_1983_2023"], ctx).subject == "AIME 1983"
    with pytest.raises(Drop, match="after 2023"):
        get_adapter("aime")({**ROWS["aime_1983_2023"], "Year": 2024, "ID": "2024-II-1"}, ctx)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.sources=[]"], "data.sources of 'ovr-7b' is empty"),
        (["data.sources=[{adapter: geometry3k, path: hf://datasets/hiyouga/geometry3k}]"], "split.*sft"),
        (["data.sources=[{adapter: nope, path: x, split: sft}]"], "unknown adapter 'nope'"),
        (["eval.benchmarks=[math500, olympiadbench]"], r"\['olympiadbench'\] have no eval source"),
    ],
)
def test_a_data_config_that_cannot_work_is_refused_naming_the_fix(repo_root, overrides, message):
    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", overrides, use_env=False)
    with pytest.raises(DatasetPlanError, match=message):
        dataset_plan(cfg)
