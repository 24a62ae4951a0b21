"""What the twin's network, mesh and scheduler refuse, judged from the objects alone.

The twin runs every pod on 127.0.0.1, so nothing here is enforced by packets; instead each pod the
run makes is checked against the rendered objects that would decide its fate on a cluster:

- :func:`network_admits`: the chart's NetworkPolicies (ingress; podSelector, namespaceSelector,
  ports by name or number; a pod no policy selects admits everything), as an enforcing plugin
  (Calico, Cilium) applies them.
- :func:`mesh_admits`: Istio in a Kubeflow profile namespace. A pod without a sidecar (KFP's task
  pods, ovr's job pods) speaks plaintext and has no identity: the destination's PeerAuthentication
  must be PERMISSIVE (the twin assumes a STRICT mesh default, as hardened installs set) and an ALLOW
  AuthorizationPolicy rule without ``from`` identities must cover the port (Kubeflow's
  ``global-deny-all`` denies everything else). A pod that opts out of injection is not judged.
- :func:`unschedulable`: the twin's nodes (:data:`NODES`: 8-GPU nodes tainted ``nvidia.com/gpu``,
  CPU nodes) against a pod's requests (cpu, memory, GPUs), tolerations and nodeSelector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INJECT = "sidecar.istio.io/inject"
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3}


@dataclass(frozen=True)
class Node:
    """A node of the twin's cluster: allocatable resources, labels, taints."""

    name: str
    allocatable: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict, ...] = ()


#: an 8 x H100 node as cloud GPU pools taint them (local NVMe for ephemeral storage), and a CPU node
NODES = (
    Node(
        "gpu-node",
        {"cpu": "192", "memory": "1800Gi", "nvidia.com/gpu": "8", "ephemeral-storage": "7Ti"},
        {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    ),
    Node(
        "cpu-node",
        {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "1Ti"},
        {"node.kubernetes.io/instance-type": "cpu"},
    ),
)


def quantity(value) -> float:
    """A Kubernetes quantity ("32", "500m", "256Gi", 2) as a number."""
    hit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if hit is None or hit.group(2) not in _UNITS:
        raise ValueError(f"not a quantity: {value!r}")
    return float(hit.group(1)) * _UNITS[hit.group(2)]


def selects(selector: dict | None, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions) against labels; an empty selector selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Endpoint:
    """A pod's side of a connection: its labels, namespace (and that namespace's labels)."""

    labels: dict
    namespace: str
    namespace_labels: dict = field(default_factory=dict)

    def sidecar(self, mesh: str, annotations: dict | None = None) -> bool:
        opted = self.labels.get(INJECT, (annotations or {}).get(INJECT))
        return mesh == "istio" if opted is None else opted == "true"


def _port_matches(spec_ports: list[dict] | None, port: tuple[str, int]) -> bool:
    return not spec_ports or any(p.get("port") in port for p in spec_ports)


def _peer_matches(peer: dict, src: Endpoint, dst_ns: str) -> bool:
    if "ipBlock" in peer:
        return False  # pod IPs are not modelled
    if "namespaceSelector" in peer:
        if not selects(
            peer["namespaceSelector"], src.namespace_labels | {"kubernetes.io/metadata.name": src.namespace}
        ):
            return False
    elif src.namespace != dst_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], src.labels)


def network_admits(policies: list[dict], src: Endpoint, dst: Endpoint, port: tuple[str, int]) -> bool:
    """Whether the NetworkPolicies let ``src`` reach ``dst`` on ``port`` (name, number)."""
    chosen = [
        p
        for p in policies
        if p["metadata"].get("namespace", dst.namespace) == dst.namespace
        and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
        and selects(p["spec"].get("podSelector"), dst.labels)
    ]
    if not chosen:
        return True
    for policy in chosen:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            if _port_matches(rule.get("ports"), port) and (
                not peers or any(_peer_matches(peer, src, dst.namespace) for peer in peers)
            ):
                return True
    return False


def mesh_admits(objects: list[dict], dst: Endpoint, port: int, plaintext: bool) -> str | None:
    """None when Istio lets a (plaintext or mTLS) client through to ``dst``'s ``port``, else why not."""
    mine = [o for o in objects if o["metadata"].get("namespace", dst.namespace) == dst.namespace]
    peer = [o for o in mine if o["kind"] == "PeerAuthentication" and selects(o["spec"].get("selector"), dst.labels)]
    mode = next((p["spec"].get("mtls", {}).get("mode") for p in peer), "STRICT")
    if plaintext and mode not in ("PERMISSIVE", "DISABLE"):
        return f"mTLS {mode}: a plaintext client (no sidecar) is refused"
    for policy in (o for o in mine if o["kind"] == "AuthorizationPolicy"):
        spec = policy["spec"]
        if spec.get("action", "ALLOW") != "ALLOW" or not selects(spec.get("selector"), dst.labels):
            continue
        for rule in spec.get("rules") or []:
            if plaintext and any(_needs_identity(f.get("source") or {}) for f in rule.get("from") or []):
                continue
            ports = [p for t in rule.get("to") or [] for p in (t.get("operation") or {}).get("ports") or []]
            if not ports or str(port) in ports:
                return None
    return "no AuthorizationPolicy allows it (Kubeflow's global-deny-all)"


def _needs_identity(source: dict) -> bool:
    return any(source.get(k) for k in ("principals", "requestPrincipals", "namespaces"))


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value") == taint.get("value"):
            return True
    return False


def requests_of(pod: dict) -> dict[str, float]:
    """Summed container requests (limits stand in for missing requests, as the API server defaults them)."""
    total: dict[str, float] = {}
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        for name, value in ((res.get("limits") or {}) | (res.get("requests") or {})).items():
            total[name] = total.get(name, 0.0) + quantity(value)
    return total


def unschedulable(pod: dict, nodes: tuple[Node, ...] = NODES) -> str | None:
    """None when some node takes ``pod`` (resources, taints, nodeSelector), else each node's reason."""
    spec, wanted, why = pod["spec"], requests_of(pod), []
    for node in nodes:
        short = [r for r, v in wanted.items() if v > quantity(node.allocatable.get(r, 0))]
        taint = next((t for t in node.taints if not _tolerates(spec.get("tolerations") or [], t)), None)
        label = next((k for k, v in (spec.get("nodeSelector") or {}).items() if node.labels.get(k) != v), None)
        if not (short or taint or label):
            return None
        why.append(
            f"{node.name}: "
            + "; ".join(
                s
                for s in (
                    short and f"insufficient {', '.join(short)}",
                    taint and f"untolerated taint {taint['key']}",
                    label and f"nodeSelector {label}",
                )
                if s
            )
        )
    return " | ".join(why)
