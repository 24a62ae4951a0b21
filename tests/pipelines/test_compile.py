"""The compiled pipeline: in sync with the code, and carrying the cluster settings that matter."""

from __future__ import annotations

import yaml

from pipelines.compile import COMPILED, compile_pipeline

INSTALL_IMAGE = "{{$.inputs.parameters['pipelinechannel--validate-config-image']}}"


def _docs(path):
    return list(yaml.safe_load_all(path.read_text()))


def test_checked_in_yaml_matches_the_code(tmp_path):
    fresh = compile_pipeline(tmp_path / "p.yaml")
    assert fresh.read_text() == COMPILED.read_text(), "run `ovr pipeline compile` and commit the YAML"


def _tasks(spec) -> dict[str, dict]:
    """Every task of the pipeline, condition branches flattened: name -> task spec, with ``after``:
    the tasks it waits for, its enclosing groups' dependencies included."""
    out, comps = {}, spec["components"]

    def walk(dag, inherited):
        for name, task in dag["tasks"].items():
            after = set(inherited) | set(task.get("dependentTasks", []))
            out[name] = {**task, "after": after}
            comp = comps[task["componentRef"]["name"]]
            if "dag" in comp:
                walk(comp["dag"], after)

    walk(spec["root"]["dag"], set())
    return out


def test_dag_order_and_display_names():
    spec, _ = _docs(COMPILED)
    tasks = _tasks(spec)
    names = {k: v["taskInfo"]["name"] for k, v in tasks.items() if not k.startswith("condition")}
    assert names == {
        "validate-config": "Validate config",
        "build-data": "Build data",
        "launch-sft": "Cold-start SFT (job launcher)",
        "train-sft": "Cold-start SFT (language only)",
        "launch-rl": "Multimodal RL (job launcher)",
        "train-rl": "Multimodal RL",
        "evaluate-model": "Evaluate SFT model",
        "evaluate-model-2": "Evaluate RL model",
        "make-report": "Report",
    }
    deps = {k: v["after"] for k, v in tasks.items()}
    assert deps["build-data"] == {"validate-config"}
    # the SFT eval cannot overlap RL: both RL variants wait for it (they share the replicas)
    assert "evaluate-model" in deps["launch-rl"] and "evaluate-model" in deps["train-rl"]
    assert {"evaluate-model", "evaluate-model-2"} <= deps["make-report"]
    # the eval tasks and RL take the export's store prefix from whichever variant ran
    sft_eval = tasks["evaluate-model"]["inputs"]["parameters"]["model_prefix"]
    assert sft_eval["taskOutputParameter"]["producerTask"].startswith("condition-branches")
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {
        "recipe",
        "overrides",
        "model_path",
        "sft_nodes",
        "rl_nodes",
        "gpus_per_node",
        "s3_secret",
        "weights_claim",
        "job_deadline_s",
    } <= set(params)
    assert params["recipe"]["defaultValue"] == "ovr-7b"
    conditions = {
        tasks[k]["triggerPolicy"]["condition"]
        for k in tasks
        if k.startswith("condition-") and "triggerPolicy" in tasks[k]
    }
    assert "int(inputs.parameter_values['pipelinechannel--sft_nodes']) > 1" in conditions
    assert "int(inputs.parameter_values['pipelinechannel--rl_nodes']) > 1" in conditions


