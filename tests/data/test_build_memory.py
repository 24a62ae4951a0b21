"""A build's memory does not grow with its rows: 10x the (large) rows adds next to nothing.

Each build runs in a fresh interpreter, which reports its resident memory before the build and its
peak (``ru_maxrss``); rows are ChartQA-layout charts of 100 KB each, so a build that held a split in
memory would grow by about the size of the data (300 MB at 3,000 rows), several times over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

ROW_BYTES = 100_000
SCRIPT = """
import json, resource, sys
from ovr.config import RunConfig
from ovr.data.build import build_dataset
from ovr.store import Store

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

source, store = sys.argv[1:3]
data = {"name": "mem", "workers": 1, "sources": [{"adapter": "chartqa", "path": source}]}
cfg = RunConfig.model_validate({"store": {"uri": store}, "data": data})
before = rss()
meta = build_dataset(cfg, Store.from_config(cfg.store), progress=False)["metadata"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - before, "count": meta["splits"]["rl"]["count"]}))
"""


def write_charts(path, rows: int) -> None:
    """``rows`` charts with distinct questions; the image cells are PNG-signed random bytes (kept as
    they are, never decoded)."""
    with pq.ParquetWriter(path, pa.schema([("image", pa.struct([("bytes", pa.binary())])), ("query", pa.string()),
                                           ("label", pa.list_(pa.string()))])) as writer:  # fmt: skip
        for start in range(0, rows, 100):
            batch = [
                {"image": {"bytes": b"\x89PNG\r\n\x1a\n" + os.urandom(ROW_BYTES)}, "query": f"Bar {i}?", "label": ["1"]}
                for i in range(start, min(rows, start + 100))
            ]
            writer.write_table(pa.Table.from_pylist(batch, schema=writer.schema))


def growth(tmp_path, rows: int) -> int:
    write_charts(tmp_path / f"charts-{rows}.parquet", rows)
    args = [str(tmp_path / f"charts-{rows}.parquet"), str(tmp_path / f"store-{rows}")]
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["count"] == rows
    (tmp_path / f"charts-{rows}.parquet").unlink()
    return result["growth"]


def test_memory_stays_flat_as_rows_grow(tmp_path):
    small, large = growth(tmp_path, 300), growth(tmp_path, 3000)
    data = 3000 * ROW_BYTES
    assert large - small < 0.2 * data, f"growth {small / 1e6:.0f} MB at 300 rows, {large / 1e6:.0f} MB at 3000"
