"""Evaluation: avg@k on eval benchmarks through the rollout servers, behaviour analysis, reports.

- :func:`ovr.eval.runner.evaluate` — one checkpoint on a set of benchmarks -> :class:`EvalResult`
- :mod:`ovr.eval.behaviour` — reflection keywords, emergence and transfer rates
- :mod:`ovr.eval.judge` — LLM-judge behaviour counts (``<count>N</count>``)
- :func:`ovr.eval.report.build_report` — Markdown + PNG run report
"""

from ovr.eval.records import EvalResult, ResponseRecord

__all__ = ["EvalResult", "ResponseRecord"]
