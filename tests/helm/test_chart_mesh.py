"""The chart in an Istio-injected namespace (every Kubeflow profile namespace is one).

mesh=none (the default): every pod the chart runs (servers, hook Jobs, the model bootstrap Job, the
helm test pod) opts out of sidecar injection, as KFP's pipeline pods and ovr's job pods do. mesh=istio:
the chart's pods get native sidecars (Jobs complete, init containers reach the network) and Istio
objects admit ovr's sidecar-less clients to each service port; vLLM's NCCL ports bypass its sidecar.
"""

from __future__ import annotations

from chart_kit import RELEASE, WORKLOAD_KINDS, find, render_docs

from ovr.k8s.kinds import pytorchjob_manifest, trainjob_manifest
from ovr.k8s.spec import TrainerJobSpec

INJECT = "sidecar.istio.io/inject"
NATIVE = "sidecar.istio.io/nativeSidecar"


def pod_meta(doc: dict) -> dict:
    return doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]


def pods(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": pod_meta(d) for d in docs if d["kind"] in WORKLOAD_KINDS}


def test_every_chart_pod_opts_out_of_injection_by_default():
    found = pods(render_docs({"kfpUpload": {"enabled": True}}))
    expected = {"rollout", "reward", "mlflow", "minio", "postgresql", "buckets", "kfp-upload", "test-reward"}
    names = {n.split("/", 1)[1].removeprefix(f"{RELEASE}-") for n in found}
    assert expected <= names and any(n.startswith("model-bootstrap-") for n in names), names
    for name, meta in found.items():
        assert meta["labels"].get(INJECT) == "false", f"{name} would get an Istio sidecar"
        assert meta["annotations"].get(INJECT) == "false", name
        assert NATIVE not in meta["annotations"], name


def test_job_pods_ovr_creates_opt_out_of_injection():
    spec = TrainerJobSpec(name="ovr-rl", namespace="ml", image="ovr:1", command=["true"], nodes=2)
    tj = trainjob_manifest(spec)["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    tj_meta = tj["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]
    pj = pytorchjob_manifest(spec)["spec"]["pytorchReplicaSpecs"]
    for meta in [tj_meta, pj["Master"]["template"]["metadata"], pj["Worker"]["template"]["metadata"]]:
        assert meta["labels"][INJECT] == "false" and meta["annotations"][INJECT] == "false"


def test_istio_mode_runs_native_sidecars_and_admits_sidecar_less_clients():
    docs = render_docs({"mesh": "istio", "kfpUpload": {"enabled": True}})
    for name, meta in pods(docs).items():
        assert meta["labels"][INJECT] == "true", name
        assert meta["annotations"][NATIVE] == "true", f"{name}: a Job with a classic sidecar never completes"
        assert INJECT not in meta["annotations"], name
    rollout = pod_meta(find(docs, "StatefulSet", f"{RELEASE}-rollout"))
    assert rollout["annotations"]["traffic.sidecar.istio.io/includeInboundPorts"] == "8000"  # NCCL bypasses envoy
    peer = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PeerAuthentication"}
    authz = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "AuthorizationPolicy"}
    ports = {"rollout": ["8000"], "reward": ["8000"], "mlflow": ["5000"], "minio": ["9000", "9001"]}
    assert set(peer) == {f"{RELEASE}-{c}" for c in ports}
    for component, want in ports.items():
        name = f"{RELEASE}-{component}"
        assert peer[name]["mtls"] == {"mode": "PERMISSIVE"}
        assert peer[name]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
        # plaintext callers have no principal or namespace: a rule with a `from` would never match them
        assert authz[name] == {
            "selector": peer[name]["selector"],
            "action": "ALLOW",
            "rules": [{"to": [{"operation": {"ports": want}}]}],
        }
    pg = authz[f"{RELEASE}-postgresql"]["rules"]
    assert pg == [{"from": [{"source": {"namespaces": ["ml"]}}], "to": [{"operation": {"ports": ["5432"]}}]}]


def test_no_istio_objects_without_the_mesh():
    assert not [d for d in render_docs() if d["apiVersion"].startswith("security.istio.io")]
