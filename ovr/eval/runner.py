"""Evaluate a served checkpoint on eval benchmarks: sample k responses, score, analyse, save, log.

The checkpoint is whatever the rollout servers of the run context (``ctx.rollout_endpoints``) serve: the pipeline's
eval first publishes the model it is given to the install's replicas and passes the version it
pushed as ``expect_version``, and every response must come from that version (a push by anyone
else in between fails the eval instead of scoring the wrong model); ``ovr eval`` and local runs
start a vLLM server on the checkpoint. Responses are sampled and scored by the path RL uses
(:func:`ovr.rollout.scoring.sample_and_score`: the same reward function and options), through the
reward service at ``ctx.reward_url`` (in this process when it is None and ``require_service`` is
off: tests and offline analysis), so eval accuracy and RL accuracy mean the same thing. Items whose
reference no rule reads are graded by normalised string match, or by the LLM judge when
``eval.judge.grade_answers`` is on (:mod:`ovr.eval.answer_judge`); every benchmark is then scored in
its own metric with its denominator and grading-path counts (:mod:`ovr.eval.leaderboard`). Outputs in
``out_dir``: ``responses.jsonl`` (one row per response), ``results.md`` (tables), ``result.json``
(:class:`EvalResult`, read by ``ovr report``) and VLMEvalKit-style score files (:mod:`ovr.eval.vlmeval`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

from ovr.config import EvalConfig, RunConfig
from ovr.context import RunContext
from ovr.eval import behaviour, leaderboard, metrics
from ovr.eval.benchmarks import benchmark_of
from ovr.eval.records import RESPONSES_FILE, TABLE_FILE, EvalResult, ResponseRecord, write_records
from ovr.eval.tables import result_markdown
from ovr.eval.vlmeval import FOLDER, write_results
from ovr.rewards.detectors import detect
from ovr.rollout.scoring import Scored
from ovr.schema import Sample


# --------------------------------------------------------------------------- samples
def load_eval_samples(cfg: RunConfig) -> list[Sample]:
    """The eval split of the run's dataset in the store, restricted to ``eval.benchmarks``."""
    from ovr.data.reader import load_samples
    from ovr.store import Store

    return load_samples(Store.from_config(cfg.store), cfg.data.dataset_id, "eval")


def select_samples(samples: list[Sample], cfg: EvalConfig) -> list[Sample]:
    """Eval-split samples of the configured benchmarks (a source, or the benchmark several sources
    are mapped to by ``benchmark_ids``), at most ``max_questions`` each (input order)."""
    wrong = sorted({s.id for s in samples if s.split != "eval"})
    if wrong:
        raise ValueError(f"{len(wrong)} samples are not in the eval split, e.g. {wrong[:3]}")
    present = sorted({s.source for s in samples} | {benchmark_of(s.source, cfg.benchmark_ids) for s in samples})
    missing = [b for b in cfg.benchmarks if b not in present]
    if missing:
        raise ValueError(f"benchmarks {missing} have no eval samples; available: {present}")
    wanted = set(cfg.benchmarks) if cfg.benchmarks else set(present)
    taken: dict[str, int] = defaultdict(int)
    out = []
    for s in samples:
        bench = benchmark_of(s.source, cfg.benchmark_ids)
        if (s.source in wanted or bench in wanted) and (cfg.max_questions is None or taken[bench] < cfg.max_questions):
            taken[bench] += 1
            out.append(s)
    if not out:
        raise ValueError("no eval samples to evaluate")
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise ValueError("eval sample ids must be unique")
    return out


