"""A pod of the cluster twin: one local process started from a container spec, seeing only what the
pod spec gives it.

What a pod gets, as the kubelet would give it: the container's ``command``/``args``; its ``env``
(``value``, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``) and ``envFrom`` resolved against
the twin namespace's ConfigMaps and Secrets (a missing non-optional one fails the pod like
``CreateContainerConfigError``); its volumes as local folders — a PersistentVolumeClaim is one
folder wherever it is mounted, an ``emptyDir`` a folder of its own pod, ConfigMap/Secret volumes
their keys as files; and the in-cluster variables (``KUBERNETES_SERVICE_HOST``/``PORT``).

What the twin fakes, and how:

- the filesystem: processes share this machine's, so a path under one of the pod's mount paths
  (in ``command``, ``args`` and env values) is rewritten to the local folder standing for it;
  ``/dev/shm`` stays this machine's;
- the image: a venv (``IMAGES``: the ovr image is ``.venv`` with this checkout on ``PYTHONPATH``, the
  rollout image ``.venv-rollout``), put first on ``PATH`` with the image's own ``ENV`` lines;
- the network: every pod is 127.0.0.1, so its container ports are remapped to free ports (the
  ``--port`` argument is rewritten, ``--host 0.0.0.0`` becomes 127.0.0.1) and a ``DNS`` table maps
  Service and pod names (``host:port``) in env values and arguments to those ports;
- the service account: no token file exists here, so ``KUBECONFIG`` points the kubernetes client at
  the twin's API server with the bearer token of the pod's service account (:attr:`Namespace.api`).

Each pod keeps its manifest (labels, annotations, resources, scheduling) and the Service and pod
addresses its env and command name (:attr:`Pod.reaches`), for the network and scheduling checks.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: DeepSpeed JIT-builds its CPU shared-memory op on first use (minutes on 2 cores); an image would
#: carry it prebuilt, the twin's stand-in is this machine's torch extensions cache, shared by its pods
TORCH_EXTENSIONS = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "torch_extensions")
#: the venv's real folder: its scripts' shebangs name it, and DeepSpeed's op cache keys on the path
VENV = (REPO / ".venv").resolve() / "bin"
#: image repository (last path element) -> (venv bin folder, the image's ENV lines)
IMAGES = {
    "ovr": (
        VENV,
        {"OVR_RECIPES_DIR": str(REPO / "recipes"), "PYTHONUNBUFFERED": "1", "TORCH_EXTENSIONS_DIR": TORCH_EXTENSIONS},
    ),
    "ovr-reward": (VENV, {"PYTHONUNBUFFERED": "1"}),
    "ovr-rollout": (REPO / ".venv-rollout" / "bin", {"VLLM_SERVER_DEV_MODE": "1"}),
}


class PodConfigError(RuntimeError):
    """The pod could not start (a missing Secret/ConfigMap key or claim): what the kubelet would report."""


@dataclass
class Namespace:
    """What a namespace holds for its pods: ConfigMaps, Secrets (decoded), claims (local folders)."""

    name: str
    root: Path
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    claims: dict[str, Path] = field(default_factory=dict)
    dns: dict[str, str] = field(default_factory=dict)  # "svc.ns.svc:port" -> "127.0.0.1:port"
    env: dict[str, str] = field(default_factory=dict)  # the in-cluster variables every pod gets
    api: object | None = None  # the twin's API server (apiserver.ApiServer): each pod gets its account's token

    def add_objects(self, docs: list[dict]) -> None:
        """ConfigMaps, Secrets and PersistentVolumeClaims of rendered manifests."""
        for d in docs:
            name = d["metadata"]["name"]
            if d["kind"] == "ConfigMap":
                self.configmaps[name] = dict(d.get("data") or {})
            elif d["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
                self.secrets[name] = data | dict(d.get("stringData") or {})
            elif d["kind"] == "PersistentVolumeClaim":
                self.claims[name] = self.root / "claims" / name
                self.claims[name].mkdir(parents=True, exist_ok=True)

    def kubeconfig(self, account: str) -> Path:
        """A kubeconfig pointing at the twin's API server with ``account``'s token (written once)."""
        path = self.root / "kubeconfigs" / account
        if not path.exists():
            import yaml

            path.parent.mkdir(parents=True, exist_ok=True)
            server = str(self.api.url).rstrip("/")
            user = {"token": self.api.token(self.name, account)}
            path.write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "current-context": "twin",
                        "clusters": [{"name": "twin", "cluster": {"server": server}}],
                        "contexts": [
                            {"name": "twin", "context": {"cluster": "twin", "user": account, "namespace": self.name}}
                        ],
                        "users": [{"name": account, "user": user}],
                    }
                )
            )
        return path

    def resolve(self, text: str) -> str:
        """``text`` with every Service / pod address of the DNS table replaced by its local one."""
        for host, local in sorted(self.dns.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(host, local)
        return text


@dataclass
class Pod:
    """A started pod: its process, name, uid, log and the host ports of its container ports."""

    name: str
    uid: str
    proc: subprocess.Popen
    log: Path
    ports: dict[int, int]
    manifest: dict = field(default_factory=dict)  # {"metadata": {labels, annotations}, "spec": {...}}
    reaches: set[str] = field(default_factory=set)  # DNS-table addresses its env and command name

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _key(ns: Namespace, kind: str, name: str, key: str | None, optional: bool) -> str | dict | None:
    store = ns.secrets if kind == "secret" else ns.configmaps
    if name not in store:
        if optional:
            return None
        raise PodConfigError(f"{kind} {ns.name}/{name} not found")
    if key is None:
        return store[name]
    if key not in store[name]:
        if optional:
            return None
        raise PodConfigError(f"{kind} {ns.name}/{name} has no key {key!r}")
    return store[name][key]


def container_env(ns: Namespace, container: dict, fields: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it (envFrom first, then env in order)."""
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        kind, ref = ("secret", src["secretRef"]) if "secretRef" in src else ("configmap", src["configMapRef"])
        env |= _key(ns, kind, ref["name"], None, ref.get("optional", False)) or {}
    for e in container.get("env") or []:
        if "value" in e or "valueFrom" not in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(e.get("value", "")))
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            if path not in fields:
                raise PodConfigError(f"downward API field {path} is not one the twin knows")
            env[e["name"]] = fields[path]
            continue
        kind, ref = ("secret", vf["secretKeyRef"]) if "secretKeyRef" in vf else ("configmap", vf["configMapKeyRef"])
        value = _key(ns, kind, ref["name"], ref["key"], ref.get("optional", False))
        if value is not None:
            env[e["name"]] = value
    return env


