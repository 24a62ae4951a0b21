"""values.schema.json rejects malformed values and _validate.tpl stops contradictory ones with a
message that says what to change."""

from __future__ import annotations

import pytest
from chart_kit import CHART, helm, render_docs


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"rollout": {"gpu": {"count": 0}}}, "/rollout/gpu/count"),
        ({"reward": {"workers": "many"}}, "/reward/workers"),
        ({"rollout": {"gpuMemoryUtilization": 1.5}}, "/rollout/gpuMemoryUtilization"),
        ({"rollout": {"model": {"source": "hf"}}}, "/rollout/model/source"),
        ({"rollout": {"replcias": 2}}, "replcias"),
        ({"s3": {"endpoint": "http://minio:9000"}}, "/s3/endpoint"),
        ({"reward": {"service": {"port": 70000}}}, "/reward/service/port"),
        ({"global": {"tolerations": [{"key": "a", "operator": "Sometimes"}]}}, "/global/tolerations/0/operator"),
        ({"rollout": {"weightSync": "ipc"}}, "/rollout/weightSync"),
        ({"minio": {"persistence": {"size": "lots"}}}, "/minio/persistence/size"),
        ({"rollout": {"networkPolicy": {"enabled": False}}}, "networkPolicy"),
        ({"mlflow": {"auth": {"defaultPermission": "ALL"}}}, "/mlflow/auth/defaultPermission"),
        ({"mesh": "linkerd"}, "/mesh"),
        ({"rollout": {"model": {"bootstrap": {"hubId": "no-org"}}}}, "/rollout/model/bootstrap/hubId"),
    ],
)
def test_schema_rejects_bad_values(values, where):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match="schema") as exc:
            chart.render(values, name="ovr", namespace="ml")
        chart.validate_schema({})  # the defaults pass
    assert where in str(exc.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"minio": {"enabled": False}}, "minio.enabled=false needs s3.endpoint"),
        ({"minio": {"enabled": False}, "s3": {"endpoint": "s3.example:443"}}, "needs s3.existingSecret"),
        ({"s3": {"endpoint": "s3.example:443"}}, "contradict each other"),
        ({"mlflow": {"postgresql": {"enabled": False}}}, "needs mlflow.externalDatabase.host"),
        (
            {"mlflow": {"postgresql": {"enabled": False}, "externalDatabase": {"host": "pg"}}},
            "externalDatabase needs existingSecret",
        ),
        ({"mlflow": {"externalDatabase": {"host": "pg"}}}, "choose one backend"),
        (
            {"reward": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
            r"minReplicas \(5\) exceeds maxReplicas \(2\)",
        ),
        ({"reward": {"pdb": {"minAvailable": 2}}}, r"minAvailable \(2\) must be below the reward replica floor \(2\)"),
        ({"rollout": {"tensorParallelSize": 2}}, r"tensorParallelSize \(2\) exceeds"),
        ({"rollout": {"service": {"type": "LoadBalancer"}}}, "must stay ClusterIP"),
        ({"rollout": {"weights": {"create": False}}}, "replicas need a weights claim"),
        ({"rollout": {"model": {"source": "pvc"}}}, "needs rollout.model.pvcClaimName"),
        ({"rollout": {"model": {"s3Uri": "ovr-models/x"}}}, "needs rollout.model.s3Uri=s3://"),
        ({"rollout": {"resources": {"limits": {"nvidia.com/gpu": 2}}}}, "set GPUs with rollout.gpu.count"),
        ({"rbac": {"serviceAccount": {"create": True, "name": "default-editor"}}}, "the Kubeflow profile's own"),
    ],
)
def test_contradictory_values_fail_with_a_message(values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render_docs(values)


def test_contradictions_are_allowed_once_resolved():
    """The same knobs render when they agree (the checks are not blanket refusals)."""
    docs = render_docs(
        {
            "rollout": {"tensorParallelSize": 2, "gpu": {"count": 2}, "weightSync": "folder", "weightsClaimName": "w"},
            "reward": {"autoscaling": {"enabled": False}, "replicas": 3, "pdb": {"minAvailable": 2}},
        }
    )
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("NetworkPolicy", "ovr-rollout") in kinds
    assert ("HorizontalPodAutoscaler", "ovr-reward") not in kinds
    reward = next(d for d in docs if (d["kind"], d["metadata"]["name"]) == ("Deployment", "ovr-reward"))
    assert reward["spec"]["replicas"] == 3


def test_kfp_upload_without_a_compiled_pipeline_fails(tmp_path):
    import shutil

    chart = tmp_path / "ovr"
    shutil.copytree(CHART, chart)
    (chart / "files" / "pipelines" / "ovr_pipeline.yaml").unlink(missing_ok=True)
    with pytest.raises(helm.HelmRenderError, match="no files/pipelines/ovr_pipeline.yaml"):
        render_docs({"kfpUpload": {"enabled": True}}, chart=chart)
