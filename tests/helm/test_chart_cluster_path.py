"""What the chart hands a run's pods: the replicas' settings, one weights path, job RBAC, the namespace story."""

from __future__ import annotations

from components.resources import INSTALL_ENV_KEYS, WEIGHTS_MOUNT

from conftest import NAMESPACE, RELEASE, find, pod_spec, render_docs, render_notes


def test_env_configmap_carries_the_replicas_settings_and_the_pipeline_reads_every_key():
    docs = render_docs({"rollout": {"weightSync": "folder", "tensorParallelSize": 2, "gpu": {"count": 2}},
                        "global": {"imageRegistry": "registry.local", "imagePullSecrets": ["pull-a", "pull-b"]}})
    data = find(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert data["OVR_INSTALL"] == RELEASE
    assert data["OVR__ROLLOUT__WEIGHT_SYNC"] == "folder" and data["OVR__ROLLOUT__TENSOR_PARALLEL_SIZE"] == "2"
    assert data["OVR__ROLLOUT__WEIGHTS_DIR"] == WEIGHTS_MOUNT
    assert data["OVR__MODEL__MAX_PIXELS"] == "1003520"  # the replicas' image bound, for the trainer's processor
    assert data["OVR_TRAINER_IMAGE"] == "registry.local/ovr-project/ovr:0.1.0"  # the mirror reaches job pods
    assert data["OVR_IMAGE_PULL_SECRETS"] == "pull-a,pull-b"
    assert set(data) <= set(INSTALL_ENV_KEYS), "a key the chart publishes that no pipeline task reads"


def test_weights_claim_is_created_and_mounted_where_the_trainer_writes():
    docs = render_docs()
    claim = find(docs, "PersistentVolumeClaim", f"{RELEASE}-weights")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-rollout"))
    (vllm,) = pod["containers"]
    mount = next(m for m in vllm["volumeMounts"] if m["name"] == "weights")
    volume = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert mount["mountPath"] == WEIGHTS_MOUNT  # the path the pipeline mounts the claim at in its pods
    assert {"name": "OVR_WEIGHTS_DIR", "value": WEIGHTS_MOUNT} in vllm["env"]
    assert volume["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-weights"
    existing = render_docs({"rollout": {"weightsClaimName": "shared-rwx"}})
    assert not [d for d in existing if d["kind"] == "PersistentVolumeClaim" and "weights" in d["metadata"]["name"]]
    pod = pod_spec(find(existing, "StatefulSet", f"{RELEASE}-rollout"))
    assert next(v for v in pod["volumes"] if v["name"] == "weights")["persistentVolumeClaim"]["claimName"] == "shared-rwx"


def test_pipeline_service_account_may_launch_trainjobs_and_pytorchjobs():
    role = find(render_docs(), "Role", f"{RELEASE}-pipeline")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               if "create" in rule["verbs"]}
    assert {("trainer.kubeflow.org", "trainjobs"), ("kubeflow.org", "pytorchjobs")} <= granted


def test_notes_say_where_runs_must_execute_and_which_parameters_match():
    notes = render_notes()
    assert "profile namespace" in notes and f'"{NAMESPACE}"' in notes
    for param in (f"install_env={RELEASE}-env", f"s3_secret={RELEASE}-s3", f"reward_secret={RELEASE}-reward",
                  f"weights_claim={RELEASE}-weights", "--service-account"):
        assert param in notes
