"""The checks of a first run, shared by the cheap first-run test and the full twin run.

A run's pods (task pods, job pods) and the chart's own pods are judged against the installed
objects (:mod:`policies`): each pod must fit a node, stay out of the mesh or be admitted by it, and
reach every Service it talks to through the NetworkPolicies; every API call of the run (ovr's own,
and those of KFP's driver/launcher and Argo's executor, replayed by :func:`replay_kfp_calls`) must
pass RBAC, and no field of an object ovr creates may be pruned (:mod:`apiserver`).
"""

from __future__ import annotations

from dataclasses import dataclass

import kubernetes
from policies import INJECT, Endpoint, mesh_admits, network_admits, selects, unschedulable

#: any port of a replica other than HTTP: NCCL weight transfer picks its own
NCCL_PORT = ("nccl", 40000)
#: pipeline parameter of each Secret -> the chart component its holder talks to
SECRET_PARAMS = {
    "s3_secret": "minio",
    "mlflow_secret": "mlflow",
    "reward_secret": "reward",
    "rollout_secret": "rollout",
}


def replay_kfp_calls(client: kubernetes.client.ApiClient, namespace: str, pod: str, workflow: str) -> None:
    """The API calls KFP v2's driver and launcher and Argo's executor (>= 3.4) make for one task pod,
    as the pod's service account (kubeflow/pipelines 7b70c7b backend/src/v2: config/env.go reads the
    launcher ConfigMap, objectstore/object_store.go the artifact-store Secret, driver/k8s.go and
    component/launcher_v2.go the pod itself, cmd/driver/main.go the run's Workflow; argo-workflows
    workflow/executor/taskresult.go creates and patches the task result). A 404 is an answer;
    only a refusal (403) counts, and the API server logs it."""
    core, custom = kubernetes.client.CoreV1Api(client), kubernetes.client.CustomObjectsApi(client)
    argo = ("argoproj.io", "v1alpha1", namespace)
    calls = [
        lambda: core.read_namespaced_config_map("kfp-launcher", namespace),
        lambda: core.read_namespaced_pod(pod, namespace),
        lambda: custom.get_namespaced_custom_object(*argo, "workflows", workflow),
        lambda: core.read_namespaced_secret("mlpipeline-minio-artifact", namespace),
        lambda: custom.create_namespaced_custom_object(*argo, "workflowtaskresults", {"metadata": {"name": pod}}),
        lambda: custom.patch_namespaced_custom_object(*argo, "workflowtaskresults", pod, {"outputs": {}}),
    ]
    for call in calls:
        try:
            call()
        except kubernetes.client.ApiException as err:
            if err.status not in (403, 404, 409):
                raise


@dataclass(frozen=True)
class Target:
    """A Service port as its pods see it: the pods' labels and annotations, the container port (name, number)."""

    component: str
    label_items: tuple[tuple[str, str], ...]
    port: tuple[str | None, int]
    intercepted: tuple[str, ...] | None = None  # Istio's includeInboundPorts (None: every port)

    @classmethod
    def of(cls, component: str, pod: dict, port: tuple[str | None, int]) -> Target:
        meta = pod["metadata"]
        inbound = (meta.get("annotations") or {}).get("traffic.sidecar.istio.io/includeInboundPorts")
        ports = None if inbound is None else tuple(p.strip() for p in inbound.split(",") if p.strip())
        return cls(component, tuple(sorted((meta.get("labels") or {}).items())), port, ports)

    @property
    def labels(self) -> dict:
        return dict(self.label_items)

    def through_sidecar(self) -> bool:
        return self.intercepted is None or "*" in self.intercepted or str(self.port[1]) in self.intercepted


