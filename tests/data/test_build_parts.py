"""Parts of the streaming build: worker count from the pod's CPU quota, compact indexes, the spool,
row counts for the ETA, the progress line."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ovr.config import DataConfig
from ovr.data.index import HashTable, NearDupIndex, QuestionStore, band_keys
from ovr.data.report import BuildProgress
from ovr.data.sources import count_rows, resolve
from ovr.data.spool import SpoolWriter
from ovr.data.synthetic import visual_samples
from ovr.data.workers import WORKER_BYTES, available_cpus, resolve_workers


def test_workers_follow_the_affinity_and_the_cgroup_quota(tmp_path):
    cores = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == cores  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == cores
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # limits.cpu: 1500m
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # cgroup v1, half a CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1
    assert resolve_workers(3) == 3 and resolve_workers(None, tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no CPU limit: every core of the node ...
    (tmp_path / "memory.max").write_text(f"{WORKER_BYTES * 3 // 2}\n")  # ... but memory for one worker
    assert available_cpus(tmp_path) == cores and resolve_workers(None, tmp_path) == 1
    (tmp_path / "memory.max").write_text("max\n")
    assert resolve_workers(None, tmp_path) == cores
    assert DataConfig().workers is None
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        DataConfig(workers=0)


@pytest.mark.parametrize("bits", [64, 32])
def test_hash_table_keeps_every_key_through_growth(bits):
    rng = random.Random(bits)
    keys = list({rng.getrandbits(bits) or 1 for _ in range(5000)})
    table = HashTable(bits, capacity=8)
    assert all(table.put(k, i) for i, k in enumerate(keys)) and len(table) == len(keys)
    assert not table.put(keys[0], 0)  # already there
    assert [table.get(k) for k in keys[1:50]] == list(range(1, 50))
    absent = [k for k in (rng.getrandbits(bits) or 1 for _ in range(200)) if k not in set(keys)]
    assert not any(k in table for k in absent) and table.get(absent[0]) == -1
    assert table.nbytes < 40 * len(keys)  # a Python set of ints takes ~60-100 bytes a key


def test_near_duplicate_index_on_disk_decides_as_in_memory(tmp_path):
    base = "a rectangular garden is twice as long as it is wide and its perimeter is sixty metres what is its area"
    items = [
        (base.split(), ("img1",)),
        ((base + " now").split(), ("img1",)),  # near duplicate of the first
        ((base + " now").split(), ("img2",)),  # same words, other image: not a duplicate
        ("a circle has radius three what is the area of the inscribed square".split(), ()),
        ("a circle has radius three what is the area of the inscribed square please".split(), ()),  # J = 0.9
    ]
    decisions = []
    for store in (QuestionStore(), QuestionStore(tmp_path / "q.txt")):
        index = NearDupIndex(0.85, store=store)
        decisions.append([index.check_add(w, im, band_keys(w, im, 0.85)) for w, im in items])
        store.close()
    assert decisions[0] == decisions[1] == [False, True, False, False, True]


def test_spool_reads_rows_back_in_any_order(tmp_path):
    samples = visual_samples(6, seed=0)
    writer = SpoolWriter(tmp_path / "g.spool")
    for s in samples:
        writer.add(s)
    spool = writer.close()
    assert len(spool) == 6 and (spool.sizes > 0).all()
    rows = spool.rows(np.array([5, 0, 5, 2]))
    assert [r["id"] for r in rows] == [samples[i].id for i in (5, 0, 5, 2)]
    assert rows[0] is not rows[2]  # each read is its own row (repeats get their own ids)
    assert list(spool.samples()) == samples


def test_row_counts_for_the_eta(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"q": str(i)} for i in range(37)]), tmp_path / "a.parquet")
    assert count_rows(resolve(tmp_path / "a.parquet")) == 37
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"q": "x" * (i % 7)}) + "\n" for i in range(500)))
    assert count_rows(resolve(tmp_path / "b.jsonl")) == 500
    assert 450 <= count_rows(resolve(tmp_path / "b.jsonl"), sample_bytes=2000) <= 550  # estimated from a head


def test_progress_line_shows_rate_and_eta(capsys):
    progress = BuildProgress(total=100, interactive=False, every_s=0.0, desc="build")
    progress.update(40)
    progress.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("build: 40/100 rows") and "rows/s" in err[0] and "ETA" in err[0]
