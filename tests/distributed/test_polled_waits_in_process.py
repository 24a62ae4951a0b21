"""The polled waits of :class:`ovr.distributed.Dist` with two ranks as two threads of this process,
sharing one key-value store (torch's ``HashStore``, the in-memory twin of torchrun's ``TCPStore``)."""

from __future__ import annotations

import threading

import pytest
import torch.distributed as tdist

from ovr.distributed import Dist, RankTimeout, shard


def ranks(timeout_s: float = 5.0) -> list[Dist]:
    store = tdist.HashStore()
    return [Dist(rank=r, world=2, store=store, wait_timeout_s=timeout_s, poll_s=0.01) for r in range(2)]


def both(fn0, fn1) -> list:
    out: list = [None, None]

    def run(i, fn):
        try:
            out[i] = fn()
        except Exception as e:  # the test inspects it
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate((fn0, fn1))]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    return out


def test_gather_and_barrier_meet_in_order():
    d0, d1 = ranks()
    assert both(lambda: d0.all_gather("a"), lambda: d1.all_gather("b")) == [["a", "b"], ["a", "b"]]
    assert both(lambda: d0.barrier("one"), lambda: d1.barrier("one")) == [None, None]
    assert both(lambda: d0.all_gather(1), lambda: d1.all_gather(2)) == [[1, 2], [1, 2]]


def test_a_barrier_names_the_rank_that_never_came_and_its_last_phase():
    d0, d1 = ranks(timeout_s=0.3)
    d1.announce("uploading step 40")
    with pytest.raises(RankTimeout, match=r"waiting for rank\(s\) 1 .*rank 1 last reported 'uploading step 40'"):
        d0.barrier("checkpoint 40 committed")
    d0b, _ = ranks(timeout_s=0.1)
    with pytest.raises(RankTimeout, match="rank 1 reported nothing"):
        d0b.all_gather("x", "files of step 40")


def test_shard_keeps_whole_groups_balanced():
    assert shard([5, 3, 9, 1], 2) == [[2], [0, 1, 3]]
    assert shard([4.0], 2) == [[0], []]  # fewer groups than ranks: a rank owns none
    assert shard([], 3) == [[], [], []]