class Install:
    """The rendered chart as a cluster holds it: Services, their pods, policies, mesh objects."""

    def __init__(self, docs: list[dict], namespace: str, mesh: str):
        self.docs, self.namespace, self.mesh = docs, namespace, mesh
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        self.mesh_objects = [d for d in docs if d["apiVersion"].startswith("security.istio.io")]
        self.workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job", "Pod")]
        self.targets: dict[str, Target] = {}
        for svc in (d for d in docs if d["kind"] == "Service"):
            pod = self._pod_of(svc["spec"]["selector"])
            component = svc["spec"]["selector"].get("app.kubernetes.io/component", "")
            for p in svc["spec"]["ports"]:
                number = self._container_port(pod, p.get("targetPort", p["port"]))
                host = f"{svc['metadata']['name']}.{namespace}.svc:{p['port']}"
                self.targets[host] = Target.of(component, pod, (p.get("name"), number))
                if svc["spec"].get("clusterIP") == "None":
                    self._replica_names(svc, pod, p, component, number)

    def _pod_of(self, selector: dict) -> dict:
        for w in self.workloads:
            tmpl = w if w["kind"] == "Pod" else w["spec"]["template"]
            if selects({"matchLabels": selector}, tmpl["metadata"].get("labels") or {}):
                return tmpl
        raise AssertionError(f"no pod of the chart matches Service selector {selector}")

    def _replica_names(self, svc: dict, pod: dict, port: dict, component: str, number: int) -> None:
        sts = next(
            w
            for w in self.workloads
            if w["kind"] == "StatefulSet" and w["spec"]["serviceName"] == svc["metadata"]["name"]
        )
        for i in range(int(sts["spec"].get("replicas", 1))):
            host = f"{sts['metadata']['name']}-{i}.{svc['metadata']['name']}.{self.namespace}.svc:{port['port']}"
            self.targets[host] = Target.of(component, pod, (port.get("name"), number))

    @staticmethod
    def _container_port(pod: dict, target) -> int:
        for c in pod["spec"]["containers"]:
            for cp in c.get("ports") or []:
                if target in (cp.get("name"), cp["containerPort"]):
                    return int(cp["containerPort"])
        return int(target)

    def by_component(self, component: str) -> list[Target]:
        return [t for t in self.targets.values() if t.component == component]

    def chart_pods(self) -> dict[str, dict]:
        """Every pod template of the chart (hooks and the test pod included), by workload."""
        return {
            f"{w['kind']}/{w['metadata']['name']}": w if w["kind"] == "Pod" else w["spec"]["template"]
            for w in self.workloads
        }


def secret_targets(pod: dict, params: dict, install: Install, nccl: bool) -> set[Target]:
    """What a pod of the run talks to, judged by the credentials it is given: the holder of a
    Service's Secret is its client (task pods by the run's parameters, job pods alike); a trainer
    pod also reaches every replica port when weights go over NCCL."""
    names = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in pod["spec"]["containers"]
        for e in c.get("env") or []
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    wanted = {component for param, component in SECRET_PARAMS.items() if params.get(param) in names}
    out = {t for c in wanted for t in install.by_component(c)}
    if nccl and pod["metadata"].get("labels", {}).get("ovr.dev/trainer") == "true":
        out |= {Target(t.component, t.label_items, NCCL_PORT, t.intercepted) for t in install.by_component("rollout")}
    return out


def named_targets(pod: dict, install: Install) -> set[Target]:
    """The Services a pod's containers name in their command, args and env values (full, namespaced
    or short Service names with the port), e.g. the chart's pods reaching each other."""
    said = "\n".join(
        str(v)
        for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
        for v in [*(c.get("command") or []), *(c.get("args") or []), *(e.get("value", "") for e in c.get("env") or [])]
    )
    out = set()
    for host, target in install.targets.items():
        name, _, port = host.rpartition(":")
        short = name.removesuffix(f".{install.namespace}.svc")
        if any(f"{n}:{port}" in said for n in (name, f"{short}.{install.namespace}", short)):
            out.add(target)
    return out


def pod_problems(name: str, pod: dict, targets: set[Target], install: Install, in_mesh_ok: bool = False) -> list[str]:
    """Why ``pod`` would not run or not reach ``targets`` on a cluster with ``install``."""
    problems = []
    why = unschedulable(pod)
    if why:
        problems.append(f"{name} is unschedulable: {why}")
    meta = pod.get("metadata") or {}
    src = Endpoint(meta.get("labels") or {}, install.namespace)
    sidecar = src.sidecar("istio", meta.get("annotations"))  # a profile namespace injects unless opted out
    if sidecar and not in_mesh_ok:
        problems.append(f"{name} gets an Istio sidecar ({INJECT} unset): it would never finish, or proxy NCCL")
    for t in sorted(targets, key=lambda t: (t.component, t.port[1])):
        dst = Endpoint(t.labels, install.namespace)
        if not network_admits(install.policies, src, dst, t.port):
            problems.append(
                f"{name} -> {t.component}:{t.port[0] or t.port[1]}: no NetworkPolicy admits labels {src.labels}"
            )
        if dst.sidecar(install.mesh, None) and t.through_sidecar():
            denied = mesh_admits(install.mesh_objects, dst, t.port[1], plaintext=not sidecar)
            if denied:
                problems.append(f"{name} -> {t.component}:{t.port[1]}: Istio refuses it: {denied}")
    return problems
