{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "edge-inference.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects. The release name is used alone when it already
contains the chart name, so `helm install edge-inference-operator ...` does not stutter.
*/}}
{{- define "edge-inference.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "edge-inference.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "edge-inference.labels" -}}
helm.sh/chart: {{ include "edge-inference.chart" . }}
{{ include "edge-inference.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edge-inference
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator's pods (immutable in a Deployment: keep them stable). */}}
{{- define "edge-inference.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-inference.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "edge-inference.serviceAccountName" -}}
{{- default (include "edge-inference.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
An image reference: repository:tag, the tag defaulting to the chart's appVersion; with a digest,
repository:tag@digest (the runtime pulls by digest, the tag stays for people reading it).
*/}}
{{- define "edge-inference.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- with .image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* The worker image of each accelerator kind, as JSON {"cpu": "repo:tag", ...} (the operator's
EDGE_INFERENCE_WORKER_IMAGES). Every key of workerImages but pullPolicy, allowed and export is a kind. */}}
{{- define "edge-inference.workerImagesByKind" -}}
{{- $images := dict }}
{{- range $kind, $image := omit .Values.workerImages "pullPolicy" "allowed" "export" }}
{{- $_ := set $images $kind (include "edge-inference.image" (dict "image" $image "root" $)) }}
{{- end }}
{{- toJson $images }}
{{- end }}

{{/* Every image a job may name in spec.accelerators[].image, as a JSON list. */}}
{{- define "edge-inference.allowedWorkerImages" -}}
{{- $images := values (fromJson (include "edge-inference.workerImagesByKind" .)) }}
{{- toJson (concat $images .Values.workerImages.allowed | uniq | sortAlpha) }}
{{- end }}
