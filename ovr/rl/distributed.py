"""Rank bookkeeping for ``torchrun`` launches (a no-op single process when WORLD_SIZE is unset).

Rank 0 talks to the services; :meth:`Dist.broadcast` hands its Python objects to every rank and
:meth:`Dist.shard` gives each rank an equal share of the rows (ZeRO-3 needs every rank to run the
same number of forward passes, so shares are padded by repeating rows; repeats only reweight).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as tdist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not tdist.is_initialized():
            import torch

            backend = "nccl" if torch.cuda.is_available() else "gloo"
            tdist.init_process_group(backend)
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return cls(int(os.environ.get("RANK", "0")), world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def shard_indices(self, n: int) -> list[int]:
        """This rank's row indices out of ``n`` (equal counts on every rank)."""
        if self.world == 1:
            return list(range(n))
        per = -(-n // self.world)
        padded = [i % n for i in range(per * self.world)]
        return padded[self.rank * per : (self.rank + 1) * per]

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()
