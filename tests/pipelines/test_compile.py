"""The compiled pipeline: in sync with the code, and carrying the cluster settings that matter."""

from __future__ import annotations

import yaml

from pipelines.compile import COMPILED, compile_pipeline


def _docs(path):
    return list(yaml.safe_load_all(path.read_text()))


def test_checked_in_yaml_matches_the_code(tmp_path):
    fresh = compile_pipeline(tmp_path / "p.yaml")
    assert fresh.read_text() == COMPILED.read_text(), "run `ovr pipeline compile` and commit the YAML"


def test_dag_order_and_display_names():
    spec, _ = _docs(COMPILED)
    tasks = spec["root"]["dag"]["tasks"]
    names = {k: v["taskInfo"]["name"] for k, v in tasks.items()}
    assert names == {
        "validate-config": "Validate config",
        "build-data": "Build data",
        "cold-start-sft": "Cold-start SFT (language only)",
        "multimodal-rl": "Multimodal RL",
        "evaluate-model": "Evaluate SFT model",
        "evaluate-model-2": "Evaluate RL model",
        "make-report": "Report",
    }
    deps = {k: set(v.get("dependentTasks", [])) for k, v in tasks.items()}
    assert deps["build-data"] == {"validate-config"}
    assert "build-data" in deps["cold-start-sft"]
    assert "cold-start-sft" in deps["multimodal-rl"]
    assert {"evaluate-model", "evaluate-model-2"} <= deps["make-report"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"recipe", "overrides", "model_path", "sft_nodes", "rl_nodes", "gpus_per_node", "s3_secret"} <= set(params)
    assert params["recipe"]["defaultValue"] == "ovr-7b"


def test_gpu_requests_tolerations_and_secrets():
    spec, platform = _docs(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    sft = executors["exec-cold-start-sft"]["container"]
    assert sft["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "resourceCount" in sft["resources"]["accelerator"]  # bound to gpus_per_node
    assert "accelerator" not in executors["exec-build-data"]["container"].get("resources", {})
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for gpu_task in ("exec-cold-start-sft", "exec-multimodal-rl"):
        cfg = k8s[gpu_task]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in cfg["tolerations"]
        assert any(v["mountPath"] == "/dev/shm" for v in cfg["emptyDirMounts"])
    for executor in k8s.values():
        envs = {e["envVar"] for s in executor["secretAsEnv"] for e in s["keyToEnv"]}
        assert {"OVR_S3_ACCESS_KEY", "OVR_S3_SECRET_KEY"} <= envs
    rl_envs = {e["envVar"] for s in k8s["exec-multimodal-rl"]["secretAsEnv"] for e in s["keyToEnv"]}
    assert "OVR_REWARD_TOKEN" in rl_envs
    # credentials come only from secrets: no pipeline parameter carries a key or token
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert not [p for p in params if "key" in p or "token" in p or "password" in p]


def test_components_use_the_ovr_image_and_are_thin():
    import inspect

    import components.stages as stages
    from components.images import OVR_IMAGE

    spec, _ = _docs(COMPILED)
    for name, ex in spec["deploymentSpec"]["executors"].items():
        assert ex["container"]["image"] == OVR_IMAGE, name
    for comp in (stages.validate_config, stages.build_data, stages.cold_start_sft, stages.multimodal_rl,
                 stages.evaluate_model, stages.make_report):
        assert len(inspect.getsource(comp.python_func).splitlines()) < 60
