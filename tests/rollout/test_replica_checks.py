"""The check after every weight push: versions, tensor-parallel worker counts, per-rank fingerprints."""

from __future__ import annotations

import pytest

from ovr.rollout.weights import WeightSyncError, check_replicas

R = ["http://r0:8000", "http://r1:8000", "http://r2:8000"]


def workers(version: int, *prints: str) -> list[dict]:
    return [{"version": version, "fingerprint": f} for f in prints]


def test_tp_ranks_hold_different_shards_and_are_compared_rank_by_rank():
    # TP=2: each rank's fingerprint differs from the other rank's, but agrees across replicas
    check_replicas(R, [3, 3, 3], [workers(3, "a0", "a1")] * 3, 3, ranks_per_replica=2)


def test_a_replica_with_other_weights_is_named():
    reports = [workers(3, "a0", "a1"), workers(3, "a0", "STALE"), workers(3, "a0", "a1")]
    with pytest.raises(WeightSyncError, match=r"TP rank 1: http://r1:8000 hold fingerprint\(s\) \['STALE'\], 2 other"):
        check_replicas(R, [3, 3, 3], reports, 3, ranks_per_replica=2)


def test_versions_and_worker_counts_are_checked_per_replica():
    with pytest.raises(WeightSyncError, match="http://r2:8000 serves v2"):
        check_replicas(R, [3, 3, 2], [workers(3, "a")] * 3, 3, ranks_per_replica=1)
    with pytest.raises(WeightSyncError, match="http://r0:8000 has 1 tensor-parallel workers, expected 2"):
        check_replicas(R[:1], [3], [workers(3, "a")], 3, ranks_per_replica=2)
    with pytest.raises(WeightSyncError, match=r"http://r1:8000 TP ranks \[0\] still hold an older version"):
        check_replicas(R[:2], [3, 3], [workers(3, "a"), workers(2, "a")], 3, ranks_per_replica=1)
    # NCCL pushes tag the server, not ovr's workers: worker versions are not compared then
    check_replicas(R[:2], [3, 3], [workers(0, "a"), workers(0, "a")], 3, ranks_per_replica=1, worker_versions=False)
