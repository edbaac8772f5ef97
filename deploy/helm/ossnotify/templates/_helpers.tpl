{{/* The release's resource names, and the labels every resource carries. */}}
{{- define "ossnotify.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ossnotify.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ossnotify.labels" -}}
{{ include "ossnotify.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ossnotify.secretName" -}}
{{- default (include "ossnotify.fullname" .) .Values.secret.existing -}}
{{- end -}}

{{/*
The store the config names must be the one the workload is made for: a
Deployment keeps nothing on disk, so a disk store there would lose its
backlog with the pod.
*/}}
{{- define "ossnotify.checkStore" -}}
{{- $disk := regexMatch "(?m)^\\s*store\\s*=\\s*\"disk\"" .Values.config -}}
{{- if and (eq .Values.store "kafka") $disk -}}
{{- fail "store is \"kafka\" but the config sets store = \"disk\": a Deployment keeps nothing on disk; set store=disk (a StatefulSet with a volume per pod) or remove the disk store from the config" -}}
{{- else if and (eq .Values.store "disk") (not $disk) -}}
{{- fail "store is \"disk\" but the config keeps the Kafka stores: add store = \"disk\" to [backlog] and [dead_letter], with paths under disk.mountPath" -}}
{{- else if not (has .Values.store (list "kafka" "disk")) -}}
{{- fail (printf "store must be \"kafka\" or \"disk\", not %q" .Values.store) -}}
{{- end -}}
{{- end -}}
