"""The KFP backend's part in the cluster twin: walk the compiled pipeline YAML and run each task as a pod.

For every task, in dependency order (one at a time: the twin's scheduler), the driver resolves its
inputs (pipeline parameters, constants, other tasks' output parameters and artifacts, ``dsl.OneOf``
selections of condition branches), evaluates ``triggerPolicy.condition``, builds the executor input
KFP's launcher would, substitutes the placeholders of the container's command and args, and starts
the container as a pod (:mod:`tests.cluster.pods`) with what the platform spec gives it: env,
``secretAsEnv``/``configMapAsEnv`` (names resolved from the task's parameters), ``fieldPathAsEnv``,
``pvcMount`` and ``emptyDirMounts``. Afterwards it reads the executor output (output parameters,
artifact metadata) as the launcher does. Artifacts live in a local folder standing for KFP's
artifact store (their URIs are paths, as under ``kfp.local``).

Each task pod's manifest is kept as a cluster would see it (:meth:`Driver.pod_manifest`): the
run's service account, ``podMetadata`` labels, the ``sidecar.istio.io/inject: "false"``
annotation KFP's API server puts on every pipeline pod, resources (CPU, memory, the accelerator
count resolved from its parameter), tolerations and nodeSelector. KFP's own containers in that pod
(driver, launcher, Argo's executor) are not run: ``system_calls``, when set, is called with each
pod's name to replay the API calls they make. ``execute=False`` plans the run instead: it walks the
same DAG and branches and records every pod it would start (``planned``) without starting any.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pods import Namespace, Pod, start_pod

_PLACEHOLDER = re.compile(r"\{\{\$(\.[^}]*)?\}\}")


class TaskFailed(RuntimeError):
    """A task's pod exited non-zero (its log tail is in the message)."""


@dataclass
class Scope:
    """A DAG's inputs and its tasks' outputs."""

    params: dict[str, Any]
    artifacts: dict[str, list[dict]]
    outputs: dict[str, dict] = field(default_factory=dict)  # task -> {"params": {...}, "artifacts": {...}}


