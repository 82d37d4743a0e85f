{{/*
Names and labels, as the prometheus-community charts (node-exporter) define them: every object is named
by packetd.fullname and carries packetd.labels; selectors use only the two stable selector labels (a
selector cannot change on upgrade, so version labels stay out of it).
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "packetd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name: fullnameOverride, or <release>-<name>, or just the release name when it already
contains the chart's name. 63 characters: the limit of a DNS label, which some names must be.
*/}}
{{- define "packetd.fullname" -}}
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

{{/* chart label: name-version */}}
{{- define "packetd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The namespace objects go to: namespaceOverride or the release's. */}}
{{- define "packetd.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the pods (immutable in a DaemonSet). */}}
{{- define "packetd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "packetd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "packetd.labels" -}}
helm.sh/chart: {{ include "packetd.chart" . }}
{{ include "packetd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: packetd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to the chart's appVersion. */}}
{{- define "packetd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The service account's name. */}}
{{- define "packetd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "packetd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The settings both ServiceMonitor endpoints share (the caller adds the path). */}}
{{- define "packetd.serviceMonitor.endpointSettings" -}}
port: http
scheme: http
{{- with .Values.serviceMonitor.interval }}
interval: {{ . }}
{{- end }}
{{- with .Values.serviceMonitor.scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
{{- if .Values.serviceMonitor.honorLabels }}
honorLabels: true
{{- end }}
relabelings:
  # the node a target runs on, for the dashboard's node variable (instance is the node's IP:port under
  # hostNetwork, which says less to a person)
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
    action: replace
{{- with .Values.serviceMonitor.relabelings }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.serviceMonitor.metricRelabelings }}
metricRelabelings:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
