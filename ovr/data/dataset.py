"""The recipe's dataset: built once per set of data settings, then reused.

Datasets live under ``datasets/<dataset id>`` (:attr:`ovr.config.DataConfig.dataset_id`: the name and
a hash of every setting that shapes the rows). A build never rewrites a dataset another run reads: a
recipe whose data settings changed gets a new id; the same settings find the earlier build and use
it as it is (the console says so).
"""

from __future__ import annotations

from ovr.config import RunConfig
from ovr.progress import stage_note
from ovr.store import Store, dataset_prefix


def dataset_for(cfg: RunConfig, store: Store, progress: bool = True) -> tuple[dict, bool]:
    """``(manifest as a dict, reused)``: the committed dataset of ``cfg.data``, built if not there yet."""
    from ovr.data.build import build_dataset

    prefix = dataset_prefix(cfg.data.dataset_id)
    found = store.read_manifest(prefix)
    if found is not None:
        counts = ", ".join(f"{s} {m['count']}" for s, m in found.metadata.get("splits", {}).items())
        stage_note("data", f"dataset {cfg.data.dataset_id} was built earlier with these settings: reused ({counts})")
        return found.model_dump(mode="json"), True
    return build_dataset(cfg, store, progress=progress), False
