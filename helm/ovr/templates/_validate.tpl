{{/* Contradictions the schema cannot express: each stops the render with a message saying what to change. */}}
{{- define "ovr.validate" -}}
{{- $v := .Values -}}
{{- if and (not $v.minio.enabled) (not $v.s3.endpoint) -}}
{{- fail "minio.enabled=false needs s3.endpoint (host:port of your S3 service), or set minio.enabled=true" -}}
{{- end -}}
{{- if and (not $v.minio.enabled) (not $v.s3.existingSecret) -}}
{{- fail "an external S3 (minio.enabled=false) needs s3.existingSecret: the chart cannot invent credentials for it" -}}
{{- end -}}
{{- if and $v.minio.enabled $v.s3.endpoint -}}
{{- fail (printf "s3.endpoint=%q and minio.enabled=true contradict each other: keep one S3 (unset s3.endpoint or set minio.enabled=false)" $v.s3.endpoint) -}}
{{- end -}}
{{- if and $v.mlflow.enabled (not $v.mlflow.postgresql.enabled) -}}
{{- if not $v.mlflow.externalDatabase.host -}}
{{- fail "mlflow.postgresql.enabled=false needs mlflow.externalDatabase.host (or enable the bundled PostgreSQL)" -}}
{{- end -}}
{{- if not $v.mlflow.externalDatabase.existingSecret -}}
{{- fail "mlflow.externalDatabase needs existingSecret (a Secret holding the database password)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.mlflow.postgresql.enabled $v.mlflow.externalDatabase.host -}}
{{- fail "mlflow.externalDatabase.host is set while mlflow.postgresql.enabled=true: choose one backend" -}}
{{- end -}}
{{- if $v.reward.enabled -}}
{{- $floor := ternary $v.reward.autoscaling.minReplicas $v.reward.replicas $v.reward.autoscaling.enabled | int -}}
{{- if and $v.reward.autoscaling.enabled (gt ($v.reward.autoscaling.minReplicas | int) ($v.reward.autoscaling.maxReplicas | int)) -}}
{{- fail (printf "reward.autoscaling.minReplicas (%v) exceeds maxReplicas (%v)" $v.reward.autoscaling.minReplicas $v.reward.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and $v.reward.pdb.enabled (ge ($v.reward.pdb.minAvailable | int) $floor) -}}
{{- fail (printf "reward.pdb.minAvailable (%v) must be below the reward replica floor (%v), or node drains block forever" $v.reward.pdb.minAvailable $floor) -}}
{{- end -}}
{{- end -}}
{{- if $v.rollout.enabled -}}
{{- if gt ($v.rollout.tensorParallelSize | int) ($v.rollout.gpu.count | int) -}}
{{- fail (printf "rollout.tensorParallelSize (%v) exceeds the GPUs per replica rollout.gpu.count (%v)" $v.rollout.tensorParallelSize $v.rollout.gpu.count) -}}
{{- end -}}
{{- if ne $v.rollout.service.type "ClusterIP" -}}
{{- fail (printf "the rollout servers expose vLLM's dev endpoints (/collective_rpc): rollout.service.type must stay ClusterIP (got %s)" $v.rollout.service.type) -}}
{{- end -}}
{{- if not (include "ovr.weightsClaimName" .) -}}
{{- fail "the rollout replicas need a weights claim (folder weight pushes and every eval's model go through it): set rollout.weightsClaimName to an existing ReadWriteMany claim or keep rollout.weights.create=true" -}}
{{- end -}}
{{- include "ovr.validateWeightsClaim" . -}}
{{- if and (eq $v.rollout.model.source "pvc") (not $v.rollout.model.pvcClaimName) -}}
{{- fail "rollout.model.source=pvc needs rollout.model.pvcClaimName" -}}
{{- end -}}
{{- if and (eq $v.rollout.model.source "s3") (not (hasPrefix "s3://" $v.rollout.model.s3Uri)) -}}
{{- fail (printf "rollout.model.source=s3 needs rollout.model.s3Uri=s3://bucket/prefix (got %q)" $v.rollout.model.s3Uri) -}}
{{- end -}}
{{- if hasKey ($v.rollout.resources.limits | default dict) $v.rollout.gpu.resourceName -}}
{{- fail (printf "set GPUs with rollout.gpu.count, not rollout.resources.limits[%q]" $v.rollout.gpu.resourceName) -}}
{{- end -}}
{{- end -}}
{{- if and $v.rbac.serviceAccount.create (eq (include "ovr.serviceAccountName" .) "default-editor") -}}
{{- fail "rbac.serviceAccount.create=true would create default-editor, the Kubeflow profile's own account: leave rbac.serviceAccount.name empty (the chart then creates <release>-pipeline) or set create=false to use default-editor" -}}
{{- end -}}
{{- if and (eq $v.mesh "istio") (semverCompare "<1.29-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "mesh=istio runs the chart's pods with native sidecars, which need Kubernetes >= 1.29 (this cluster: %s); use mesh=none" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and $v.kfpUpload.enabled (not (.Files.Get "files/pipelines/ovr_pipeline.yaml")) -}}
{{- fail "kfpUpload.enabled=true but the chart holds no files/pipelines/ovr_pipeline.yaml: copy pipelines/ovr_pipeline.yaml there first" -}}
{{- end -}}
{{- end -}}

{{/* The weights claim the replicas share with the trainer and eval pods, which run on other nodes:
ReadWriteMany, on a class that provides it. */}}
{{- define "ovr.validateWeightsClaim" -}}
{{- $w := .Values.rollout.weights -}}
{{- if and (not .Values.rollout.weightsClaimName) $w.create -}}
{{- if ne $w.accessMode "ReadWriteMany" -}}
{{- fail (printf "rollout.weights.accessMode=%s: the rollout replicas, the RL trainer and the eval pods mount the weights claim from different nodes, so it must be ReadWriteMany (on a class that supports it: NFS, CephFS, EFS, Filestore, Azure Files)" $w.accessMode) -}}
{{- end -}}
{{- if not $w.storageClass -}}
{{- fail "rollout.weights.storageClass is empty: name a StorageClass that supports ReadWriteMany (NFS, CephFS, EFS, Filestore, Azure Files; see kubectl get storageclass), or set rollout.weightsClaimName to an existing ReadWriteMany claim. The default class of most clouds is ReadWriteOnce block storage, where the weights claim stays Pending and the rollout replicas with it" -}}
{{- end -}}
{{- end -}}
{{- end -}}
