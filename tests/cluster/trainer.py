"""Kubeflow Trainer v2's part in the cluster twin: run each TrainJob created on the emulated API server.

Like the TrainJob controller with the ``torch-distributed`` ClusterTrainingRuntime, for a new
TrainJob it starts ``trainer.numNodes`` pods named ``<job>-node-0-<i>`` from the job's own spec:
``trainer.image``/``command``/``env``, the ``runtimePatches`` pod settings (volumes, the ``node``
container's mounts), and the variables the torch plugin injects: ``PET_NNODES``,
``PET_NPROC_PER_NODE`` (``trainer.numProcPerNode``), ``PET_NODE_RANK``, ``PET_MASTER_ADDR``
(``<job>-node-0-0.<job>``) and ``PET_MASTER_PORT`` (29500), which the twin's DNS maps to
127.0.0.1 and a free port. It reports ``jobsStatus`` while pods run and a ``Complete`` or ``Failed``
condition when they end, and stops the pods when the TrainJob is deleted. Every TrainJob it sees is
kept (``seen``) for the test to check, and so is each pod as the Trainer would create it
(``manifests``: the ``runtimePatches`` pod template's labels, annotations, service account,
volumes, tolerations and nodeSelector, what survived the API server's pruning; ``resourcesPerNode``
on the ``node`` container; JobSet's labels).

``start=False`` runs no process: each job's pods are registered with the API server as Pods that
ran to completion (``fail=True``: the first exits 1), and the job is reported Complete (or Failed)
at once, so a launcher's calls can be checked without training.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pods import Namespace, Pod, start_pod, stop_pod

from ovr.serving import free_port

TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"
RUNTIMES = {"torch-distributed"}


def _condition(type_: str, reason: str, message: str) -> dict:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@dataclass
class TrainerTwin:
    kmock: object
    ns: Namespace
    service_account: str
    seen: dict[str, dict] = field(default_factory=dict)  # job name -> the TrainJob as created
    pods: dict[str, list[Pod]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    manifests: dict[str, list[dict]] = field(default_factory=dict)  # job name -> its pods as created
    start: bool = True
    fail: bool = False
    sightings: set[str] = field(default_factory=set)  # jobs seen once, not started yet

    async def run(self) -> None:
        """Reconcile every 0.2 s until cancelled."""
        try:
            while True:
                self.reconcile()
                await asyncio.sleep(0.2)
        finally:
            for pods in self.pods.values():
                for pod in pods:
                    stop_pod(pod)

    def reconcile(self) -> None:
        resource = self.kmock.resource(TRAINJOBS)
        for key, obj in list(self.kmock.objects.items()):
            if key[0] != resource:
                continue
            name = key[2]
            if obj.deleted:
                if name not in self.deleted:
                    self.deleted.add(name)
                    for pod in self.pods.get(name, []):
                        stop_pod(pod)
                continue
            if name not in self.pods:
                # a job seen twice, 0.2 s apart: kmock stores even a dry-run create for the length of
                # its request (Validate config's dry run of the job), which the controller never sees
                if name in self.sightings:
                    self.seen[name] = obj.raw
                    self._start(name, obj)
                self.sightings.add(name)
            else:
                self._report(name, obj)

    def _start(self, name: str, obj) -> None:
        spec = obj.raw["spec"]
        runtime = spec["runtimeRef"]["name"]
        if runtime not in RUNTIMES:
            obj.patch({"status": {"conditions": [_condition("Failed", "TrainingRuntimeNotSupported", runtime)]}})
            self.pods[name] = []
            return
        manifests = job_pods(name, obj.raw)
        self.manifests[name] = manifests
        if not self.start:
            self._register(name, manifests, obj)
            return
        trainer = spec["trainer"]
        nodes, port = len(manifests), free_port()
        master = f"{name}-node-0-0.{name}"
        self.ns.dns[master] = "127.0.0.1"  # the node-0 pod's DNS name (JobSet's headless Service)
        pods = []
        for rank, manifest in enumerate(manifests):
            # PET_MASTER_PORT is 29500 on a cluster; every twin pod shares 127.0.0.1, so a free port
            pet = {
                "PET_NNODES": str(nodes),
                "PET_NPROC_PER_NODE": str(trainer.get("numProcPerNode", 1)),
                "PET_NODE_RANK": str(rank),
                "PET_MASTER_ADDR": master,
                "PET_MASTER_PORT": str(port),
            }
            pod_spec = manifest["spec"]
            pods.append(
                start_pod(
                    self.ns,
                    manifest["metadata"]["name"],
                    pod_spec["containers"][0],
                    pod_spec.get("volumes", []),
                    extra_env=pet,
                    service_account=pod_spec["serviceAccountName"],
                    manifest=manifest,
                )
            )
        self.pods[name] = pods
        obj.patch({"status": {"jobsStatus": [{"name": "node", "active": nodes}]}})

    def _register(self, name: str, manifests: list[dict], obj) -> None:
        """Pods that ran (the first failed when ``fail``), and the job's end, without running anything."""
        pods = self.kmock.resource("v1/pods")
        for i, m in enumerate(manifests):
            code = 1 if self.fail and i == 0 else 0
            terminated = {"exitCode": code, "reason": "Error" if code else "Completed", "message": f"exit {code}"}
            status = {
                "phase": "Failed" if code else "Succeeded",
                "containerStatuses": [
                    {
                        "name": "node",
                        "image": m["spec"]["containers"][0]["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
            meta = m["metadata"] | {"namespace": self.ns.name}
            self.kmock.objects[pods, self.ns.name, meta["name"]] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
            } | {
                "spec": m["spec"],
                "status": status,
            }
        end = (
            _condition("Failed", "JobSetFailed", "node 0 exited 1")
            if self.fail
            else _condition("Complete", "JobSetCompleted", "TrainJob completed")
        )
        obj.patch({"status": {"conditions": [end]}})
        self.pods[name] = []

    def _report(self, name: str, obj) -> None:
        conditions = (obj.raw.get("status") or {}).get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") for c in conditions):
            return
        pods = self.pods[name]
        codes = [p.proc.poll() for p in pods]
        failed = [p for p, c in zip(pods, codes) if c not in (None, 0)]
        if failed:
            for p in pods:
                stop_pod(p)
            msg = "; ".join(f"{p.name} exited {p.proc.returncode}" for p in failed)
            obj.patch({"status": {"conditions": [_condition("Failed", "JobSetFailed", msg)]}})
        elif pods and all(c == 0 for c in codes):
            obj.patch(
                {
                    "status": {
                        "conditions": [_condition("Complete", "JobSetCompleted", "TrainJob completed")],
                        "jobsStatus": [{"name": "node", "succeeded": len(pods)}],
                    }
                }
            )


def job_pods(name: str, job: dict) -> list[dict]:
    """The pods Trainer's ``torch-distributed`` runtime makes of ``job`` (one per node, ``node`` container)."""
    spec = job["spec"]
    trainer = spec.get("trainer") or {}
    patch = (spec.get("runtimePatches") or [{}])[0].get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {})
    template = (patch.get("replicatedJobs") or [{}])[0].get("template", {}).get("spec", {}).get("template", {})
    meta, pod_spec = template.get("metadata") or {}, template.get("spec") or {}
    mounts = next((c.get("volumeMounts", []) for c in pod_spec.get("containers", []) if c["name"] == "node"), [])
    container = {
        "name": "node",
        "image": trainer["image"],
        "command": trainer["command"],
        "args": trainer.get("args", []),
        "env": trainer.get("env", []),
        "resources": trainer.get("resourcesPerNode") or {},
        "volumeMounts": mounts,
    }
    labels = (meta.get("labels") or {}) | {
        "jobset.sigs.k8s.io/jobset-name": name,
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer",
    }
    out = []
    for rank in range(int(trainer.get("numNodes", 1))):
        pod = {"serviceAccountName": pod_spec.get("serviceAccountName") or "default", "containers": [container]}
        pod |= {
            k: pod_spec[k] for k in ("volumes", "tolerations", "nodeSelector", "imagePullSecrets") if pod_spec.get(k)
        }
        metadata = {
            "name": f"{name}-node-0-{rank}",
            "labels": dict(labels),
            "annotations": dict(meta.get("annotations") or {}),
        }
        out.append({"metadata": metadata, "spec": pod})
    return out
