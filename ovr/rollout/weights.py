"""Push the trainer's new policy weights to every rollout replica.

Two transports behind one interface, :class:`WeightSync` (``push_weights(model) -> version``):

- :class:`FolderWeightSync` (CPU and GPU): ``save_pretrained`` into a fresh ``v000007`` folder
  of a volume both sides mount, then on every replica ``/pause`` (in-flight requests finish),
  ``ovr_reload_weights`` through ``/collective_rpc`` (ovr's worker extension: vLLM's in-place
  reload), ``/update_weight_version``, ``/resume``. The push checks that every replica and rank
  reports the new version and the same parameter fingerprint.
- :class:`~ovr.rollout.nccl_sync.NcclWeightSync` (GPU): vLLM's native NCCL weight transfer.

Every replica reports the version it serves (``GET /weight_info``, see :func:`server_versions`).

>>> sync = make_weight_sync(cfg.rollout, endpoints, folder="/shared/weights")   # doctest: +SKIP
>>> sync.push_weights(model)                                                   # doctest: +SKIP
1
"""

from __future__ import annotations

import shutil
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ovr.config import RolloutConfig
from ovr.rollout.client import parse_version


class WeightSyncError(RuntimeError):
    """A replica refused, failed or disagreed during a weight push."""


class WeightSyncTimeout(WeightSyncError, TimeoutError):
    """A weight push did not finish before its deadline."""


def post_all(endpoints: list[str], path: str, *, json: Any = None, params: dict | None = None, timeout: float) -> list[Any]:
    """POST to every replica at once; the parsed answers in endpoint order, or one error naming all failures."""

    def post(endpoint: str) -> Any:
        r = httpx.post(endpoint.rstrip("/") + path, json=json, params=params, timeout=timeout)
        if r.status_code != 200:
            raise WeightSyncError(f"{endpoint}{path} answered {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    with ThreadPoolExecutor(max_workers=max(1, len(endpoints))) as pool:
        futures = [pool.submit(post, e) for e in endpoints]
    results, errors = [], []
    for endpoint, future in zip(endpoints, futures):
        try:
            results.append(future.result())
        except httpx.TimeoutException as e:
            raise WeightSyncTimeout(f"{endpoint}{path} gave no answer within {timeout:.0f} s") from e
        except (httpx.HTTPError, WeightSyncError) as e:
            errors.append(f"{endpoint}: {e}")
    if errors:
        raise WeightSyncError(f"{path} failed on {len(errors)}/{len(endpoints)} replicas: " + "; ".join(errors))
    return results


def server_versions(endpoints: list[str], timeout: float = 10.0) -> list[int]:
    """The weight version each replica serves (0 = the weights it started with)."""
    out = []
    for endpoint in endpoints:
        r = httpx.get(endpoint.rstrip("/") + "/weight_info", timeout=timeout)
        if r.status_code != 200:
            raise WeightSyncError(f"{endpoint}/weight_info answered {r.status_code} (is VLLM_SERVER_DEV_MODE=1 set?)")
        out.append(parse_version(r.json().get("weight_version")))
    return out


def resume_quietly(endpoints: list[str]) -> None:
    """Best-effort ``/resume`` after a failed push (errors here would hide the first one)."""
    for endpoint in endpoints:
        try:
            httpx.post(endpoint.rstrip("/") + "/resume", timeout=10)
        except httpx.HTTPError:
            pass


class WeightSync(ABC):
    """Publishes new policy weights to the rollout replicas and tracks the version they serve."""

    def __init__(self, endpoints: list[str], timeout_s: float):
        if not endpoints:
            raise ValueError("weight sync needs at least one replica endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout_s = timeout_s
        self.version = max(server_versions(self.endpoints))
        self.last_push_s: float | None = None

    @abstractmethod
    def push_weights(self, model) -> int:
        """Make every replica serve ``model``'s current weights; returns the new version."""

    def set_version(self, version: int) -> None:
        """Tag every replica's outputs with ``version`` (vLLM's ``/update_weight_version``)."""
        post_all(self.endpoints, "/update_weight_version", json={"new_version": str(version)}, timeout=self.timeout_s)

    def check_versions(self, version: int) -> None:
        served = server_versions(self.endpoints)
        if any(v != version for v in served):
            raise WeightSyncError(f"replicas serve versions {served} after pushing v{version}")

    def close(self) -> None:
        """Release transport resources (nothing to release for folder reloads)."""


class FolderWeightSync(WeightSync):
    """Weights through a shared folder and an in-place reload on every replica."""

    def __init__(self, endpoints: list[str], folder: str | Path, timeout_s: float = 300.0, keep: int = 2,
                 max_shard_size: str = "2GB"):
        super().__init__(endpoints, timeout_s)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.max_shard_size = max_shard_size
        self.last_reload_s: float | None = None

    def version_dir(self, version: int) -> Path:
        return self.folder / f"v{version:06d}"

    def save(self, model, version: int) -> Path:
        """Sharded safetensors of ``model`` in the version's folder (written aside, then renamed)."""
        final = self.version_dir(version)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, max_shard_size=self.max_shard_size, safe_serialization=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final

    def reload(self, path: Path, version: int) -> list[dict]:
        """Pause, reload, tag and resume every replica; the per-worker reload reports."""
        deadline = time.monotonic() + self.timeout_s
        remaining = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
        try:
            post_all(self.endpoints, "/pause", params={"mode": "wait"}, timeout=remaining())
            body = {"method": "ovr_reload_weights", "kwargs": {"weights_path": str(path.resolve()), "version": str(version)},
                    "timeout": remaining()}
            answers = post_all(self.endpoints, "/collective_rpc", json=body, timeout=remaining())
            reports = [r for answer in answers for r in answer["results"]]
            fingerprints = {r["fingerprint"] for r in reports}
            if any(r["version"] != version for r in reports) or len(fingerprints) != 1:
                raise WeightSyncError(f"replicas disagree after reloading v{version}: {reports}")
            self.set_version(version)
        except BaseException:
            resume_quietly(self.endpoints)
            raise
        post_all(self.endpoints, "/resume", timeout=remaining())
        return reports

    def prune(self) -> None:
        """Drop all but the newest ``keep`` version folders."""
        versions = sorted(p for p in self.folder.glob("v[0-9]*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in versions[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def push_weights(self, model) -> int:
        version = self.version + 1
        start = time.perf_counter()
        path = self.save(model, version)
        reports = self.reload(path, version)
        self.check_versions(version)
        self.version = version
        self.last_reload_s = max(r["seconds"] for r in reports)
        self.last_push_s = time.perf_counter() - start
        self.prune()
        return version


def make_weight_sync(cfg: RolloutConfig, endpoints: list[str], folder: str | Path) -> WeightSync:
    """The transport the recipe asks for (``rollout.weight_sync``)."""
    if cfg.weight_sync == "folder":
        return FolderWeightSync(endpoints, folder, timeout_s=cfg.sync_timeout_s, keep=cfg.keep_weight_versions)
    from ovr.rollout.nccl_sync import NcclWeightSync

    return NcclWeightSync(
        endpoints,
        master_address=cfg.nccl_master_address,
        master_port=cfg.nccl_master_port,
        ranks_per_replica=cfg.tensor_parallel_size,
        timeout_s=cfg.sync_timeout_s,
    )