def mount_map(ns: Namespace, pod_dir: Path, container: dict, volumes: list[dict]) -> dict[str, Path]:
    """mountPath -> local folder for each of the container's mounts (see the module doc)."""
    by_name = {v["name"]: v for v in volumes}
    out: dict[str, Path] = {}
    for m in container.get("volumeMounts") or []:
        if m["mountPath"] == "/dev/shm":
            continue
        vol = by_name.get(m["name"])
        if vol is None:
            raise PodConfigError(f"volumeMount {m['name']} has no volume")
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            if claim not in ns.claims:
                raise PodConfigError(f"persistentvolumeclaim {claim!r} not found in namespace {ns.name}")
            local = ns.claims[claim]
        else:
            local = pod_dir / "volumes" / m["name"]
            local.mkdir(parents=True, exist_ok=True)
            for kind, key in (("configmap", "configMap"), ("secret", "secret")):
                if key in vol:
                    ref = vol[key].get("name") or vol[key].get("secretName")
                    for k, v in (_key(ns, kind, ref, None, vol[key].get("optional", False)) or {}).items():
                        (local / k).write_text(v)
        out[m["mountPath"].rstrip("/")] = local / m.get("subPath", "") if m.get("subPath") else local
    return out


def rewrite(text: str, mounts: dict[str, Path], ns: Namespace) -> str:
    """Mount paths -> their local folders, Service names -> local addresses."""
    if mounts:  # one pass, longest mount path first: a rewritten path is not rewritten again
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        text = re.sub(rf"(?<![\w/.-])({paths})(?=/|$|[\s\"':;,=])", lambda m: str(mounts[m.group(1)]), text)
    return ns.resolve(text)


