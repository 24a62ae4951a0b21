"""vLLM worker extension for ovr's weight updates (``--worker-extension-cls``).

vLLM mixes this class into every worker of a replica; its methods are then reachable over
``POST /collective_rpc`` (dev mode, ``VLLM_SERVER_DEV_MODE=1``) as
``{"method": "ovr_reload_weights", "kwargs": {"weights_path": DIR, "version": "3"}}``.
The answer carries one result per worker, each with the version now served, the reload time and
a fingerprint of the loaded parameters, so the trainer can check that every replica (and every
tensor-parallel rank of it) took the same weights.

It imports only the standard library and torch (vLLM's runtime): ovr itself is not installed
in the rollout image. ``OVR_WEIGHTS_DIR``, when set, is the only folder reloads may read from.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch


def _check_weights_path(weights_path: str) -> Path:
    """The folder to reload from, after checking it holds safetensors and lies in the allowed root."""
    path = Path(weights_path).resolve()
    root = os.environ.get("OVR_WEIGHTS_DIR")
    if root and not path.is_relative_to(Path(root).resolve()):
        raise ValueError(f"weights path {path} is outside OVR_WEIGHTS_DIR={root}")
    if not path.is_dir():
        raise FileNotFoundError(f"weights folder {path} does not exist on this replica")
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"weights folder {path} holds no *.safetensors files")
    return path


def parameter_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of every parameter's sum and absolute sum (cheap on GPU: one transfer)."""
    stats = []
    names = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = p.detach()
            if not t.is_floating_point():
                continue
            t = t.float()
            stats.append(torch.stack([t.sum(), t.abs().sum()]))
            names.append(name)
    if not stats:
        return "empty"
    values = torch.stack(stats).double().cpu().tolist()
    digest = hashlib.sha256()
    for name, (s, a) in zip(names, values):
        digest.update(f"{name}:{s:.6e}:{a:.6e};".encode())
    return digest.hexdigest()[:16]


class OvrWorkerExtension:
    """Methods added to vLLM's worker: reload from a folder, report the served version."""

    def ovr_reload_weights(self, weights_path: str, version: str) -> dict:
        """Reload the policy in place from ``weights_path`` (HF ``save_pretrained`` layout)."""
        path = _check_weights_path(weights_path)
        start = time.perf_counter()
        self.reload_weights(weights_path=str(path))  # vLLM's in-place reload (checkpoint names)
        seconds = time.perf_counter() - start
        self.ovr_version = int(version)
        return {
            "version": self.ovr_version,
            "seconds": seconds,
            "fingerprint": parameter_fingerprint(self.model_runner.get_model()),
        }

    def ovr_weight_version(self) -> dict:
        """The version this worker serves (0 = the weights it started with) and its fingerprint."""
        return {
            "version": getattr(self, "ovr_version", 0),
            "fingerprint": parameter_fingerprint(self.model_runner.get_model()),
        }
