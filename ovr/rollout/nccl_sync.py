"""GPU weight push through vLLM's native NCCL weight transfer, guarded by a deadline.

Replicas run with ``--weight-transfer-config '{"backend": "nccl"}'`` and dev mode. The trainer
(rank 0) and every GPU worker of every replica join one NCCL group: replica ``i`` with tensor
parallelism ``t`` holds ranks ``1 + i*t .. (i+1)*t``. vLLM's trainer-side engine
(``NCCLTrainerWeightTransferEngine``) drives ``/init_weight_transfer_engine``,
``/start_weight_update``, ``/update_weights`` (concurrently with its NCCL broadcast) and
``/finish_weight_update``; :class:`ReplicaFanoutClient` carries those calls to all replicas at once,
each with the replicas' bearer token (env var ``token_env``, see :mod:`ovr.rollout.weights`).

The replicas reach the trainer's rendezvous at the trainer pod's IP (``rollout.nccl_master_address``,
else ``OVR_POD_IP``, which the pipeline sets from the downward API ``status.podIP``): a pod has no
resolvable DNS name of its own. After each push every replica's version and TP-rank fingerprints
are verified (:meth:`~ovr.rollout.weights.WeightSync.verify`).

A broadcast that hangs (a replica died mid-transfer, a wrong address) would block forever, so
every phase runs under :func:`run_with_deadline` and raises :class:`WeightSyncTimeout` instead;
the group is then unusable and further pushes refuse until a new ``NcclWeightSync`` is built.

A replica that is unreachable when a push starts is left out of the group, and one that restarted
has lost its end of it (:meth:`NcclWeightSync.restore`, called by the rollout client, which leaves
it out meanwhile): before the next push the group is rebuilt over the replicas that answer then
(the old engine shut down, a new rendezvous with their ranks renumbered) and the push reaches them
all, so a restarted replica serves again only with the current weights.

This needs CUDA GPUs and vLLM importable in the trainer's environment, so it cannot run on the
CPU machines the tests use: its tests drive the deadline and failure logic with a stand-in engine
(``engine_factory``) against a local fake of the replicas' HTTP routes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ovr.rollout.protocol import DEFAULT_TOKEN_ENV, auth_headers
from ovr.rollout.weights import WeightSync, WeightSyncError, WeightSyncTimeout, post_all, resume_quietly

EngineFactory = Callable[[dict, "ReplicaFanoutClient", Any], Any]


def run_with_deadline(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """``fn()`` in a daemon thread; its result, its exception, or ``WeightSyncTimeout`` after ``timeout_s``.

    A hung NCCL call cannot be interrupted; the thread is left behind (daemon, so it does not
    keep the process alive) and the caller learns of the failure on time.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name=f"ovr-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise WeightSyncTimeout(f"{what} did not finish within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def rendezvous_address(configured: str | None, environ: dict[str, str] | None = None) -> str:
    """Where replicas reach the trainer: the configured address, else this pod's IP (downward API)."""
    environ = os.environ if environ is None else environ
    address = configured or environ.get("OVR_POD_IP")
    if not address:
        raise WeightSyncError(
            "NCCL weight sync needs the trainer's address: set rollout.nccl_master_address, "
            "or OVR_POD_IP from the downward API (status.podIP), as the pipeline's RL pods do"
        )
    return address


class ReplicaFanoutClient:
    """vLLM's ``VLLMWeightSyncClient`` protocol over HTTP, fanned out to every replica.

    Each replica receives the same calls, except that its ``rank_offset`` is placed after the
    trainer and the replicas before it. HTTP calls time out at the push's deadline.
    """

    def __init__(
        self,
        endpoints: list[str],
        ranks_per_replica: int,
        deadline: Callable[[], float],
        token_env: str = DEFAULT_TOKEN_ENV,
    ):
        self.endpoints = endpoints
        self.ranks_per_replica = ranks_per_replica
        self.deadline = deadline  # seconds left
        self.token_env = token_env

    def _timeout(self) -> float:
        left = self.deadline()
        if left <= 0:
            raise WeightSyncTimeout("weight push deadline passed")
        return left

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        timeout = self._timeout()
        headers = auth_headers(self.token_env)

        def post(i: int, endpoint: str) -> None:
            payload = {**init_info, "rank_offset": 1 + i * self.ranks_per_replica}
            r = httpx.post(
                endpoint + "/init_weight_transfer_engine", json={"init_info": payload}, timeout=timeout, headers=headers
            )
            if r.status_code != 200:
                raise WeightSyncError(
                    f"{endpoint}/init_weight_transfer_engine answered {r.status_code}: {r.text[:300]}"
                )

        with ThreadPoolExecutor(max_workers=len(self.endpoints)) as pool:
            futures = [pool.submit(post, i, e) for i, e in enumerate(self.endpoints)]
        for future in futures:
            future.result()

    def start_weight_update(self) -> None:
        post_all(self.endpoints, "/start_weight_update", timeout=self._timeout(), token_env=self.token_env)

    def update_weights(self, update_info: Any) -> None:
        post_all(
            self.endpoints,
            "/update_weights",
            json={"update_info": update_info},
            timeout=self._timeout(),
            token_env=self.token_env,
        )

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        body = {"weight_version": weight_version} if weight_version is not None else None
        post_all(self.endpoints, "/finish_weight_update", json=body, timeout=self._timeout(), token_env=self.token_env)


