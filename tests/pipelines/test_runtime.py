"""What components do at run time: parameter overrides, the job path, pod-local paths, and the
install checks validate_config makes."""

from __future__ import annotations

import pytest
import yaml

from components import runtime
from components.install import InstallError, attention_fallback, resolve_run
from components.jobs import JobSettings
from ovr.config import load_config
from ovr.context import RunContext
from ovr.schema import StageResult
from ovr.store import Store

INSTALL = {
    "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    "OVR_INSTALL": "ovr",
    "OVR__ROLLOUT__WEIGHT_SYNC": "nccl",
    "OVR__ROLLOUT__TENSOR_PARALLEL_SIZE": "1",
    "OVR__ROLLOUT__WEIGHTS_DIR": "/weights",
    "OVR__ROLLOUT__ENDPOINTS": '["http://ovr-rollout-0.ovr-rollout-pods.ml.svc:8000"]',
    "OVR__STORE__URI": "s3://ovr",
    "OVR__STORE__ENDPOINT": "ovr-minio.ml.svc:9000",
    "OVR_S3_ACCESS_KEY": "a",
    "OVR_S3_SECRET_KEY": "b",
}


def test_ui_parameters_become_overrides_and_blanks_keep_the_recipe():
    assert runtime.param_overrides("", "", 0, 0) == []
    assert runtime.param_overrides("s3://m/qwen", "mix", 10, 0) == [
        "model.path=s3://m/qwen",
        "data.name=mix",
        "sft.max_steps=10",
    ]


def test_multi_node_stage_becomes_a_job_and_reads_its_export(repo_root, tmp_path, monkeypatch):
    """run_job is replaced by a recorder (no cluster here); the store and config are real."""
    cfg = load_config(
        repo_root / "recipes/ovr-7b.yaml", [f"store.uri={tmp_path / 'store'}", "store.endpoint=null"], use_env=False
    )
    store = Store.from_config(cfg.store)
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_bytes(b"w")
    ctx = RunContext.for_config(cfg, "r7", "mlflow-9")
    store.commit_checkpoint(ctx.key, 120, export, kind="sft-export", metadata={"metrics": {"loss": 0.5}})
    seen = {}
    import ovr.k8s.jobs as jobs
    from ovr.k8s.kinds import TRAINJOB, trainjob_manifest

    monkeypatch.setattr(jobs, "run_job", lambda spec, **kw: seen.setdefault("spec", spec) and TRAINJOB)
    out = runtime.launch_job("sft", cfg, ctx, 4, 8, None, JobSettings(run_id="r1", s3_secret="ovr-s3", deadline_s=3600))

    body = trainjob_manifest(seen["spec"])
    assert body["spec"]["trainer"]["numNodes"] == 4 and body["spec"]["trainer"]["numProcPerNode"] == 8
    assert "torchrun -m components.train sft" in body["spec"]["trainer"]["command"][-1]
    shipped = yaml.safe_load(seen["spec"].env["OVR_CONFIG_YAML"])
    assert shipped["sft"]["global_batch_size"] == 640  # the resolved config travels with the job
    assert seen["spec"].env["OVR_RUN_ID"] == "r7" and seen["spec"].env["OVR_MLFLOW_RUN_ID"] == "mlflow-9"  # and the run
    # the job path describes its result in the same shape as the in-pod path
    assert out == StageResult(
        export_prefix="runs/ovr-7b/r7/sft-export/step-00000120", global_step=120, metrics={"loss": 0.5}
    )


def test_pod_local_mount_paths_override_the_config_artifact(tmp_path, monkeypatch, repo_root):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "rollout": {"weights_dir": "/weights"}}))
    monkeypatch.setenv("OVR__ROLLOUT__WEIGHTS_DIR", "/mnt/pod-7/weights")
    monkeypatch.setenv("OVR__RL__MAX_STEPS", "3")  # not pod-local: the artifact's value stands
    cfg = runtime.task_config(path)
    assert cfg.rollout.weights_dir == "/mnt/pod-7/weights" and cfg.rl.max_steps != 3


def test_validate_fails_when_the_pod_cannot_see_the_install(repo_root):
    env = {k: v for k, v in INSTALL.items() if k != "OVR_INSTALL"} | {"OVR_POD_NAMESPACE": "kubeflow-user"}
    with pytest.raises(InstallError, match="'ovr-env' is not visible in namespace 'kubeflow-user'.*profile"):
        resolve_run(repo_root / "recipes/ovr-7b.yaml", [], "ovr-env", env)


