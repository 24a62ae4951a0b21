"""Behaviour analysis: per-response counts, emergence rates per benchmark, vision/language transfer.

Three sources of counts per response: the named detectors of :mod:`ovr.rewards.detectors`
(``reflection``, ``verification``, ``backtracking``: the same ones that count the cold-start data
and the RL rollouts), ORZ's cheap keyword proxy (``wait,``, ``recheck``, ``retry``,
``alternatively,``, ``however,``) and, when enabled, an LLM judge (:mod:`ovr.eval.judge`). The
*emergence rate* of a behaviour is the share of responses whose count is > 0, among responses where
the count is known and applicable. The *transfer rate* is the emergence rate on image questions
divided by the rate on text questions: 1.0 means a behaviour learnt from language shows up as often
in visual reasoning. Rates also carry the accuracy of the responses with and without each
behaviour: whether showing it pays.

>>> counts = [{"verification": 2}, {"verification": 0}, {"verification": None}]
>>> emergence_rate(counts, "verification")
0.5
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from ovr.eval.records import BehaviourRates, ResponseRecord

ANY_WORD = "reflection_words"


def keyword_name(word: str) -> str:
    """Metric-safe name of a keyword behaviour: ``"wait,"`` -> ``"kw_wait"``."""
    return "kw_" + re.sub(r"[^a-z0-9]+", "_", word.lower()).strip("_")


def keyword_counts(text: str, words: Sequence[str]) -> dict[str, int]:
    """ORZ reflection word counts of one response, through the reward package's extractor."""
    from ovr.rewards.extract import reflection_counts

    return {w: int(n) for w, n in reflection_counts(text, list(words)).items()}


def behaviour_counts(record: ResponseRecord) -> dict[str, int | None]:
    """All counts of one response: the named detectors', one per keyword, any keyword, and the
    judge's (None = unknown)."""
    out: dict[str, int | None] = dict(record.behaviours)
    out.update({keyword_name(w): n for w, n in record.keywords.items()})
    if record.keywords:
        out[ANY_WORD] = sum(record.keywords.values())
    out.update(record.judge)
    return out


def emergence_rate(counts: Sequence[Mapping[str, int | None]], name: str) -> float | None:
    """Share of count > 0 among known counts of ``name``; None when no count is known."""
    known = [c[name] for c in counts if c.get(name) is not None]
    return sum(n > 0 for n in known) / len(known) if known else None


def rates(group: str, records: Sequence[ResponseRecord]) -> BehaviourRates:
    """Emergence rate, mean count and unknown count of every behaviour seen in ``records``."""
    counts = [behaviour_counts(r) for r in records]
    names = sorted({n for c in counts for n in c})
    kinds = {r.modality for r in records}
    out = BehaviourRates(group=group, modality=kinds.pop() if len(kinds) == 1 else "mixed", responses=len(records))
    for name in names:
        known = [c[name] for c in counts if c.get(name) is not None]
        out.rates[name] = emergence_rate(counts, name)
        out.mean_counts[name] = sum(known) / len(known) if known else None
        out.unknown[name] = sum(1 for c in counts if name in c and c[name] is None)
        shown = [r.accuracy for r, c in zip(records, counts) if c.get(name) is not None and c[name] > 0]
        plain = [r.accuracy for r, c in zip(records, counts) if c.get(name) is not None and c[name] == 0]
        out.accuracy_with[name] = sum(shown) / len(shown) if shown else None
        out.accuracy_without[name] = sum(plain) / len(plain) if plain else None
    return out


def transfer_rates(vision: BehaviourRates | None, language: BehaviourRates | None) -> dict[str, float | None]:
    """Vision rate / language rate per behaviour present in both; None where undefined (rate 0 or unknown)."""
    if vision is None or language is None:
        return {}
    out: dict[str, float | None] = {}
    for name in sorted(set(vision.rates) & set(language.rates)):
        v, lang = vision.rates[name], language.rates[name]
        out[name] = v / lang if v is not None and lang else None
    return out


def analyse(
    records: Sequence[ResponseRecord],
) -> tuple[list[BehaviourRates], list[BehaviourRates], dict[str, float | None]]:
    """(rates per benchmark, rates per modality [vision, language], transfer rates)."""
    by_bench: dict[str, list[ResponseRecord]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r)
    per_bench = [rates(b, rs) for b, rs in sorted(by_bench.items())]
    vision = [r for r in records if r.modality == "image"]
    language = [r for r in records if r.modality != "image"]
    by_mod = {name: rates(name, rs) for name, rs in (("vision", vision), ("language", language)) if rs}
    return per_bench, list(by_mod.values()), transfer_rates(by_mod.get("vision"), by_mod.get("language"))


def metrics_for_tracking(per_bench: Sequence[BehaviourRates], transfer: Mapping[str, float | None]) -> dict[str, float]:
    """``<benchmark>/behaviour/<name>`` emergence rates and ``transfer/<name>`` for MLflow."""
    out = {f"{b.group}/behaviour/{n}": v for b in per_bench for n, v in b.rates.items() if v is not None}
    out.update({f"transfer/{n}": v for n, v in transfer.items() if v is not None})
    return out
