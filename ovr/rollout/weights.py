"""Push the trainer's new policy weights to every rollout replica.

Two transports behind one interface, :class:`WeightSync` (``push_weights(model) -> version``):

- :class:`FolderWeightSync` (CPU and GPU): ``save_pretrained`` into a fresh ``v000007`` folder
  of a volume both sides mount, then on every replica ``/pause`` (in-flight requests finish),
  ``ovr_reload_weights`` through ``/collective_rpc`` (ovr's worker extension: vLLM's in-place
  reload), ``/update_weight_version``, ``/resume``. The folder is the shared claim both the trainer
  and the replicas mount at the same path (``rollout.weights_dir``); :meth:`FolderWeightSync.push_folder`
  publishes a saved checkpoint the same way (what eval does with the model it is given).
- :class:`~ovr.rollout.nccl_sync.NcclWeightSync` (GPU): vLLM's native NCCL weight transfer.

How a push treats requests in flight is ``pause_mode``: the folder sync pauses in vLLM's ``wait``
mode (in-flight requests finish first: nothing runs during a synchronous step's push). Async RL
pushes while the producer generates: ``keep`` freezes the requests in the engine and resumes them on
the new weights (no request is lost; ``pushing`` names the version being pushed, so the rollout
client accepts replicas that serve it before the push returns) or ``abort`` drops them and the client
sends them again. Pushes and restores hold one lock: a restore never races a push.

After every push, :meth:`WeightSync.verify` asks every replica for the version it serves
(``GET /weight_info``) and each of its tensor-parallel workers for its version and parameter
fingerprint (``ovr_weight_version`` over ``/collective_rpc``): every replica must serve the new
version with ``ranks_per_replica`` workers, and each TP rank's fingerprint must agree across the
replicas (TP ranks hold different shards, so they are compared rank by rank). A disagreement
raises :class:`WeightSyncError` naming the replicas at fault; every call has a deadline, so a push
fails rather than hangs. Every call carries the replicas' bearer token from the env var named by
``rollout.token_env`` (``token_env`` of the classes and functions here; default ``OVR_ROLLOUT_TOKEN``).

>>> sync = make_weight_sync(cfg.rollout, endpoints, folder="/shared/weights")   # doctest: +SKIP
>>> sync.push_weights(model)                                                   # doctest: +SKIP
1
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ovr.config import RolloutConfig
from ovr.rollout.protocol import DEFAULT_TOKEN_ENV, auth_headers, parse_version

log = logging.getLogger("ovr.rollout")


class WeightSyncError(RuntimeError):
    """A replica refused, failed or disagreed during a weight push."""


class WeightSyncTimeout(WeightSyncError, TimeoutError):
    """A weight push did not finish before its deadline."""


def post_all(
    endpoints: list[str],
    path: str,
    *,
    json: Any = None,
    params: dict | None = None,
    timeout: float,
    token_env: str = DEFAULT_TOKEN_ENV,
) -> list[Any]:
    """POST to every replica at once; the parsed answers in endpoint order, or one error naming all failures."""
    headers = auth_headers(token_env)

    def post(endpoint: str) -> Any:
        r = httpx.post(endpoint.rstrip("/") + path, json=json, params=params, timeout=timeout, headers=headers)
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


def server_versions(endpoints: list[str], timeout: float = 10.0, token_env: str = DEFAULT_TOKEN_ENV) -> list[int]:
    """The weight version each replica serves (0 = the weights it started with)."""
    out = []
    headers = auth_headers(token_env)
    for endpoint in endpoints:
        r = httpx.get(endpoint.rstrip("/") + "/weight_info", timeout=timeout, headers=headers)
        if r.status_code in (401, 403):
            raise WeightSyncError(f"{endpoint}/weight_info answered {r.status_code}: check the token in ${token_env}")
        if r.status_code != 200:
            raise WeightSyncError(f"{endpoint}/weight_info answered {r.status_code} (is VLLM_SERVER_DEV_MODE=1 set?)")
        out.append(parse_version(r.json().get("weight_version")))
    return out


def worker_reports(endpoints: list[str], timeout: float, token_env: str = DEFAULT_TOKEN_ENV) -> list[list[dict]]:
    """Per replica, one ``{version, fingerprint}`` per tensor-parallel worker (``ovr_weight_version``)."""
    body = {"method": "ovr_weight_version", "timeout": timeout}
    return [
        answer["results"]
        for answer in post_all(endpoints, "/collective_rpc", json=body, timeout=timeout, token_env=token_env)
    ]


def check_replicas(
    endpoints: list[str],
    served: list[int],
    reports: list[list[dict]],
    version: int,
    ranks_per_replica: int,
    worker_versions: bool = True,
) -> None:
    """Every replica serves ``version`` with ``ranks_per_replica`` workers, and each TP rank's
    fingerprint is the same on every replica; otherwise a WeightSyncError naming the replicas at fault."""
    problems = [f"{e} serves v{v}" for e, v in zip(endpoints, served) if v != version]
    for e, workers in zip(endpoints, reports):
        if len(workers) != ranks_per_replica:
            problems.append(f"{e} has {len(workers)} tensor-parallel workers, expected {ranks_per_replica}")
        stale = [i for i, w in enumerate(workers) if worker_versions and int(w["version"]) != version]
        if stale:
            problems.append(f"{e} TP ranks {stale} still hold an older version")
    for rank in range(min((len(w) for w in reports), default=0)):
        prints = [w[rank]["fingerprint"] for w in reports]
        common, count = Counter(prints).most_common(1)[0]
        odd = [e for e, f in zip(endpoints, prints) if f != common]
        if odd:
            problems.append(
                f"TP rank {rank}: {', '.join(odd)} hold fingerprint(s) "
                f"{sorted({f for f in prints if f != common})}, {count} other(s) hold {common}"
            )
    if problems:
        raise WeightSyncError(f"replicas disagree after pushing v{version}: " + "; ".join(problems))


def resume_quietly(endpoints: list[str], token_env: str = DEFAULT_TOKEN_ENV) -> None:
    """Best-effort ``/resume`` after a failed push (errors here would hide the first one)."""
    headers = auth_headers(token_env)
    for endpoint in endpoints:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(endpoint.rstrip("/") + "/resume", timeout=10, headers=headers)


class WeightSync(ABC):
    """Publishes new policy weights to the rollout replicas and tracks the version they serve."""

    def __init__(
        self, endpoints: list[str], timeout_s: float, ranks_per_replica: int = 1, token_env: str = DEFAULT_TOKEN_ENV
    ):
        if not endpoints:
            raise ValueError("weight sync needs at least one replica endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout_s = timeout_s
        self.ranks_per_replica = ranks_per_replica
        self.token_env = token_env
        self.version = max(server_versions(self.live(), token_env=token_env))
        self.last_push_s: float | None = None
        self.fingerprints: list[str] | None = None  # per TP rank, of the last verified push
        self.behind: set[str] = set()  # replicas a push skipped (unreachable then)
        self.pause_mode: str | None = None  # vLLM's /pause mode around a push (None: no pause)
        self.pushing: int | None = None  # the version being pushed, while a push runs
        self.last_pause_s = 0.0  # how long the last push kept the replicas paused
        self.lock = threading.RLock()  # one push or restore at a time (the producer restores, the trainer pushes)

    @abstractmethod
    def push_weights(self, model) -> int:
        """Make every replica serve ``model``'s current weights; returns the new version."""

    @abstractmethod
    def restore(self, endpoint: str) -> bool:
        """Bring a replica that restarted (or missed a push) back to ``version``: True when it serves it
        on return, False when it will after the next push (:class:`ovr.rollout.replicas.WeightKeeper`)."""

    def live(self) -> list[str]:
        """The replicas that answer ``/health`` now; a push skips the others (they are restored when
        they are back) and fails only when none answers."""
        up = []
        for endpoint in self.endpoints:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(endpoint + "/health", timeout=10.0).status_code == 200:
                    up.append(endpoint)
        if not up:
            raise WeightSyncError(f"no replica answers /health: {', '.join(self.endpoints)}")
        skipped = set(self.endpoints) - set(up)
        if skipped:
            log.warning("%s do(es) not answer /health: left out, restored when back", ", ".join(sorted(skipped)))
        self.behind = skipped
        return up

    def set_version(self, version: int, endpoints: list[str] | None = None) -> None:
        """Tag every replica's outputs with ``version`` (vLLM's ``/update_weight_version``)."""
        post_all(
            endpoints or self.endpoints,
            "/update_weight_version",
            json={"new_version": str(version)},
            timeout=self.timeout_s,
            token_env=self.token_env,
        )

    def verify(
        self, version: int, worker_versions: bool = True, endpoints: list[str] | None = None, restored: bool = False
    ) -> list[list[dict]]:
        """Every replica's version and every TP rank's fingerprint after a push (module doc); a
        ``restored`` replica must also match the fingerprints of the last push."""
        endpoints = endpoints or self.endpoints
        timeout = min(self.timeout_s, 60.0)
        served = server_versions(endpoints, timeout=timeout, token_env=self.token_env)
        reports = worker_reports(endpoints, timeout, self.token_env)
        check_replicas(endpoints, served, reports, version, self.ranks_per_replica, worker_versions)
        prints = [w["fingerprint"] for w in reports[0]]
        if restored and self.fingerprints is not None and prints != self.fingerprints:
            raise WeightSyncError(
                f"{endpoints[0]} serves v{version} with fingerprints {prints}, the others {self.fingerprints}"
            )
        self.fingerprints = prints
        return reports

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release transport resources (nothing to release for folder reloads)."""


class FolderWeightSync(WeightSync):
    """Weights through a shared folder and an in-place reload on every replica."""

    def __init__(
        self,
        endpoints: list[str],
        folder: str | Path,
        timeout_s: float = 300.0,
        keep: int = 2,
        max_shard_size: str = "2GB",
        ranks_per_replica: int = 1,
        token_env: str = DEFAULT_TOKEN_ENV,
    ):
        super().__init__(endpoints, timeout_s, ranks_per_replica, token_env)
        self.pause_mode = "wait"
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

    def reload(self, path: Path, version: int, endpoints: list[str] | None = None) -> list[dict]:
        """Pause, reload, tag and resume every replica (or ``endpoints``); the per-worker reload reports."""
        endpoints = endpoints or self.endpoints
        deadline = time.monotonic() + self.timeout_s
        remaining = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
        paused = time.perf_counter()
        try:
            post_all(
                endpoints, "/pause", params={"mode": self.pause_mode}, timeout=remaining(), token_env=self.token_env
            )
            body = {
                "method": "ovr_reload_weights",
                "kwargs": {"weights_path": str(path.resolve()), "version": str(version)},
                "timeout": remaining(),
            }
            answers = post_all(endpoints, "/collective_rpc", json=body, timeout=remaining(), token_env=self.token_env)
            per_replica = [answer["results"] for answer in answers]
            check_replicas(endpoints, [version] * len(endpoints), per_replica, version, self.ranks_per_replica)
            reports = [r for workers in per_replica for r in workers]
            self.set_version(version, endpoints)
        except BaseException:
            resume_quietly(endpoints, self.token_env)
            raise
        post_all(endpoints, "/resume", timeout=remaining(), token_env=self.token_env)
        self.last_pause_s = time.perf_counter() - paused
        return reports

    def prune(self) -> None:
        """Drop all but the newest ``keep`` version folders."""
        versions = sorted(p for p in self.folder.glob("v[0-9]*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in versions[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def push_weights(self, model) -> int:
        return self._publish(lambda version: self.save(model, version))

    def push_folder(self, src: str | Path) -> int:
        """Publish a saved checkpoint folder (config + safetensors) as the next version."""
        src = Path(src)
        if not any(src.glob("*.safetensors")):
            raise FileNotFoundError(f"{src} holds no *.safetensors: not a saved model")

        def copy(version: int) -> Path:
            final = self.version_dir(version)
            tmp = final.with_name(final.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("manifest.json"))
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            return final

        return self._publish(copy)

    def restore(self, endpoint: str) -> bool:
        """Reload the current version's folder on one replica and check it matches the others."""
        endpoint = endpoint.rstrip("/")
        with self.lock:
            if self.version == 0:
                return True  # nothing pushed yet: every replica serves the weights it started with
            if server_versions([endpoint], token_env=self.token_env) == [self.version]:
                return True  # a push reached it meanwhile
            path = self.version_dir(self.version)
            if not (path / "config.json").exists():
                raise WeightSyncError(f"{path} is gone: cannot restore {endpoint} to v{self.version}")
            self.reload(path, self.version, [endpoint])
            self.verify(self.version, endpoints=[endpoint], restored=True)
            self.behind.discard(endpoint)
            return True

    def _publish(self, write) -> int:
        with self.lock:
            version = self.version + 1
            start = time.perf_counter()
            path = write(version)  # the replicas keep generating meanwhile
            live = self.live()
            self.pushing = version
            try:
                reports = self.reload(path, version, live)
                self.verify(version, endpoints=live)
                self.version = version
            finally:
                self.pushing = None
        self.last_reload_s = max(r["seconds"] for r in reports)
        self.last_push_s = time.perf_counter() - start
        self.prune()
        return version


def make_weight_sync(cfg: RolloutConfig, endpoints: list[str], folder: str | Path | None) -> WeightSync:
    """The transport the recipe asks for (``rollout.weight_sync``); ``folder`` is read by folder sync only."""
    if cfg.weight_sync == "folder":
        return FolderWeightSync(
            endpoints,
            folder,
            timeout_s=cfg.sync_timeout_s,
            keep=cfg.keep_weight_versions,
            ranks_per_replica=cfg.tensor_parallel_size,
            token_env=cfg.token_env,
        )
    from ovr.rollout.nccl_sync import NcclWeightSync

    return NcclWeightSync(
        endpoints,
        master_address=cfg.nccl_master_address,
        master_port=cfg.nccl_master_port,
        ranks_per_replica=cfg.tensor_parallel_size,
        timeout_s=cfg.sync_timeout_s,
        token_env=cfg.token_env,
    )