def test_validate_compares_chart_owned_settings_with_the_recipe(repo_root):
    cfg = resolve_run(repo_root / "recipes/ovr-7b.yaml", [], "ovr-env", INSTALL)  # recipe: nccl, TP 1 = chart
    assert cfg.rollout.endpoints == ["http://ovr-rollout-0.ovr-rollout-pods.ml.svc:8000"]
    assert cfg.rollout.weights_dir == "/weights" and cfg.store.endpoint == "ovr-minio.ml.svc:9000"
    with pytest.raises(InstallError, match=r"rollout.tensor_parallel_size=1 in the recipe.*use 4 .*tensorParallelSize"):
        resolve_run(
            repo_root / "recipes/ovr-7b.yaml", [], "ovr-env", INSTALL | {"OVR__ROLLOUT__TENSOR_PARALLEL_SIZE": "4"}
        )
    with pytest.raises(InstallError, match="rollout.weight_sync='folder' in the recipe"):
        resolve_run(repo_root / "recipes/ovr-7b.yaml", ["rollout.weight_sync=folder"], "ovr-env", INSTALL)
    # the image bound: the replicas' (chart) and the trainer's processor must count the same image tokens
    pixels = INSTALL | {"OVR__MODEL__MAX_PIXELS": "802816"}
    assert resolve_run(repo_root / "recipes/ovr-7b.yaml", [], "ovr-env", pixels).model.max_pixels == 802816
    with pytest.raises(InstallError, match=r"model.max_pixels=1003520 in the recipe.*802816.*rollout.maxPixels"):
        resolve_run(repo_root / "recipes/ovr-7b.yaml", ["model.max_pixels=1003520"], "ovr-env", pixels)


def test_validate_needs_the_weights_folder_and_store_credentials(repo_root):
    folder = INSTALL | {"OVR__ROLLOUT__WEIGHT_SYNC": "folder"}
    with pytest.raises(InstallError, match="weights_dir=/weights"):
        resolve_run(
            repo_root / "recipes/tiny-cpu.yaml",
            ["rollout.weights_dir=/tmp/x"],
            "ovr-env",
            {k: v for k, v in folder.items() if k != "OVR__ROLLOUT__WEIGHTS_DIR"},
        )
    no_keys = {k: v for k, v in INSTALL.items() if not k.startswith("OVR_S3")}
    with pytest.raises(InstallError, match="OVR_S3_ACCESS_KEY, OVR_S3_SECRET_KEY are unset.*s3_secret"):
        resolve_run(repo_root / "recipes/ovr-7b.yaml", [], "ovr-env", no_keys)


def test_flash_attention_without_its_package_falls_back_to_varlen(repo_root, capsys):
    cfg = load_config(repo_root / "recipes/ovr-7b.yaml", use_env=False)
    assert cfg.model.attn_implementation == "varlen"  # the recipe's own: padding-free micro-batches
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"attn_implementation": "flash_attention_2"})})
    out = attention_fallback(cfg)
    assert (
        out.model.attn_implementation == "varlen" and "flash_attn package is not installed" in capsys.readouterr().out
    )


def test_every_submission_is_a_new_run_unless_it_names_one(repo_root, tmp_path):
    """Validate config's run identity: a rerun never continues another run; resume_from must name one."""
    cfg = load_config(
        repo_root / "recipes/tiny-cpu.yaml",
        [f"store.uri={tmp_path / 'store'}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"],
        use_env=False,
    )
    first, second = runtime.open_run(cfg, "none"), runtime.open_run(cfg, "")
    assert first.run_id != second.run_id and first.mlflow_run_id != second.mlflow_run_id
    store = Store.from_config(cfg.store)
    with pytest.raises(ValueError, match=f"holds no run '{first.run_id}'.*none for a new run"):
        runtime.open_run(cfg, first.run_id)  # nothing of it is in the store: nothing to continue
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("1")
    store.commit_checkpoint(first.key, 2, tmp_path / "x", kind="sft")
    again = runtime.open_run(cfg, first.run_id)
    assert (again.run_id, again.mlflow_run_id) == (first.run_id, first.mlflow_run_id)  # its MLflow run too
    assert runtime.open_run(cfg, "latest").run_id == first.run_id
    with pytest.raises(ValueError, match="run id '../x' must be"):
        runtime.open_run(cfg.model_copy(), "../x")


def test_a_mounted_scratch_volume_takes_temp_files_and_work_folders(tmp_path, monkeypatch):
    """On a pod with the scratch emptyDir, checkpoints (sft.work_dir), source caches and temp files go
    there, not to the container's writable layer; without it (a local run) nothing changes."""
    from components.settings import SCRATCH_ENV, SCRATCH_MOUNT

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"name": "x"}))
    env: dict[str, str] = {"HF_HOME": "/models/hf"}
    assert runtime.use_scratch(environ=env) is False and env == {"HF_HOME": "/models/hf"}  # no volume here
    assert runtime.use_scratch(environ=env, is_mount=lambda m: m == SCRATCH_MOUNT) is True
    assert env["TMPDIR"] == SCRATCH_MOUNT and env["HF_HOME"] == "/models/hf"  # what is set already wins
    for key in ("OVR__SFT__WORK_DIR", "OVR__DATA__CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    cfg = runtime.task_config(path)
    assert (cfg.sft.work_dir, cfg.data.cache_dir) == (
        SCRATCH_ENV["OVR__SFT__WORK_DIR"],
        SCRATCH_ENV["OVR__DATA__CACHE_DIR"],
    )
