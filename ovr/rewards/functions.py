"""The built-in rewards. Each is a pure function of a :class:`~ovr.schema.ScoreItem`.

Shared rules (in :func:`finish`): a truncated response gets accuracy 0 and format 0 (the paper) and
``overall = truncated_reward`` (default 0); otherwise ``overall = accuracy + format_weight * format``;
either way plus the optional DAPO overlong penalty;
ORZ reflection-word counts are reported in ``reflection`` and never rewarded.
Answers are graded by :func:`ovr.rewards.grading.grade`: the checker of ``item.answer_type`` (see
:mod:`ovr.rewards.checkers`) where it reads the reference, normalised string match where it cannot;
``ScoreResult.grading`` says which.
"""

from __future__ import annotations

import re

from ovr.rewards.extract import choice_answer, extract_answer, last_boxed, reflection_counts
from ovr.rewards.grading import grade
from ovr.rewards.options import RewardOptions
from ovr.rewards.registry import register
from ovr.schema import ScoreItem, ScoreResult


def overlong_penalty(response_tokens: int | None, max_tokens: int | None, opts: RewardOptions) -> float:
    """DAPO soft overlong punishment: 0 until ``max_tokens - buffer``, then linear down to
    ``-overlong_penalty`` at the limit; 0 when shaping is off or lengths are unknown.

    >>> overlong_penalty(90, 100, RewardOptions(overlong_buffer=20))
    -0.5
    """
    if opts.overlong_buffer is None or response_tokens is None or max_tokens is None:
        return 0.0
    excess = response_tokens - (max_tokens - opts.overlong_buffer)
    return -opts.overlong_penalty * min(max(excess / opts.overlong_buffer, 0.0), 1.0)


def finish(
    item: ScoreItem,
    opts: RewardOptions,
    extracted: str | None,
    accuracy: float,
    fmt: float,
    default_format_weight: float,
    grading: str | None = None,
) -> ScoreResult:
    """Assemble a result: truncation -> 0 accuracy and format, weighting, overlong shaping, reflection."""
    if item.truncated:
        accuracy, fmt = 0.0, 0.0
    weight = default_format_weight if opts.format_weight is None else opts.format_weight
    extra: dict[str, float] = {}
    overall = opts.truncated_reward if item.truncated else accuracy + weight * fmt
    if opts.overlong_buffer is not None:
        extra["overlong"] = overlong_penalty(item.response_tokens, item.max_tokens, opts)
        overall += extra["overlong"]
    return ScoreResult(
        overall=overall,
        accuracy=accuracy,
        format=fmt,
        extracted=extracted,
        grading=grading,
        extra=extra,
        reflection=reflection_counts(item.response, opts.reflection_words),
    )


def _graded(answer: str | None, item: ScoreItem, opts: RewardOptions) -> tuple[float, str]:
    """(accuracy, grading path) of ``answer`` for ``item``."""
    correct, path = grade(answer, item.reference, item.answer_type, item.choices, opts)
    return float(correct), path


@register("ovr_boxed")
def ovr_boxed(item: ScoreItem) -> ScoreResult:
    """The paper's reward: 1 iff the content of the last ``\\boxed{}`` matches the reference
    (for ``answer_type="choice"``: the same options, named by letter(s) or by option text, see
    :func:`ovr.rewards.checkers.check_choice`); truncated -> 0. ``format`` is 1 when a box is
    present (weight 0 unless ``options.format_weight`` is set).

    >>> ovr_boxed(ScoreItem(response=r"... so \\boxed{\\frac{1}{2}}", reference="0.5")).overall
    1.0
    >>> ovr_boxed(ScoreItem(response=r"\\boxed{(B)}", reference="B", answer_type="choice", choices=["1", "2"])).accuracy
    1.0
    >>> item = ScoreItem(response=r"\\boxed{C, A}", reference="A\\nC", answer_type="choice", choices=list("ABCD"))
    >>> ovr_boxed(item).accuracy
    1.0
    >>> ovr_boxed(ScoreItem(response=r"\\boxed{2}", reference="2", truncated=True)).overall
    0.0
    """
    opts = RewardOptions.model_validate(item.options)
    answer = last_boxed(item.response)
    if answer is not None and item.answer_type == "choice":
        answer = choice_answer(answer)
    accuracy, path = _graded(answer, item, opts)
    return finish(item, opts, answer, accuracy, float(answer is not None), 0.0, path)


@register("any_answer")
def any_answer(item: ScoreItem) -> ScoreResult:
    """Lenient accuracy for evaluation: the answer in any supported form (last box, answer tag,
    "the answer is ...", choice letters); ``format`` = an answer was found (weight 0 by default).

    >>> any_answer(ScoreItem(response="**Answer:** C", reference="C", answer_type="choice")).overall
    1.0
    """
    opts = RewardOptions.model_validate(item.options)
    answer = extract_answer(item.response, item.answer_type, answer_tag_name=opts.answer_tag)
    accuracy, path = _graded(answer, item, opts)
    return finish(item, opts, answer, accuracy, float(answer is not None), 0.0, path)


def _format_regex(opts: RewardOptions) -> re.Pattern[str]:
    t, a = re.escape(opts.think_tag), re.escape(opts.answer_tag)
    return re.compile(rf"\s*<{t}>(?:(?!</?{t}>).)*</{t}>\s*<{a}>(?:(?!</?{a}>).)*</{a}>\s*", re.DOTALL)


@register("think_answer")
def think_answer(item: ScoreItem) -> ScoreResult:
    """Format-aware reward: ``format`` = 1 iff the response is exactly ``<think>...</think>``
    followed by ``<answer>...</answer>`` (tags configurable); accuracy from the answer tag (its
    ``\\boxed{}`` if any); ``overall = accuracy + format_weight * format`` (default weight 0.5).

    >>> r = think_answer(ScoreItem(response="<think>2+2</think><answer>4</answer>", reference="4"))
    >>> (r.overall, r.accuracy, r.format)
    (1.5, 1.0, 1.0)
    """
    opts = RewardOptions.model_validate(item.options)
    well_formed = _format_regex(opts).fullmatch(item.response) is not None
    answer = extract_answer(item.response, item.answer_type, answer_tag_name=opts.answer_tag)
    accuracy, path = _graded(answer, item, opts)
    return finish(item, opts, answer, accuracy, float(well_formed), 0.5, path)
