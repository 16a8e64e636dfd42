{{/* The release's resource name: "sluice", or "<release>-sluice" when the release is named otherwise. */}}
{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "sluice.socketDir" -}}/var/run/sluice{{- end -}}
{{- define "sluice.socketPath" -}}{{ include "sluice.socketDir" . }}/xds.sock{{- end -}}
{{- define "sluice.adminSocketPath" -}}{{ include "sluice.socketDir" . }}/envoy-admin.sock{{- end -}}
{{- define "sluice.cgroupMount" -}}/run/sluice/cgroupv2{{- end -}}

{{/* The CA Secret: the user's, or the chart's own that the first agent generates. */}}
{{- define "sluice.caSecretName" -}}
{{- default (printf "%s-ca" (include "sluice.fullname" .)) .Values.identity.ca.existingSecret -}}
{{- end -}}
{{- define "sluice.workloadApiDir" -}}/run/sluice/workload{{- end -}}
