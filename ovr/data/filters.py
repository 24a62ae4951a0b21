"""Filters of a build: verifiability, exact and near duplicates, eval decontamination, pass-rate band.

Each filter is a pure function ``(samples, ...) -> (kept, dropped)`` where ``dropped`` is a list of
``(sample, reason)``; input order is kept, so results are deterministic. Items compare by their bare
question (template text and image marks removed, case and punctuation folded) plus their image hashes.

Procedural items (``provenance["generator"]`` set) are exempt from dedup: their templated questions
are near-duplicates by design and repeats at low difficulty are intended practice. They are still
decontaminated, by exact question + image match (their n-grams are shared by construction).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ovr.data.index import EvalIndex, ExactIndex, NearDupIndex, band_keys, exact_key
from ovr.data.prompts import DEFAULT_TEMPLATE, bare_question
from ovr.schema import Sample, ScoreItem

Dropped = list[tuple[Sample, str]]
_NON_WORD = re.compile(r"[^\w]+")


def is_procedural(sample: Sample) -> bool:
    return "generator" in sample.provenance


def question_words(sample: Sample, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """Lower-cased word tokens of the bare question."""
    return _NON_WORD.sub(" ", bare_question(sample.prompt, template).lower()).split()


def item_key(sample: Sample, template: str = DEFAULT_TEMPLATE) -> tuple[str, tuple[str, ...]]:
    """Identity of an item for exact dedup: folded question words + image hashes."""
    return " ".join(question_words(sample, template)), _images(sample)


def _images(sample: Sample) -> tuple[str, ...]:
    return tuple(i.sha256 or "" for i in sample.images)


# --------------------------------------------------------------------------- verifiability
def verification_problem(sample: Sample, reward: str = "ovr_boxed") -> str | None:
    """Why the reward functions cannot check this item, or None when they can.

    The rule grader must read a ``math`` or ``number`` reference (:func:`ovr.rewards.grading.reference_problem`),
    the reference must score 1 against itself when boxed (so an answer exists that the reward accepts),
    and an SFT trace must end in an answer the reward accepts for that reference. Eval items are
    never unverifiable: :func:`drop_unverifiable` keeps them all (see there).
    """
    from ovr.rewards import score_item
    from ovr.rewards.grading import reference_problem

    def accepts(response: str) -> bool:
        item = ScoreItem(
            response=response,
            reference=sample.answer,
            answer_type=sample.answer_type,
            choices=sample.choices,
            reward=reward,
        )
        return score_item(item).accuracy == 1.0

    if not sample.answer.strip():
        return "empty reference answer"
    if sample.answer_type in ("math", "number"):
        problem = reference_problem(sample.answer, sample.answer_type, sample.choices)
        if problem:
            return problem
    if not accepts(f"\\boxed{{{sample.answer}}}"):
        return "reference not checkable by the reward"
    if sample.messages:
        trace = next((m.content for m in reversed(sample.messages) if m.role == "assistant"), None)
        if trace is None:
            return "conversation has no assistant turn"
        if not accepts(trace):
            return "trace's final answer does not match the reference"
    return None


def _light(sample: Sample) -> Sample:
    """The sample without its image bytes (what verification needs, cheap to send to a worker)."""
    return sample.model_copy(update={"images": [], "modality": "text"}) if sample.images else sample


def _problems(batch: list[Sample], reward: str) -> list[str | None]:
    return [None if s.split == "eval" else verification_problem(s, reward) for s in batch]


def drop_unverifiable(
    samples: Iterable[Sample],
    reward: str = "ovr_boxed",
    workers: int = 1,
    chunk: int = 256,
    progress: Callable[[int], object] | None = None,
) -> tuple[list[Sample], Dropped]:
    """Split items into checkable ones and ``(item, reason)``; with ``workers > 1`` the checks
    (math-verify parsing dominates: ~5-20 ms per LaTeX answer) run in that many processes.
    ``progress(n)`` is called as each batch of ``n`` items is done.

    Eval-split items are all kept, whatever their answer form: a benchmark whose denominator
    shrinks is not comparable with its published numbers. Items the rule grader cannot read are
    graded by normalised string match or the eval's LLM judge, and counted per grading path
    (:mod:`ovr.rewards.grading`). Training items keep being dropped with their reason."""
    samples = list(samples)
    batches = [samples[i : i + chunk] for i in range(0, len(samples), chunk)]
    problems: list[str | None] = []
    if workers <= 1 or len(batches) <= 1:
        results = (_problems(b, reward) for b in batches)
        pool = None
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(partial(_problems, reward=reward), [[_light(s) for s in b] for b in batches])
    try:
        for part in results:
            problems += part
            if progress:
                progress(len(part))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    kept, dropped = [], []
    for s, problem in zip(samples, problems):
        (dropped.append((s, problem)) if problem else kept.append(s))
    return kept, dropped


# --------------------------------------------------------------------------- duplicates
def drop_exact_duplicates(samples: Iterable[Sample], template: str = DEFAULT_TEMPLATE) -> tuple[list[Sample], Dropped]:
    """Keep the first of items with the same folded question and images."""
    index = ExactIndex()
    kept, dropped = [], []
    for s in samples:
        if is_procedural(s) or index.add(exact_key(question_words(s, template), _images(s))):
            kept.append(s)
        else:
            dropped.append((s, "exact duplicate"))
    return kept, dropped


def drop_near_duplicates(
    samples: Iterable[Sample], threshold: float, template: str = DEFAULT_TEMPLATE, num_perm: int = 128, seed: int = 1
) -> tuple[list[Sample], Dropped]:
    """Keep the first of items whose word-3-gram Jaccard similarity is >= ``threshold`` (and whose
    images are identical). Candidates come from MinHash LSH bands (datasketch's MinHash and band
    shape); each candidate pair is confirmed with the exact Jaccard, so the LSH only saves time, it
    never decides."""
    index = NearDupIndex(threshold, num_perm)
    kept, dropped = [], []
    for s in samples:
        if is_procedural(s):
            kept.append(s)
            continue
        words, images = question_words(s, template), _images(s)
        if index.check_add(words, images, band_keys(words, images, threshold, num_perm, seed)):
            dropped.append((s, "near duplicate"))
        else:
            kept.append(s)
    return kept, dropped


# --------------------------------------------------------------------------- decontamination
def eval_index(eval_samples: Iterable[Sample], n: int | None, template: str = DEFAULT_TEMPLATE) -> EvalIndex:
    """The index :func:`decontaminate` checks training items against."""
    return EvalIndex.build(((question_words(e, template), _images(e)) for e in eval_samples), n)


def decontaminate(
    samples: Iterable[Sample], eval_samples: list[Sample], n: int | None, template: str = DEFAULT_TEMPLATE
) -> tuple[list[Sample], Dropped]:
    """Drop training items that match an eval item: same question+images, a shared image, or (for
    source items, when ``n`` is set) a shared word ``n``-gram of the question."""
    index = eval_index(eval_samples, n, template)
    kept, dropped = [], []
    for s in samples:
        reason = index.reason(question_words(s, template), _images(s), is_procedural(s))
        (dropped.append((s, reason)) if reason else kept.append(s))
    return kept, dropped


# --------------------------------------------------------------------------- difficulty
def pass_rate_problem(sample: Sample, band: tuple[float, float] | None) -> str | None:
    """Why the item's measured pass rate is outside ``band`` (unmeasured items pass), or None."""
    if band is None or sample.pass_rate is None or band[0] <= sample.pass_rate <= band[1]:
        return None
    return f"pass rate {sample.pass_rate:.3f} outside [{band[0]}, {band[1]}]"


def pass_rate_band(samples: Iterable[Sample], band: tuple[float, float] | None) -> tuple[list[Sample], Dropped]:
    """Keep items whose measured pass rate lies in ``[lo, hi]``; unmeasured items are kept."""
    kept, dropped = [], []
    for s in samples:
        problem = pass_rate_problem(s, band)
        (dropped.append((s, problem)) if problem else kept.append(s))
    return kept, dropped
