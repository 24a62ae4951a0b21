"""What components do at run time: parameter overrides and the multi-node PyTorchJob path."""

from __future__ import annotations

import yaml

from components import runtime
from ovr.config import load_config
from ovr.schema import StageResult
from ovr.store import Store


def test_ui_parameters_become_overrides_and_blanks_keep_the_recipe():
    assert runtime.param_overrides("", "", 0, 0) == []
    assert runtime.param_overrides("s3://m/qwen", "mix", 10, 0) == [
        "model.path=s3://m/qwen", "data.name=mix", "sft.max_steps=10"
    ]


def test_multi_node_stage_becomes_a_pytorchjob_and_reads_its_export(repo_root, tmp_path, monkeypatch):
    """run_pytorchjob is replaced by a recorder (no cluster here); the store and config are real."""
    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", [f"store.uri={tmp_path / 'store'}", "store.endpoint=null"], use_env=False)
    store = Store.from_config(cfg.store)
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_bytes(b"w")
    store.commit_checkpoint(cfg.name, 120, export, kind="sft-export", metadata={"metrics": {"loss": 0.5}})
    seen = {}
    import ovr.k8s.pytorchjob as pj

    monkeypatch.setattr(pj, "run_pytorchjob", lambda spec, **kw: seen.setdefault("spec", spec))
    out = runtime.run_stage("sft", cfg, nodes=4, gpus_per_node=8)

    spec = seen["spec"]
    body = pj.manifest(spec)
    replicas = body["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    container = replicas["Master"]["template"]["spec"]["containers"][0]
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "8"
    assert "torchrun -m ovr sft --recipe /tmp/ovr.yaml" in container["command"][-1]
    shipped = yaml.safe_load(spec.env["OVR_CONFIG_YAML"])
    assert shipped["sft"]["global_batch_size"] == 640  # the resolved config travels with the job
    # the job path describes its result in the same shape as the in-pod path
    assert out == StageResult(export_prefix="runs/ovr-7b/sft-export/step-00000120", global_step=120,
                              metrics={"loss": 0.5})
