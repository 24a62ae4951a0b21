"""Eval splits keep every item whatever its answer form, and every item is graded and counted.

The fixture is a MathVerse text-only testmini of the published size (788 rows, ``grading_forms``)
carrying the answer forms of real releases. Built as an eval split, no row is dropped; built as a
training split, the rows no reward can check are still dropped with their reasons. Evaluated
against the scripted OpenAI-compatible server (policy and LLM judge, a real uvicorn process), each
item is graded by rule, by the judge (for references no rule reads) or counted ungraded, and the
denominator is the published size.
"""

from __future__ import annotations

import csv
from collections import Counter

import grading_forms
import pytest

from ovr.config import RunConfig
from ovr.data.build import build_dataset
from ovr.data.reader import load_samples
from ovr.eval.records import read_records
from ovr.eval.runner import evaluate
from ovr.rewards.grading import grading_path
from ovr.store import Store

NAME = "mathverse_text_only"
ROWS = grading_forms.rows()
STRING_ROWS = [r for r in ROWS if r.form.path == "string"]


def _cfg(tmp, path, split: str, **eval_cfg) -> RunConfig:
    source = {"adapter": "mathverse", "name": NAME, "split": split, "path": str(path), "hf_split": "testmini"}
    return RunConfig.model_validate(
        {
            "store": {"uri": str(tmp / "store")},
            "tracking": {"enabled": False},
            "data": {"name": f"forms-{split}", "sources": [source], "decontaminate_ngram": None},
            "eval": {"benchmarks": [NAME], "k": 1, "max_tokens": 64, **eval_cfg},
        }
    )


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return grading_forms.write(tmp_path_factory.mktemp("forms"))


@pytest.fixture(scope="module")
def eval_build(forms, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval-build")
    cfg = _cfg(tmp, forms, "eval")
    store = Store.from_config(cfg.store)
    return cfg, store, build_dataset(cfg, store, progress=False)["metadata"]


def test_eval_split_keeps_every_form_and_a_training_split_drops_the_unverifiable(eval_build, forms, tmp_path):
    cfg, store, meta = eval_build
    assert meta["splits"]["eval"]["count"] == grading_forms.PUBLISHED == 788
    assert meta["dropped"] == {}
    samples = load_samples(store, cfg.data.dataset_id, "eval")
    paths = Counter(grading_path(s.answer, s.answer_type, s.choices) for s in samples)
    assert paths == {"rule": 788 - len(STRING_ROWS), "string": len(STRING_ROWS)}
    assert len(STRING_ROWS) == 15 + 2 + 2  # sentences, angle relations, labels

    train = _cfg(tmp_path, forms, "rl")
    train_meta = build_dataset(train, Store.from_config(train.store), progress=False)["metadata"]
    reasons = Counter(r.form.train_drop for r in ROWS if r.form.train_drop)
    assert train_meta["dropped"] == {NAME: dict(reasons)}
    assert reasons == {grading_forms.PROSE: 15, grading_forms.NOT_PARSEABLE: 2}
    assert train_meta["splits"]["rl"]["count"] == 788 - 17


def _answered_right(i: int) -> bool:
    return i % 3 != 0


def _scripted_rules() -> list[dict]:
    """Judge replies for the string-path rows (the first one unusable), then one policy answer per row."""
    judge = []
    for n, r in enumerate(STRING_ROWS):
        i = ROWS.index(r)
        verdict = "I cannot tell." if n == 0 else f"<judgement>{int(_answered_right(i))}</judgement>"
        judge.append({"match": f"<question>\n{r.tag} ", "responses": [verdict]})
    policy = [
        {"match": f"{r.tag} ", "responses": [f"So \\boxed{{{r.form.right if _answered_right(i) else r.form.wrong}}}"]}
        for i, r in enumerate(ROWS)
    ]
    return judge + policy


def test_every_item_graded_and_counted_against_the_published_size(eval_build, scripted_server, tmp_path):
    cfg, _store, _ = eval_build
    srv = scripted_server(_scripted_rules())
    cfg = cfg.model_copy(deep=True)
    cfg.rollout.endpoints = [srv.url]
    cfg.eval.judge.grade_answers = True
    cfg.eval.judge.base_url = f"{srv.url}/v1"
    out = tmp_path / "eval"
    result = evaluate(cfg, out_dir=out, progress=False, label="ckpt")

    (board,) = result.leaderboard
    n_string = len(STRING_ROWS)
    assert (board.items, board.published, board.complete) == (788, 788, True)
    assert board.grading == {"rule": 788 - n_string, "string": 0, "judge": n_string - 1, "ungraded": 1}
    unusable = ROWS.index(STRING_ROWS[0])
    right = sum(_answered_right(i) for i in range(788)) - _answered_right(unusable)
    assert board.metric == "accuracy" and board.score == pytest.approx(right / 788)

    records = {r.sample_id: r for r in read_records(out / "responses.jsonl")}
    assert len(records) == 788 and all(r.grading in ("rule", "judge", "ungraded") for r in records.values())
    with open(out / "vlmeval" / "ckpt_MathVerse_MINI_Text_Only_score.csv", encoding="utf-8") as f:
        overall = next(row for row in csv.DictReader(f) if row["Category"] == "Overall")
    assert overall["tot"] == "788" and float(overall["acc"]) == pytest.approx(100 * right / 788, abs=0.01)
    table = (out / "results.md").read_text()
    section = table[table.index("## Grading paths") :]
    print(section[: section.find("\n## ", 1)])  # pytest -s shows the counts
    assert f"| {NAME} | {788 - n_string} | 0 | {n_string - 1} | 1 | 788 / 788 |" in table
