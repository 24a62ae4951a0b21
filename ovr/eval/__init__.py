"""Evaluation: avg@k on eval benchmarks through the rollout servers, behaviour analysis, reports.

- :func:`ovr.eval.runner.evaluate` — one checkpoint on a set of benchmarks -> :class:`EvalResult`
- :mod:`ovr.eval.behaviour` — reflection keywords, emergence and transfer rates
- :mod:`ovr.eval.judge` — LLM-judge behaviour counts (``<count>N</count>``)
- :mod:`ovr.eval.answer_judge` — LLM-judge grading of answers no rule reads
- :mod:`ovr.eval.leaderboard` — each benchmark in its own metric, denominators, grading paths
- :mod:`ovr.eval.benchmarks` — published sizes, VLMEvalKit names, the OVR paper's numbers
- :mod:`ovr.eval.vlmeval` — VLMEvalKit-style ``<model>_<dataset>_score.csv`` files
- :func:`ovr.eval.report.build_report` — Markdown + PNG run report
"""

from ovr.eval.records import EvalResult, ResponseRecord

__all__ = ["EvalResult", "ResponseRecord"]
