"""The published benchmarks ovr knows: their published eval-set sizes (the denominators a score must
have to be comparable), their own metric, their VLMEvalKit dataset name and the OVR paper's numbers.

A benchmark is named as in the recipes (``recipes/eval-suite.yaml``): the eval source's name, or the
name several sources are mapped to with ``eval.benchmark_ids`` (DynaMath's ten variant splits ->
``dynamath``). Names ovr does not know are scored by plain accuracy with an unknown published size.

Every published size below was checked against the benchmark's own dataset card or release notes
(the comment beside it says where); a size that could not be confirmed is ``None`` (unknown).

>>> info("mathverse_vision_only").published, info("dynamath").metric, info("my_benchmark").published
(788, 'dynamath', None)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """What ovr knows about one published benchmark."""

    name: str  # as the recipes name it
    title: str  # VLMEvalKit's dataset name (used in the results file names)
    published: int | None  # items of the published eval set; None = unknown
    metric: str = "accuracy"  # accuracy | mathverse | wemath | dynamath (ovr.eval.leaderboard)
    paper: str | None = None  # column of the OVR paper's table (PAPER)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        # HuggingFaceH4/MATH-500 (test.jsonl): "500 problems from the MATH-500 dataset" (rasbt/
        # math_full_minus_math500 card); evalscope's MATH-500 page: total samples 500.
        Benchmark("math500", "MATH500", 500, paper="MATH500"),
        # HuggingFaceH4/aime_2024 card: "30 problems from the 2024 AIME I and AIME II tests", num_examples 30.
        Benchmark("aime24", "AIME24", 30, paper="AIME24"),
        # AIME 2025 I + II, 15 problems each: 30 (minyichen/AIME2025 card num_examples 30; OpenReward's
        # AIME2025 environment: "30 tasks ... 15 problems from AIME I 2025, 15 from AIME II 2025").
        Benchmark("aime25", "AIME25", 30, paper="AIME25"),
        # MathLLMs/MathVision card: splits test num_examples 3040, testmini num_examples 304.
        Benchmark("mathvision", "MathVision", 3040, paper="MathVision"),
        Benchmark("mathvision_testmini", "MathVision_MINI", 304),
        # AI4Math/MathVerse card: testmini num_examples 3940 (788 problems x 5 versions with images);
        # the hub viewer lists testmini_text_only with 788 rows; evalscope's MathVerse page: 788 per version.
        Benchmark("mathverse", "MathVerse_MINI", 3940, "mathverse"),
        Benchmark("mathverse_vision_only", "MathVerse_MINI_Vision_Only", 788, "mathverse", paper="MathVerse"),
        Benchmark("mathverse_text_only", "MathVerse_MINI_Text_Only", 788, "mathverse"),
        # AI4Math/MathVista card: "testmini: 1,000 examples" (test: 5,141, labels not released).
        Benchmark("mathvista", "MathVista_MINI", 1000, paper="MathVista"),
        # We-Math testmini: 1,740 = 1,215 one-step + 360 two-step + 165 three-step problems (We-Math's
        # benchmark page); We-Math's own scorer divides by the 525 (= 360 + 165) composite problems.
        Benchmark("wemath", "WeMath", 1740, "wemath", paper="WeMath"),
        # DynaMath/DynaMath_Sample card: "5,010 generated concrete questions (10 variations per seed
        # question)"; ten splits sample_variant1..10 of 501 rows each.
        Benchmark("dynamath", "DynaMath", 5010, "dynamath", paper="DynaMath"),
        # LogicVista data/README.md: "448 visual multiple-choice questions".
        Benchmark("logicvista", "LogicVista", 448, paper="LogicVista"),
        # Not confirmed against their cards here, so unknown: AMC (AI-MO/aimo-validation-amc), GSM8K test.
        Benchmark("amc", "AMC", None),
        Benchmark("gsm8k", "GSM8K", None),
    ]
}

#: The OVR paper's results (%), Open-Vision-Reasoner-7B after RL and its base Qwen2.5-VL-7B; None = not reported.
PAPER: dict[str, dict[str, float | None]] = {
    "OVR-7B (RL)": {
        "MATH500": 95.3,
        "AIME24": 63.5,
        "AIME25": 52.1,
        "MathVista": 72.1,
        "MathVision": 51.8,
        "MathVerse": 54.6,
        "DynaMath": 33.5,
        "WeMath": 44.6,
        "LogicVista": 54.8,
    },
    "Qwen2.5-VL-7B": {"MATH500": 67.4, "MathVista": 69.2, "MathVision": 25.5, "MathVerse": 41.1},
}


def info(name: str) -> Benchmark:
    """The benchmark named ``name``; an unknown name gets plain accuracy and no published size."""
    return BENCHMARKS.get(name) or Benchmark(name, name, None)


def benchmark_of(source: str, mapping: dict[str, str]) -> str:
    """The benchmark an eval source belongs to (``eval.benchmark_ids``, else the source itself)."""
    return mapping.get(source, source)


def paper_scores(name: str) -> dict[str, float | None]:
    """The paper's number for benchmark ``name`` per reference model (None where not reported)."""
    column = info(name).paper
    return {model: (scores.get(column) if column else None) for model, scores in PAPER.items()}