# --------------------------------------------------------------------------- stages
def sample_and_score(
    cfg: RunConfig, ctx: RunContext, samples: list[Sample], progress: bool, require_service: bool = False
) -> Scored:
    """k responses per sample with eval's sampling settings, scored like RL scores them."""
    from ovr.rewards.client import RewardClient
    from ovr.rollout.client import RolloutClient
    from ovr.rollout.scoring import sample_and_score_sync

    if require_service and not ctx.reward_url:
        raise ValueError("no reward service (reward.url): this eval must score through the reward service")
    reward = RewardClient.from_config(cfg.reward, ctx.reward_url) if ctx.reward_url else RewardClient.in_process()
    e = cfg.eval
    return sample_and_score_sync(
        RolloutClient(list(ctx.rollout_endpoints), cfg.rollout),
        reward,
        samples,
        n=e.k,
        max_tokens=e.max_tokens,
        cfg=cfg,
        temperature=e.temperature,
        top_p=e.top_p,
        progress=progress,
    )


def build_records(
    samples: list[Sample], scored: Scored, words: list[str], benchmark_ids: dict[str, str] | None = None
) -> list[ResponseRecord]:
    """One record per response: its score and grading path, its benchmark (``benchmark_ids`` maps
    sources to benchmarks), its named behaviour counts and its reflection keyword counts."""
    by_id = {s.id: s for s in samples}
    records = []
    for g, i, c, r in scored.pairs():
        s = by_id[g.sample_id]
        records.append(
            ResponseRecord(
                sample_id=s.id,
                benchmark=benchmark_of(s.source, benchmark_ids or {}),
                subject=s.subject,
                modality=s.modality,
                index=i,
                prompt=s.prompt,
                reference=s.answer,
                text=c.text,
                finish_reason=c.finish_reason,
                length=len(c.token_ids),
                accuracy=r.accuracy,
                extracted=r.extracted,
                grading=r.grading,
                group=str(s.provenance["group"]) if s.provenance.get("group") else None,
                role=str(s.provenance["role"]) if s.provenance.get("role") else None,
                score_error=r.error,
                keywords=behaviour.keyword_counts(c.text, words),
                behaviours=detect(c.text),
            )
        )
    return records


def add_judge_counts(cfg: RunConfig, records: list[ResponseRecord], progress: bool) -> None:
    """Fill ``record.judge`` (at most ``judge.max_responses`` per benchmark) from the judge endpoint."""
    from ovr.eval.judge import judge_counts

    cap = cfg.eval.judge.max_responses
    seen: dict[str, int] = defaultdict(int)
    chosen = []
    for r in records:
        if cap is None or seen[r.benchmark] < cap:
            seen[r.benchmark] += 1
            chosen.append(r)
    counts = asyncio.run(judge_counts([(r.prompt, r.text, r.modality) for r in chosen], cfg.eval.judge, progress))
    for r, c in zip(chosen, counts, strict=True):
        r.judge = c


def judge_answers(cfg: RunConfig, records: list[ResponseRecord], progress: bool) -> None:
    """Grade the responses whose reference no rule reads (path ``string``) with the LLM judge:
    path ``judge`` with its verdict, or ``ungraded`` (accuracy 0) when its reply is unusable.
    Truncated responses keep accuracy 0 (the length rule) without a request."""
    from ovr.eval.answer_judge import judge_answers as ask_judge

    chosen = [r for r in records if r.grading == "string" and not r.truncated]
    verdicts = asyncio.run(
        ask_judge([(r.prompt, r.reference, r.text, r.extracted) for r in chosen], cfg.eval.judge, progress)
    )
    for r, verdict in zip(chosen, verdicts, strict=True):
        r.grading, r.accuracy = ("ungraded", 0.0) if verdict is None else ("judge", float(verdict))
    for r in records:
        if r.grading == "string":  # the truncated ones left
            r.grading = "judge"


def check_version(scored: Scored, version: int) -> None:
    """Every response was sampled with weight version ``version`` (the model under evaluation)."""
    seen = sorted({c.weight_version for g in scored.groups for c in g.completions})
    if seen != [version]:
        raise RuntimeError(
            f"eval expected every response from weight version {version}, got versions {seen}: "
            "something else pushed weights to the replicas during the eval"
        )


