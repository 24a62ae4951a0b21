{{/* Names, labels, images, security contexts and scheduling shared by every template. */}}

{{- define "ovr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "ovr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object name of a component: (dict "root" $ "component" "reward"). */}}
{{- define "ovr.componentName" -}}
{{- printf "%s-%s" (include "ovr.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "ovr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "reward"). */}}
{{- define "ovr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ovr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full labels of a component object: (dict "root" $ "component" "reward"). */}}
{{- define "ovr.labels" -}}
helm.sh/chart: {{ include "ovr.chart" .root }}
{{ include "ovr.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ovr
{{- end -}}

{{/* An image reference: (dict "root" $ "image" .Values.reward.image). Empty repository = ovr image;
empty tag = appVersion; global.imageRegistry replaces the registry of every repository (a mirror). */}}
{{- define "ovr.image" -}}
{{- $img := .image -}}
{{- $repo := $img.repository | default .root.Values.image.repository -}}
{{- $tag := $img.tag | default (ternary .root.Values.image.tag "" (empty $img.repository)) | default .root.Chart.AppVersion -}}
{{- if .root.Values.global.imageRegistry -}}
{{- $parts := splitList "/" $repo -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $parts = rest $parts -}}
{{- end -}}
{{- $repo = printf "%s/%s" .root.Values.global.imageRegistry (join "/" $parts) -}}
{{- end -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}

{{/* Pod-level fields shared by every pod, component values merged over global ones:
(dict "root" $ "c" .Values.reward). nodeSelector keys merge (component wins), tolerations are
global + component without duplicates, affinity/runtimeClassName/priorityClassName: component or
global. */}}
{{- define "ovr.podScheduling" -}}
{{- $g := .root.Values.global -}}
{{- $c := .c -}}
{{- with $g.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with merge (deepCopy ($c.nodeSelector | default dict)) ($g.nodeSelector | default dict) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with uniq (concat ($g.tolerations | default list) ($c.tolerations | default list)) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.affinity | default $g.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.runtimeClassName | default $g.runtimeClassName) }}
runtimeClassName: {{ . }}
{{- end }}
{{- with ($c.priorityClassName | default $g.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- merge (deepCopy ($c.podSecurityContext | default dict)) $g.podSecurityContext | toYaml | nindent 2 }}
{{- end -}}

{{/* Container securityContext: component keys over global ones: (dict "root" $ "c" .Values.reward). */}}
{{- define "ovr.containerSecurityContext" -}}
{{- merge (deepCopy (.c.containerSecurityContext | default dict)) .root.Values.global.containerSecurityContext | toYaml -}}
{{- end -}}

{{/* Labels of a pod template: its selector labels, part-of and the mesh label, nothing that changes
with the chart or app version, so a `helm upgrade` that changes nothing about a workload does not
restart it: (dict "root" $ "component" "reward"). */}}
{{- define "ovr.podLabels" -}}
{{ include "ovr.selectorLabels" . }}
app.kubernetes.io/part-of: ovr
sidecar.istio.io/inject: {{ ternary "true" "false" (eq .root.Values.mesh "istio") | quote }}
{{- end -}}

{{/* Mesh annotations of every pod of the chart: (dict "root" $). mesh=none: opt out of injection
(the annotation KFP sets and older Istio reads, beside the label). mesh=istio: a native sidecar
(an init container with restartPolicy Always), so Jobs and the test pod complete and init
containers reach the network. */}}
{{- define "ovr.podAnnotations" -}}
{{- if eq .root.Values.mesh "istio" -}}
sidecar.istio.io/nativeSidecar: "true"
{{- else -}}
sidecar.istio.io/inject: "false"
{{- end -}}
{{- end -}}

{{/* The run's service account (ovr submit --service-account): rbac.serviceAccount.name, else
<fullname>-pipeline when the chart creates it, else a Kubeflow profile's default-editor. */}}
{{- define "ovr.serviceAccountName" -}}
{{- if .Values.rbac.serviceAccount.name -}}
{{- .Values.rbac.serviceAccount.name -}}
{{- else if .Values.rbac.serviceAccount.create -}}
{{- printf "%s-pipeline" (include "ovr.fullname" .) -}}
{{- else -}}
default-editor
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- endpoints and secrets */}}

{{/* S3 endpoint host:port: the external one, or the bundled MinIO Service. */}}
{{- define "ovr.s3Endpoint" -}}
{{- if .Values.s3.endpoint -}}
{{- .Values.s3.endpoint -}}
{{- else -}}
{{- printf "%s.%s.svc:%v" (include "ovr.componentName" (dict "root" . "component" "minio")) .Release.Namespace .Values.minio.service.port -}}
{{- end -}}
{{- end -}}

{{- define "ovr.s3Url" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.s3.secure) (include "ovr.s3Endpoint" .) -}}
{{- end -}}

{{- define "ovr.s3SecretName" -}}
{{- .Values.s3.existingSecret | default (include "ovr.componentName" (dict "root" . "component" "s3")) -}}
{{- end -}}

{{- define "ovr.dbSecretName" -}}
{{- if .Values.mlflow.postgresql.enabled -}}
{{- .Values.mlflow.postgresql.existingSecret | default (include "ovr.componentName" (dict "root" . "component" "postgresql")) -}}
{{- else -}}
{{- .Values.mlflow.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The weights claim: an existing one, the one the chart creates, or "" (none). */}}
{{- define "ovr.weightsClaimName" -}}
{{- if .Values.rollout.weightsClaimName -}}
{{- .Values.rollout.weightsClaimName -}}
{{- else if .Values.rollout.weights.create -}}
{{- include "ovr.componentName" (dict "root" . "component" "weights") -}}
{{- end -}}
{{- end -}}

{{- define "ovr.rewardSecretName" -}}
{{- .Values.reward.auth.existingSecret | default (include "ovr.componentName" (dict "root" . "component" "reward")) -}}
{{- end -}}

{{- define "ovr.rolloutSecretName" -}}
{{- .Values.rollout.auth.existingSecret | default (include "ovr.componentName" (dict "root" . "component" "rollout")) -}}
{{- end -}}

{{/* MLflow's admin credentials (the basic-auth app; clients send them as MLFLOW_TRACKING_USERNAME/PASSWORD). */}}
{{- define "ovr.mlflowSecretName" -}}
{{- .Values.mlflow.auth.existingSecret | default (include "ovr.componentName" (dict "root" . "component" "mlflow")) -}}
{{- end -}}

{{/* ---------------------------------------------------------------- network fences */}}

{{/* The label of pods the NetworkPolicies admit as ovr clients. Pipeline task pods get it from
components/resources.py (kfp-kubernetes), job pods from ovr/k8s/pytorchjob.py, the chart's own
Jobs and test pod from their templates. Fixed, not a value: the pipeline code sets the same. */}}
{{- define "ovr.clientLabel" -}}
ovr.dev/client: "true"
{{- end -}}

{{/* The label of trainer pods (RL task pods, job pods): the only ones let through to every port of
the rollout servers, which NCCL weight transfer needs. */}}
{{- define "ovr.trainerLabel" -}}
ovr.dev/trainer: "true"
{{- end -}}

{{/* NetworkPolicy peers (JSON list) selecting pods with .labels in this namespace and in every
namespace of networkPolicy.allowedNamespaceSelectors: (dict "root" $ "labels" (dict ...)). */}}
{{- define "ovr.labelledPeers" -}}
{{- $peers := list (dict "podSelector" (dict "matchLabels" .labels)) -}}
{{- range .root.Values.networkPolicy.allowedNamespaceSelectors -}}
{{- $peers = append $peers (dict "namespaceSelector" . "podSelector" (dict "matchLabels" $.labels)) -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}

{{/* A peer (JSON) selecting the pods of another component of this release: (dict "root" $ "component" "mlflow"). */}}
{{- define "ovr.componentPeer" -}}
{{- toJson (dict "podSelector" (dict "matchLabels" (include "ovr.selectorLabels" . | fromYaml))) -}}
{{- end -}}

{{/* S3 credential env vars for ovr's store (OVR_S3_*), boto3/MLflow (AWS_*) and mc: (dict "root" $). */}}
{{- define "ovr.s3Env" -}}
{{- $root := .root -}}
{{- range $var, $key := dict "OVR_S3_ACCESS_KEY" $root.Values.s3.accessKeyKey "OVR_S3_SECRET_KEY" $root.Values.s3.secretKeyKey "AWS_ACCESS_KEY_ID" $root.Values.s3.accessKeyKey "AWS_SECRET_ACCESS_KEY" $root.Values.s3.secretKeyKey }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "ovr.s3SecretName" $root }}
      key: {{ $key }}
{{- end }}
{{- end -}}

{{/* A secret value generated once and reused on upgrade (lookup of the live Secret):
(dict "root" $ "name" "secret-name" "key" "k" "length" 32). Offline renders get a fresh value. */}}
{{- define "ovr.generatedSecretValue" -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $live (hasKey ($live.data | default dict) .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- randAlphaNum (.length | default 32) | b64enc -}}
{{- end -}}
{{- end -}}

{{/* The shared /tmp emptyDir every read-only-root container gets. */}}
{{- define "ovr.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}
