"""`ovr eval` reads the eval split from a dataset in the store and scores a scripted server's
answers; `ovr report` turns its folder into a report."""

from __future__ import annotations

import json

from scripted_data import policy_rules, samples
from typer.testing import CliRunner

from ovr.cli import app
from ovr.config import StoreConfig
from ovr.data.shards import write_split
from ovr.store import Store


def test_eval_then_report_from_the_command_line(scripted_server, repo_root, tmp_path, dataset_prefix_for):
    data = samples()
    ds = tmp_path / "ds"
    write_split(data, "eval", ds, shard_size=2)

    srv = scripted_server(policy_rules(data[3:]))
    common = [
        "--recipe",
        str(repo_root / "recipes/tiny-cpu.yaml"),
        "--set",
        f"store.uri={tmp_path / 'store'}",
        "--set",
        f"tracking.uri=sqlite:///{tmp_path}/m.db",
        "--set",
        "data.name=evalset",
        "--set",
        "eval.k=4",
        "--set",
        "eval.benchmarks=[arith]",
    ]
    Store.from_config(StoreConfig(uri=str(tmp_path / "store"))).commit(
        dataset_prefix_for(common[1], common[2:]), ds, run="evalset", kind="dataset"
    )
    runner = CliRunner()
    res = runner.invoke(
        app, ["eval", *common, "--endpoint", srv.url, "--out", str(tmp_path / "e"), "--label", "final", "--step", "5"]
    )
    assert res.exit_code == 0, res.output
    assert "| arith | text | 3 | 50.0 |" in res.output
    result = json.loads((tmp_path / "e/result.json").read_text())
    assert result["label"] == "final" and result["step"] == 5 and result["questions"] == 3

    res = runner.invoke(app, ["report", *common, "--eval", str(tmp_path / "e"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "| arith | 50.0 |" in (tmp_path / "r/report.md").read_text()

    res = runner.invoke(app, ["report", *common, "--eval", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "no eval result" in res.output