# --------------------------------------------------------------------------- entry
def evaluate(
    cfg: RunConfig,
    samples: list[Sample] | None = None,
    *,
    ctx: RunContext | None = None,
    out_dir: Path,
    progress: bool = True,
    label: str | None = None,
    step: int = 0,
    expect_version: int | None = None,
    require_service: bool = False,
) -> EvalResult:
    """Evaluate the model served at ``ctx.rollout_endpoints`` (see the module doc; ``ctx`` defaults to
    the config's endpoints); ``samples`` default to the store's eval split; ``expect_version``: the
    weight version every response must come from; ``require_service``: score through the reward
    service only."""
    ctx = ctx or RunContext.for_config(cfg)
    if not ctx.rollout_endpoints:
        raise ValueError("evaluate needs at least one rollout endpoint (rollout.endpoints)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = select_samples(samples if samples is not None else load_eval_samples(cfg), cfg.eval)

    # 1-2. generate k responses per question, score them, count reflection words
    t0 = time.perf_counter()
    scored = sample_and_score(cfg, ctx, samples, progress, require_service)
    if expect_version is not None:
        check_version(scored, expect_version)
    records = build_records(samples, scored, cfg.eval.reflection_words, cfg.eval.benchmark_ids)
    t2 = time.perf_counter()
    write_records(records, out_dir / RESPONSES_FILE)  # kept even if the judge fails below
    # 3. optional LLM judge: answers no rule reads, then behaviour counts
    if cfg.eval.judge.grade_answers:
        judge_answers(cfg, records, progress)
        write_records(records, out_dir / RESPONSES_FILE)
    if cfg.eval.judge.enabled:
        add_judge_counts(cfg, records, progress)
        write_records(records, out_dir / RESPONSES_FILE)
    wall = time.perf_counter() - t0
    timings = {"generate_s": scored.rollout_s, "score_s": scored.reward_s, "judge_s": wall - (t2 - t0)}

    # 4. aggregate
    benches, subjects = metrics.score_benchmarks(records)
    per_bench, by_modality, transfer = behaviour.analyse(records)
    result = EvalResult(
        label=label or f"step-{step}",
        step=step,
        k=cfg.eval.k,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        max_tokens=cfg.eval.max_tokens,
        benchmarks=benches,
        subjects=subjects,
        leaderboard=leaderboard.leaderboard(records),
        behaviour=per_bench,
        behaviour_by_modality=by_modality,
        transfer=transfer,
        questions=len(samples),
        responses=len(records),
        wall_s=wall,
        questions_per_s=len(samples) / wall if wall > 0 else 0.0,
        timings=timings,
        out_dir=str(out_dir.resolve()),
    )

    # 5. save and log
    (out_dir / TABLE_FILE).write_text(result_markdown(result))
    write_results(result, out_dir)
    _save_and_log(cfg, ctx, result, out_dir)
    return result


def _save_and_log(cfg: RunConfig, ctx: RunContext, result: EvalResult, out_dir: Path) -> None:
    """Write result.json and log metrics + the three files to the run's MLflow run."""
    from ovr.tracking import Tracker

    with Tracker.open(cfg, "eval", ctx) as tracker:
        result.mlflow_run_id = tracker.run_id
        path = result.save(out_dir)
        values = metrics.metrics_for_tracking(result.benchmarks, result.k)
        values.update(metrics.leaderboard_for_tracking(result.leaderboard))
        values.update(behaviour.metrics_for_tracking(result.behaviour, result.transfer))
        values["questions_per_s"] = result.questions_per_s
        tracker.log_metrics(values, step=result.step)
        for f in (out_dir / RESPONSES_FILE, out_dir / TABLE_FILE, path):
            tracker.log_artifact(f, f"eval/{result.label}")
        tracker.log_artifact(out_dir / FOLDER, f"eval/{result.label}/{FOLDER}")