def remap_ports(args: list[str], ports: dict[int, int]) -> list[str]:
    """``--port P`` / ``--port=P`` to the host port of container port P; ``0.0.0.0`` binds to 127.0.0.1."""
    out = []
    for i, a in enumerate(args):
        prev = args[i - 1] if i else ""
        if prev == "--port" and a.isdigit() and int(a) in ports:
            a = str(ports[int(a)])
        elif a.startswith("--port=") and a[7:].isdigit() and int(a[7:]) in ports:
            a = f"--port={ports[int(a[7:])]}"
        out.append(a.replace("0.0.0.0", "127.0.0.1"))
    return out


def image_of(ref: str) -> tuple[Path, dict[str, str]]:
    repo = ref.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    if repo not in IMAGES:
        raise PodConfigError(f"the twin has no stand-in for image {ref!r} (known: {sorted(IMAGES)})")
    return IMAGES[repo]


def start_pod(
    ns: Namespace,
    name: str,
    container: dict,
    volumes: list[dict],
    *,
    ports: dict[int, int] | None = None,
    extra_env: dict[str, str] | None = None,
    service_account: str = "default",
    manifest: dict | None = None,
    host_env: dict[str, str] | None = None,
) -> Pod:
    """Start ``container`` as pod ``name`` (a fresh process, in its own folder and session);
    ``manifest`` is the pod's metadata and spec as the cluster would hold them (kept on the Pod);
    ``host_env`` are variables naming this machine's paths (never rewritten as mount paths)."""
    pod_dir = ns.root / "pods" / name
    (pod_dir / "tmp").mkdir(parents=True, exist_ok=True)
    uid = str(uuid.uuid4())
    fields = {
        "metadata.name": name,
        "metadata.uid": uid,
        "metadata.namespace": ns.name,
        "status.podIP": "127.0.0.1",
        "spec.serviceAccountName": service_account,
    }
    mounts = mount_map(ns, pod_dir, container, volumes)
    bin_dir, image_env = image_of(container["image"])
    # this machine's paths (the venv standing in for the image, the checkout, the pod's folder) are
    # never rewritten, even when they lie under a mount path such as /tmp; what the image and the
    # pod spec say is
    # TMPDIR short: vLLM binds ZeroMQ IPC sockets there (paths of at most 107 characters)
    tmpdir = tempfile.mkdtemp(prefix=f"twin-{name[:16]}-")
    local = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(pod_dir / "tmp"),
        "TMPDIR": tmpdir,
        "HOSTNAME": name,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    spec = image_env | ns.env | container_env(ns, container, fields) | (extra_env or {})
    host = dict(host_env or {})  # this machine's paths: never rewritten
    if ns.api is not None:
        api_host, api_port = str(ns.api.url).rstrip("/").removeprefix("http://").split(":")
        spec |= {"KUBERNETES_SERVICE_HOST": api_host, "KUBERNETES_SERVICE_PORT": api_port}
        host["KUBECONFIG"] = str(ns.kubeconfig(service_account))
    env = local | {k: rewrite(v, mounts, ns) for k, v in spec.items()} | host
    cmd = list(container.get("command") or []) + list(container.get("args") or [])
    said = "\n".join([*spec.values(), *cmd])
    reaches = {host for host in ns.dns if host in said}
    cmd = remap_ports([rewrite(c, mounts, ns) for c in cmd], ports or {})
    log = pod_dir / "log.txt"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=pod_dir / "tmp",
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Pod(name, uid, proc, log, dict(ports or {}), manifest or {}, reaches)


def stop_pod(pod: Pod, grace_s: float = 10.0) -> None:
    """SIGTERM to the pod's process group, then SIGKILL after the grace period (as the kubelet does)."""
    import signal

    if pod.proc.poll() is not None:
        return
    try:
        os.killpg(pod.proc.pid, signal.SIGTERM)
        pod.proc.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pod.proc.pid, signal.SIGKILL)
        pod.proc.wait(timeout=grace_s)
