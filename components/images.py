"""Container images of ovr's pipeline tasks and services: the one place their tags are defined.

Override at compile time with env vars (e.g. a private registry mirror):
``OVR_IMAGE=registry.local/ovr:0.1.0 ovr pipeline compile``.
"""

from __future__ import annotations

import os

VERSION = "0.1.0"
REGISTRY = os.environ.get("OVR_REGISTRY", "ghcr.io/ovr-project")

#: trainer + components image (docker/ovr.Dockerfile): ovr, torch, DeepSpeed, kfp
OVR_IMAGE = os.environ.get("OVR_IMAGE", f"{REGISTRY}/ovr:{VERSION}")
#: reward service image (services/reward/Dockerfile)
REWARD_IMAGE = os.environ.get("OVR_REWARD_IMAGE", f"{REGISTRY}/ovr-reward:{VERSION}")
#: rollout image: upstream vLLM + ovr's worker extension (services/rollout/Dockerfile)
ROLLOUT_IMAGE = os.environ.get("OVR_ROLLOUT_IMAGE", f"{REGISTRY}/ovr-rollout:{VERSION}")