def vllm_nccl_engine(init_info: dict, client: ReplicaFanoutClient, model) -> Any:
    """vLLM's trainer-side NCCL engine over ``model``'s parameters (rendezvous included)."""
    from vllm.distributed.weight_transfer.base import ModuleSource
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo, NCCLTrainerWeightTransferEngine

    return NCCLTrainerWeightTransferEngine.trainer_init(
        NCCLTrainerInitInfo(**init_info, rank=0),
        client=client,
        source=model.weight_source() if hasattr(model, "weight_source") else ModuleSource(model),
    )


class NcclWeightSync(WeightSync):
    """Weights over NCCL straight from the trainer's GPU into every replica's GPUs."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        master_address: str | None = None,
        master_port: int = 29555,
        ranks_per_replica: int = 1,
        timeout_s: float = 300.0,
        engine_factory: EngineFactory | None = None,
        token_env: str = DEFAULT_TOKEN_ENV,
    ):
        super().__init__(endpoints, timeout_s, ranks_per_replica, token_env)
        self.address, self.port = rendezvous_address(master_address), master_port
        self.engine_factory = engine_factory or vllm_nccl_engine
        self.engine = None
        self.members: list[str] = []  # the replicas in the current group
        self.rejoin: set[str] = set()  # replicas that restarted: the group is rebuilt before the next push
        self.failed: str | None = None
        self._deadline = 0.0

    @property
    def init_info(self) -> dict:
        return {
            "master_address": self.address,
            "master_port": self.port,
            "world_size": 1 + len(self.members) * self.ranks_per_replica,
        }

    def _client(self) -> ReplicaFanoutClient:
        return ReplicaFanoutClient(
            self.members, self.ranks_per_replica, lambda: self._deadline - time.monotonic(), self.token_env
        )

    def restore(self, endpoint: str) -> bool:
        """A restarted replica lost its end of the group: rebuilt (with it) before the next push."""
        self.rejoin.add(endpoint.rstrip("/"))
        return False

    def _regroup(self) -> None:
        """A new group over the replicas that answer now, when they differ from its members or one
        of them restarted."""
        live = self.live()
        if self.engine is not None and live == self.members and not self.rejoin & set(live):
            return
        if self.engine is not None:
            with contextlib.suppress(Exception):
                run_with_deadline(self.engine.shutdown, 30.0, "NCCL group shutdown")
        self.engine, self.members = None, live
        self.rejoin -= set(live)

    def push_weights(self, model) -> int:
        """Send ``model``'s weights to every replica; with ``pause_mode`` (async RL) the replicas are
        paused in that vLLM mode around the transfer and tagged with the new version before they resume."""
        if self.failed:
            raise WeightSyncError(f"an earlier NCCL transfer failed ({self.failed}); restart the replicas and the sync")
        with self.lock:
            version = self.version + 1
            start = time.perf_counter()
            self._deadline = time.monotonic() + self.timeout_s
            try:
                self._regroup()
                if self.engine is None:
                    self.engine = run_with_deadline(
                        lambda: self.engine_factory(dict(self.init_info), self._client(), model),
                        self.timeout_s,
                        "NCCL rendezvous",
                    )
            except BaseException as e:
                self.failed = repr(e)
                raise
            self.pushing = version
            try:
                self._send(version)
                # NCCL updates tag the server, not ovr's workers
                self.verify(version, worker_versions=False, endpoints=self.members)
                self.version = version
            finally:
                self.pushing = None
        self.last_push_s = time.perf_counter() - start
        return version

    def _send(self, version: int) -> None:
        """The transfer and the version tag, inside a pause when ``pause_mode`` is set."""
        left = lambda: max(1.0, self._deadline - time.monotonic())  # noqa: E731
        paused = time.perf_counter()
        if self.pause_mode:
            post_all(self.members, "/pause", params={"mode": self.pause_mode}, timeout=left(), token_env=self.token_env)
        try:
            try:
                run_with_deadline(self.engine.send_weights, left(), f"NCCL push of v{version}")
            except BaseException as e:
                self.failed = repr(e)
                raise
            self.set_version(version, self.members)
        except BaseException:
            if self.pause_mode:
                resume_quietly(self.members, self.token_env)
            raise
        if self.pause_mode:
            post_all(self.members, "/resume", timeout=left(), token_env=self.token_env)
        self.last_pause_s = time.perf_counter() - paused

    def close(self) -> None:
        if self.engine is not None and not self.failed:
            self.engine.shutdown()
        self.engine = None