def test_single_node_stages_run_torchrun_with_one_rank_per_gpu():
    spec, _ = _docs(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    for stage in ("train-sft", "train-rl"):
        c = executors[f"exec-{stage}"]["container"]
        script = c["command"][2]
        assert c["command"][:2] == ["sh", "-ec"]
        assert 'exec python3 -m torch.distributed.run --standalone --nproc-per-node="$nproc"' in script
        assert "-m kfp.dsl.executor_main" in script  # the KFP executor is what each rank runs
        # nproc is the first argument: the task's gpus_per_node, the same value its pod's GPU limit takes
        assert c["args"][0] == "{{$.inputs.parameters['gpus_per_node']}}"
        assert 'nproc="$1"' in script and '[ "$nproc" -ge 1 ] || nproc=1' in script
        assert (
            c["resources"]["accelerator"]["resourceCount"]
            == "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}"
        )
    task = _tasks(spec)["train-sft"]["inputs"]["parameters"]["gpus_per_node"]
    assert task == {"componentInputParameter": "pipelinechannel--gpus_per_node"}


def test_job_launchers_request_no_gpu_and_know_their_pod():
    spec, platform = _docs(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for launcher in ("exec-launch-sft", "exec-launch-rl"):
        resources = executors[launcher]["container"]["resources"]
        assert "accelerator" not in resources and resources["resourceCpuLimit"] == "1"
        assert "tolerations" not in k8s[launcher]
        fields = {f["fieldPath"]: f["name"] for f in k8s[launcher]["fieldPathAsEnv"]}
        assert fields["metadata.uid"] == "OVR_POD_UID" and fields["metadata.name"] == "OVR_POD_NAME"
        assert fields["metadata.namespace"] == "OVR_POD_NAMESPACE"
        keys = {e["configMapKey"] for cm in k8s[launcher]["configMapAsEnv"] for e in cm["keyToEnv"]}
        assert {"OVR_TRAINER_IMAGE", "OVR_IMAGE_PULL_SECRETS"} <= keys


def test_rl_and_eval_pods_mount_the_weights_claim_where_the_replicas_do():
    from components.resources import WEIGHTS_MOUNT

    spec, platform = _docs(COMPILED)
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-train-rl", "exec-evaluate-model", "exec-evaluate-model-2"):
        (mount,) = k8s[name]["pvcMount"]
        assert mount["mountPath"] == WEIGHTS_MOUNT
        assert mount["pvcNameParameter"]["componentInputParameter"].endswith("weights_claim")
        env = {e["name"]: e["value"] for e in executors[name]["container"].get("env", [])}
        assert env["OVR__ROLLOUT__WEIGHTS_DIR"] == WEIGHTS_MOUNT
    rl_fields = {f["fieldPath"]: f["name"] for f in k8s["exec-train-rl"]["fieldPathAsEnv"]}
    assert rl_fields["status.podIP"] == "OVR_POD_IP"  # NCCL rendezvous address


def test_gpu_requests_tolerations_and_secrets():
    spec, platform = _docs(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    sft = executors["exec-train-sft"]["container"]
    assert sft["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "accelerator" not in executors["exec-build-data"]["container"].get("resources", {})
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for gpu_task in ("exec-train-sft", "exec-train-rl"):
        cfg = k8s[gpu_task]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in cfg["tolerations"]
        assert any(v["mountPath"] == "/dev/shm" for v in cfg["emptyDirMounts"])
    for executor in k8s.values():
        envs = {e["envVar"] for s in executor["secretAsEnv"] for e in s["keyToEnv"]}
        assert {"OVR_S3_ACCESS_KEY", "OVR_S3_SECRET_KEY"} <= envs
    for scorer in ("exec-train-rl", "exec-evaluate-model", "exec-evaluate-model-2"):  # eval scores through the service
        envs = {e["envVar"] for s in k8s[scorer]["secretAsEnv"] for e in s["keyToEnv"]}
        assert "OVR_REWARD_TOKEN" in envs
    # credentials come only from secrets: no pipeline parameter carries a key or token
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert not [p for p in params if "key" in p or "token" in p or "password" in p]


def test_every_task_is_an_ovr_client_with_its_credentials_from_secrets():
    """The chart's NetworkPolicies admit labelled pods only; tokens and the MLflow login come from
    the Secrets the parameters name (MLflow's client reads MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    spec, platform = _docs(COMPILED)
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == set(spec["deploymentSpec"]["executors"])
    for name, executor in k8s.items():
        labels = executor["podMetadata"]["labels"]
        assert labels["ovr.dev/client"] == "true", name
        assert ("ovr.dev/trainer" in labels) == (name == "exec-train-rl"), name
        # inside a condition branch the DAG's input arrives as "pipelinechannel--<name>"
        by_env = {
            e["envVar"]: (
                s["secretNameParameter"]["componentInputParameter"].removeprefix("pipelinechannel--"),
                e["secretKey"],
            )
            for s in executor["secretAsEnv"]
            for e in s["keyToEnv"]
        }
        assert by_env["MLFLOW_TRACKING_USERNAME"] == ("mlflow_secret", "username"), name
        assert by_env["MLFLOW_TRACKING_PASSWORD"] == ("mlflow_secret", "password"), name
        # the scorers, and Validate config, which checks that the tokens work
        needs_rollout = name in (
            "exec-train-rl",
            "exec-evaluate-model",
            "exec-evaluate-model-2",
            "exec-validate-config",
        )
        assert (by_env.get("OVR_ROLLOUT_TOKEN") == ("rollout_secret", "token")) == needs_rollout, name
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["rollout_secret"]["defaultValue"] == "ovr-rollout"  # the chart's Secret names
    assert params["mlflow_secret"]["defaultValue"] == "ovr-mlflow"


def test_components_use_the_install_image_and_are_thin():
    """Validate config runs the compiled image; every later task the image Validate config read from
    the install's ConfigMap (one image per release for task and job pods)."""
    import inspect

    import components.stages as stages
    from components.images import OVR_IMAGE

    spec, _ = _docs(COMPILED)
    for name, ex in spec["deploymentSpec"]["executors"].items():
        expected = OVR_IMAGE if name == "exec-validate-config" else INSTALL_IMAGE
        assert ex["container"]["image"] == expected, name
    for comp in (
        stages.validate_config,
        stages.build_data,
        stages.train_sft,
        stages.launch_sft,
        stages.train_rl,
        stages.launch_rl,
        stages.evaluate_model,
        stages.make_report,
    ):
        assert len(inspect.getsource(comp.python_func).splitlines()) < 60


def test_the_install_places_the_task_pods_at_run_time():
    """Image, pull secret, node selector, tolerations and NCCL transport come from the install at run
    time (Validate config's outputs, the ConfigMap, an optional parameter): never fixed at compile time."""
    from components.placement import NCCL_KEYS
    from components.settings import SCRATCH_MOUNT

    spec, platform = _docs(COMPILED)
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["image_pull_secret"] == {"isOptional": True, "parameterType": "STRING"}  # unset: the SA's
    for name, executor in k8s.items():
        (pull,) = executor["imagePullSecret"]
        assert pull["secretNameParameter"]["componentInputParameter"].endswith("image_pull_secret"), name
    for gpu_task in ("exec-train-sft", "exec-train-rl"):
        cfg = k8s[gpu_task]
        selector = cfg["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"]
        assert selector == "pipelinechannel--validate-config-node_selector"
        tolerations = [
            t["tolerationJson"]["componentInputParameter"] for t in cfg["tolerations"] if "tolerationJson" in t
        ]
        assert tolerations == ["pipelinechannel--validate-config-tolerations"]
        keys = {e["configMapKey"] for cm in cfg["configMapAsEnv"] for e in cm["keyToEnv"]}
        assert set(NCCL_KEYS) <= keys
    for task in ("exec-build-data", "exec-train-sft", "exec-train-rl", "exec-evaluate-model"):
        (scratch,) = [m for m in k8s[task]["emptyDirMounts"] if m["volumeName"] == "scratch"]
        assert scratch["mountPath"] == SCRATCH_MOUNT and scratch["sizeLimit"]


def test_retries_where_a_retry_is_safe():
    spec, _ = _docs(COMPILED)
    tasks = _tasks(spec)
    retries = {k: v["retryPolicy"]["maxRetryCount"] for k, v in tasks.items() if "retryPolicy" in v}
    assert retries == {
        "validate-config": 2,
        "build-data": 2,
        "train-sft": 1,
        "launch-sft": 1,
        "train-rl": 1,
        "launch-rl": 1,
        "evaluate-model": 2,
        "evaluate-model-2": 2,
        "make-report": 2,
    }
    assert all(v["retryPolicy"]["backoffFactor"] == 2.0 for v in tasks.values() if "retryPolicy" in v)


def test_validate_config_knows_what_the_run_will_ask_of_the_cluster():
    spec, _ = _docs(COMPILED)
    validate = _tasks(spec)["validate-config"]["inputs"]["parameters"]
    for param in ("sft_nodes", "rl_nodes", "gpus_per_node", "weights_claim", "queue", "reward_secret"):
        assert validate[param] == {"componentInputParameter": param}
    for launcher in ("launch-sft", "launch-rl"):
        inputs = _tasks(spec)[launcher]["inputs"]["parameters"]
        assert inputs["queue"]["componentInputParameter"] == "pipelinechannel--queue"
        assert inputs["admission_timeout_s"]["componentInputParameter"] == "pipelinechannel--admission_timeout_s"