@dataclass
class Driver:
    pipeline_file: Path
    ns: Namespace
    root: Path
    service_account: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pods: dict[str, Pod] = field(default_factory=dict)  # task name -> its pod
    skipped: list[str] = field(default_factory=list)
    execute: bool = True  # False: plan only (record the pods in `planned`, start none)
    planned: dict[str, dict] = field(default_factory=dict)  # task name -> pod manifest
    system_calls: Callable[[str], None] | None = None  # replays KFP's/Argo's API calls of a pod

    def __post_init__(self):
        docs = [d for d in yaml.safe_load_all(self.pipeline_file.read_text()) if d]
        self.spec = next(d for d in docs if "pipelineInfo" in d)
        platform = next((d for d in docs if "platforms" in d), {})
        self.platform = (
            platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        )

    async def run(self, arguments: dict[str, Any]) -> Scope:
        defaults = {k: v.get("defaultValue") for k, v in self.spec["root"]["inputDefinitions"]["parameters"].items()}
        unknown = set(arguments) - set(defaults)
        if unknown:
            raise ValueError(f"unknown pipeline parameters {sorted(unknown)}")
        scope = Scope(params=defaults | arguments, artifacts={})
        await self._dag(self.spec["root"]["dag"], scope)
        return scope

    # ------------------------------------------------------------------ DAGs
    async def _dag(self, dag: dict, scope: Scope) -> None:
        pending = dict(dag["tasks"])
        while pending:
            ready = [n for n, t in pending.items() if set(t.get("dependentTasks", [])) <= set(scope.outputs)]
            if not ready:
                raise RuntimeError(f"tasks {sorted(pending)} wait on tasks that never ran")
            for name in sorted(ready):
                await self._task(name, pending.pop(name), scope)

    async def _task(self, name: str, task: dict, scope: Scope) -> None:
        params, artifacts = self._inputs(task.get("inputs", {}), scope)
        condition = (task.get("triggerPolicy") or {}).get("condition")
        if condition and not self._condition(condition, params):
            self.skipped.append(name)
            scope.outputs[name] = {"params": {}, "artifacts": {}, "skipped": True}
            return
        comp = self.spec["components"][task["componentRef"]["name"]]
        if "dag" in comp:
            inner = Scope(params=params, artifacts=artifacts)
            await self._dag(comp["dag"], inner)
            scope.outputs[name] = {"params": self._dag_outputs(comp["dag"], inner), "artifacts": {}}
            return
        scope.outputs[name] = await self._execute(name, task, comp, params, artifacts, scope)

    def _inputs(self, inputs: dict, scope: Scope) -> tuple[dict, dict]:
        params = {}
        for key, src in (inputs.get("parameters") or {}).items():
            if "componentInputParameter" in src:
                params[key] = scope.params[src["componentInputParameter"]]
            elif "taskOutputParameter" in src:
                t = src["taskOutputParameter"]
                params[key] = scope.outputs[t["producerTask"]]["params"][t["outputParameterKey"]]
            elif "runtimeValue" in src:
                value = src["runtimeValue"]["constant"]
                params[key] = value.replace("{{$.pipeline_job_uuid}}", self.run_id) if isinstance(value, str) else value
        artifacts = {}
        for key, src in (inputs.get("artifacts") or {}).items():
            if "componentInputArtifact" in src:
                artifacts[key] = scope.artifacts[src["componentInputArtifact"]]
            else:
                t = src["taskOutputArtifact"]
                artifacts[key] = scope.outputs[t["producerTask"]]["artifacts"][t["outputArtifactKey"]]
        return params, artifacts

    @staticmethod
    def _condition(expr: str, params: dict) -> bool:
        """KFP's CEL conditions as the compiler writes them (comparisons, int(), !, &&, ||)."""
        py = re.sub(r"inputs\.parameter_values\['([^']+)'\]", lambda m: repr(params[m.group(1)]), expr)
        py = py.replace("&&", " and ").replace("||", " or ")
        py = re.sub(r"!(?!=)", " not ", py)
        return bool(eval(py, {"__builtins__": {}}, {"int": int, "float": float, "str": str}))

    @staticmethod
    def _dag_outputs(dag: dict, inner: Scope) -> dict:
        out = {}
        for key, sel in ((dag.get("outputs") or {}).get("parameters") or {}).items():
            if "valueFromParameter" in sel:
                s = sel["valueFromParameter"]
                got = inner.outputs[s["producerSubtask"]]["params"]
                if s["outputParameterKey"] in got:
                    out[key] = got[s["outputParameterKey"]]
            else:  # dsl.OneOf: the one branch that ran
                values = [
                    inner.outputs[s["producerSubtask"]]["params"][s["outputParameterKey"]]
                    for s in sel["valueFromOneof"]["parameterSelectors"]
                    if s["outputParameterKey"] in inner.outputs[s["producerSubtask"]]["params"]
                ]
                if len(values) != 1:
                    raise RuntimeError(f"dsl.OneOf {key}: {len(values)} branches produced a value")
                out[key] = values[0]
        return out

    # ------------------------------------------------------------------ one container task
    async def _execute(self, name, task, comp, params, artifacts, scope) -> dict:
        label = comp["executorLabel"]
        container = self.spec["deploymentSpec"]["executors"][label]["container"]
        out_dir = self.root / "artifacts" / name
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = comp.get("outputDefinitions", {})
        executor_input = {
            "inputs": {"parameterValues": params, "artifacts": {k: {"artifacts": v} for k, v in artifacts.items()}},
            "outputs": {
                "parameters": {k: {"outputFile": str(out_dir / f"param-{k}")} for k in outputs.get("parameters", {})},
                "artifacts": {
                    k: {"artifacts": [{"name": k, "uri": str(out_dir / k), "metadata": {}, "type": v["artifactType"]}]}
                    for k, v in outputs.get("artifacts", {}).items()
                },
                "outputFile": str(out_dir / "executor_output.json"),
            },
        }
        manifest = self.pod_manifest(name, container, self.platform.get(label, {}), scope, params, executor_input)
        self.planned[name] = manifest
        if not self.execute:
            outputs = comp.get("outputDefinitions", {})
            return {
                "params": {k: f"<{name}.{k}>" for k in outputs.get("parameters", {})},
                "artifacts": {
                    k: [{"name": k, "uri": f"planned:/{name}/{k}", "metadata": {}}]
                    for k in outputs.get("artifacts", {})
                },
            }
        if self.system_calls is not None:
            await asyncio.to_thread(self.system_calls, manifest["metadata"]["name"])
        spec = manifest["spec"]
        pod = start_pod(
            self.ns,
            manifest["metadata"]["name"],
            spec["containers"][0],
            spec["volumes"],
            service_account=self.service_account,
            manifest=manifest,
        )
        self.pods[name] = pod
        while pod.proc.poll() is None:
            await asyncio.sleep(0.2)
        if pod.proc.returncode != 0:
            raise TaskFailed(f"task {name} exited {pod.proc.returncode}; log {pod.log}:\n{pod.log_tail()}")
        return self._read_outputs(executor_input)

    def pod_manifest(self, name, container, k8s, scope, params, executor_input) -> dict:
        """The task's pod as KFP would create it (metadata and spec; see the module doc)."""
        main, volumes = self._pod_spec(container, k8s, scope, params, executor_input)
        main = {"name": "main", **main, "resources": self._resources(container.get("resources") or {}, params)}
        main["image"] = self._substitute(main["image"], params, executor_input)
        meta = k8s.get("podMetadata") or {}
        spec: dict = {"serviceAccountName": self.service_account, "containers": [main], "volumes": volumes}
        tolerations = []
        for tol in k8s.get("tolerations") or []:
            if "tolerationJson" in tol:  # a parameter (e.g. the install's tolerations, at run time)
                value = self._json_value(tol["tolerationJson"], scope)
                tolerations += value if isinstance(value, list) else [value] if value else []
            else:
                tolerations.append(dict(tol))
        if tolerations:
            spec["tolerations"] = tolerations
        selector = k8s.get("nodeSelector") or {}
        labels = selector.get("labels") or self._json_value(selector.get("nodeSelectorJson"), scope)
        if labels:
            spec["nodeSelector"] = dict(labels)
        pulls = [
            self._json_value(s.get("secretNameParameter") or {}, scope) or s.get("secretName")
            for s in k8s.get("imagePullSecret") or []
        ]
        if any(pulls):
            spec["imagePullSecrets"] = [{"name": n} for n in pulls if n]
        return {
            "metadata": {
                "name": f"{self.run_id[:8]}-{name}",
                "labels": dict(meta.get("labels") or {}),
                "annotations": {**(meta.get("annotations") or {}), "sidecar.istio.io/inject": "false"},
            },
            "spec": spec,
        }

    @staticmethod
    def _json_value(ref: dict | None, scope: Scope):
        """A platform-spec parameter reference's value, JSON-decoded when it is JSON; None when unknown
        (a planned run's task outputs are placeholders)."""
        if not ref:
            return None
        if "componentInputParameter" in ref:
            value = scope.params.get(ref["componentInputParameter"])
        elif "taskOutputParameter" in ref:
            out = ref["taskOutputParameter"]
            value = scope.outputs.get(out["producerTask"], {}).get("params", {}).get(out["outputParameterKey"])
        else:
            value = (ref.get("runtimeValue") or {}).get("constant", ref.get("constant"))
        if isinstance(value, str):
            if value.startswith("<"):
                return None
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def _resources(self, res: dict, params: dict) -> dict:
        limits = {
            k: res[f"resource{key}Limit"]
            for k, key in (("cpu", "Cpu"), ("memory", "Memory"))
            if res.get(f"resource{key}Limit")
        }
        requests = {
            k: res[f"resource{key}Request"]
            for k, key in (("cpu", "Cpu"), ("memory", "Memory"))
            if res.get(f"resource{key}Request")
        }
        acc = res.get("accelerator")
        if acc:
            count = int(float(self._substitute(str(acc.get("resourceCount") or acc.get("count") or 0), params, {})))
            if count > 0:
                limits[acc.get("resourceType") or acc["type"]] = str(count)
        return {k: v for k, v in (("limits", limits), ("requests", requests)) if v}

    def _pod_spec(self, container, k8s, scope, params, executor_input) -> tuple[dict, list[dict]]:
        def name_of(ref: dict) -> str:
            if "componentInputParameter" in ref:
                return scope.params[ref["componentInputParameter"]]
            return ref.get("constant") or ref["runtimeValue"]["constant"]

        env = [dict(e) for e in container.get("env", [])]
        for s in k8s.get("secretAsEnv", []):
            secret = name_of(s["secretNameParameter"]) if "secretNameParameter" in s else s["secretName"]
            env += [
                {
                    "name": e["envVar"],
                    "valueFrom": {
                        "secretKeyRef": {"name": secret, "key": e["secretKey"], "optional": s.get("optional", False)}
                    },
                }
                for e in s["keyToEnv"]
            ]
        for c in k8s.get("configMapAsEnv", []):
            cm = name_of(c["configMapNameParameter"]) if "configMapNameParameter" in c else c["configMapName"]
            env += [
                {
                    "name": e["envVar"],
                    "valueFrom": {
                        "configMapKeyRef": {"name": cm, "key": e["configMapKey"], "optional": c.get("optional", False)}
                    },
                }
                for e in c["keyToEnv"]
            ]
        env += [
            {"name": f["name"], "valueFrom": {"fieldRef": {"fieldPath": f["fieldPath"]}}}
            for f in k8s.get("fieldPathAsEnv", [])
        ]
        mounts, volumes = [], []
        for i, m in enumerate(k8s.get("pvcMount", [])):
            claim = name_of(m["pvcNameParameter"]) if "pvcNameParameter" in m else m["constant"]
            volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}})
            mounts.append({"name": f"pvc-{i}", "mountPath": m["mountPath"]})
        for m in k8s.get("emptyDirMounts", []):
            empty = {k: m[k] for k in ("medium", "sizeLimit") if m.get(k)}
            volumes.append({"name": m["volumeName"], "emptyDir": empty})
            mounts.append({"name": m["volumeName"], "mountPath": m["mountPath"]})
        args = [self._substitute(a, params, executor_input) for a in container.get("args", [])]
        command = [self._substitute(c, params, executor_input) for c in container.get("command", [])]
        image = self._substitute(container["image"], params, executor_input)  # a task output (set_container_image)
        return (
            {"image": image, "command": command, "args": args, "env": env, "volumeMounts": mounts},
            volumes,
        )

    @staticmethod
    def _substitute(text: str, params: dict, executor_input: dict) -> str:
        def one(m: re.Match) -> str:
            path = m.group(1)
            if path is None:
                return json.dumps(executor_input)
            hit = re.fullmatch(r"\.inputs\.parameters\['([^']+)'\]", path)
            if hit:
                value = params[hit.group(1)]
                return value if isinstance(value, str) else json.dumps(value)
            raise NotImplementedError(f"placeholder {m.group(0)} is not one the twin substitutes")

        return _PLACEHOLDER.sub(one, text)

    @staticmethod
    def _read_outputs(executor_input: dict) -> dict:
        path = Path(executor_input["outputs"]["outputFile"])
        written = json.loads(path.read_text()) if path.exists() else {}
        params = dict(written.get("parameterValues") or {})
        for key, spec in executor_input["outputs"]["parameters"].items():
            f = Path(spec["outputFile"])
            if key not in params and f.exists():
                params[key] = f.read_text()
        artifacts = {}
        for key, spec in executor_input["outputs"]["artifacts"].items():
            declared = spec["artifacts"]
            got = (written.get("artifacts") or {}).get(key, {}).get("artifacts") or []
            artifacts[key] = [
                {**d, "metadata": (got[i].get("metadata") if i < len(got) else None) or {}}
                for i, d in enumerate(declared)
            ]
        return {"params": params, "artifacts": artifacts}
