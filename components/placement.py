"""Where and how training pods run, as the install sets it: one reading of the chart's env ConfigMap.

The chart's ``<release>-env`` ConfigMap carries, besides endpoints, what the cluster's GPU nodes need
of a training pod: the image of the release and its pull secrets, node selector and tolerations, a
ClusterTrainingRuntime (whose pod template may carry a runtime class), a runtime class for
PyTorchJob pods, extra per-node resources (RDMA devices), a scratch volume for checkpoints and model
copies, and NCCL's transport settings. :class:`InstallPlacement` parses them (a bad value names its
key); the job launcher applies all of them to job pods, and Validate config hands image, pull secret,
node selector and tolerations to the pipeline's own task pods (KFP resolves those at run time).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ovr.k8s.spec import Toleration, TrainerJobSpec

#: ConfigMap key -> InstallPlacement field (JSON values for the dict and list fields)
PLACEMENT_KEYS = {
    "OVR_TRAINER_IMAGE": "image",
    "OVR_IMAGE_PULL_SECRETS": "pull_secrets",
    "OVR_TRAINER_NODE_SELECTOR": "node_selector",
    "OVR_TRAINER_TOLERATIONS": "tolerations",
    "OVR_TRAINER_RUNTIME": "runtime",
    "OVR_TRAINER_RUNTIME_CLASS": "runtime_class",
    "OVR_TRAINER_RESOURCES": "extra_resources",
    "OVR_SCRATCH_SIZE": "scratch_size",
    "OVR_SCRATCH_STORAGE_CLASS": "scratch_storage_class",
}
#: NCCL's transport settings, passed to every training pod as they are set in the ConfigMap
NCCL_KEYS = (
    "NCCL_SOCKET_IFNAME",
    "NCCL_IB_DISABLE",
    "NCCL_IB_HCA",
    "NCCL_IB_GID_INDEX",
    "NCCL_NET_GDR_LEVEL",
    "NCCL_CROSS_NIC",
    "NCCL_DEBUG",
)
_JSON = {"node_selector", "tolerations", "extra_resources"}


class PlacementError(ValueError):
    """An install setting that cannot be used; the message names its ConfigMap key."""


class InstallPlacement(BaseModel):
    """The install's settings for training pods (job pods and single-node task pods)."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(None, min_length=1, description="Image of every ovr pod of this release.")
    pull_secrets: list[str] = Field(default_factory=list, description="Pull secrets of that image.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of training pods.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of training pods.")
    runtime: str = Field("torch-distributed", min_length=1, description="ClusterTrainingRuntime of TrainJobs.")
    runtime_class: str | None = Field(None, description="runtimeClassName of PyTorchJob pods.")
    extra_resources: dict[str, str] = Field(default_factory=dict, description="Extra resources per node (RDMA).")
    scratch_size: str | None = Field(None, description="Scratch volume per job pod (checkpoints, model copies).")
    scratch_storage_class: str | None = Field(None, description="Storage class of the scratch volume.")
    nccl_env: dict[str, str] = Field(default_factory=dict, description="NCCL_* transport settings.")

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> InstallPlacement:
        """The settings present in ``environ`` (the ConfigMap's keys as env vars); others keep defaults."""
        values: dict[str, Any] = {}
        for key, name in PLACEMENT_KEYS.items():
            raw = (environ.get(key) or "").strip()
            if not raw:
                continue
            try:
                if name in _JSON:
                    values[name] = json.loads(raw)
                elif name == "pull_secrets":
                    values[name] = [s.strip() for s in raw.split(",") if s.strip()]
                else:
                    values[name] = raw
            except json.JSONDecodeError as err:
                raise PlacementError(f"the install's {key}={raw!r} is not JSON ({err})") from None
        values["nccl_env"] = {k: environ[k] for k in NCCL_KEYS if environ.get(k)}
        try:
            placement = cls.model_validate(values)
            placement.check()
        except ValidationError as err:
            where = ", ".join(_key_of(e["loc"]) for e in err.errors())
            raise PlacementError(f"the install's {where} cannot be used: {err}") from None
        return placement

    def check(self) -> None:
        """The values a job spec would refuse, refused here (named by their ConfigMap key)."""
        TrainerJobSpec(
            name="check",
            namespace="check",
            image=self.image or "check",
            command=["true"],
            node_selector=self.node_selector,
            tolerations=self.tolerations,
            runtime=self.runtime,
            runtime_class=self.runtime_class,
            extra_resources=self.extra_resources,
            scratch_size=self.scratch_size,
            scratch_storage_class=self.scratch_storage_class,
        )

    def write_task_outputs(self, image: str, node_selector: str, tolerations: str) -> None:
        """Validate config's outputs the pipeline applies to its later task pods (KFP output files):
        the install's image (else the one this task runs), node selector and tolerations as JSON."""
        from components.images import OVR_IMAGE, VERSION

        chosen = self.image or OVR_IMAGE
        tag = chosen.rpartition(":")[2]
        if self.image and tag != VERSION:
            print(f"warning: the install runs image {chosen}, this pipeline was compiled for ovr {VERSION}", flush=True)
        for path, value in (
            (image, chosen),
            (node_selector, json.dumps(self.node_selector)),
            (tolerations, json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in self.tolerations])),
        ):
            with open(path, "w") as f:
                f.write(value)

    def job_fields(self) -> dict[str, Any]:
        """The TrainerJobSpec fields these settings fill."""
        out: dict[str, Any] = {
            "node_selector": self.node_selector,
            "runtime": self.runtime,
            "runtime_class": self.runtime_class,
            "extra_resources": self.extra_resources,
            "scratch_size": self.scratch_size,
            "scratch_storage_class": self.scratch_storage_class,
            "image_pull_secrets": self.pull_secrets,
        }
        return out


def _key_of(loc: tuple) -> str:
    name = str(loc[0]) if loc else ""
    return next((k for k, v in PLACEMENT_KEYS.items() if v == name), name)
