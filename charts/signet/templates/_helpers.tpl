{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "signet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name (release "signet" -> "signet"). */}}
{{- define "signet.fullname" -}}
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

{{- define "signet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "signet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "signet.labels" -}}
helm.sh/chart: {{ include "signet.chart" . }}
{{ include "signet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: signet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "signet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "signet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding tls.crt / tls.key / ca.crt (Helm-generated or written by cert-manager). */}}
{{- define "signet.tlsSecretName" -}}
{{- printf "%s-tls" (include "signet.fullname" .) }}
{{- end }}

{{- define "signet.certificateName" -}}
{{- printf "%s-serving" (include "signet.fullname" .) }}
{{- end }}

{{- define "signet.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* DNS names the API server may use for the webhook Service. */}}
{{- define "signet.dnsNames" -}}
{{- $svc := include "signet.fullname" . }}
{{- $ns := .Release.Namespace -}}
- {{ $svc }}
- {{ $svc }}.{{ $ns }}
- {{ $svc }}.{{ $ns }}.svc
- {{ $svc }}.{{ $ns }}.svc.{{ .Values.tls.clusterDomain }}
{{- end }}

{{/* Namespaces the webhook never sees: its own, kube-system, and any configured ones. */}}
{{- define "signet.namespaceSelector" -}}
{{- $excluded := concat (list .Release.Namespace "kube-system") .Values.webhook.excludeNamespaces | uniq -}}
matchExpressions:
{{- if eq .Values.webhook.namespaceSelectionMode "optIn" }}
  - key: policy.sigstore.dev/include
    operator: In
    values: ["true"]
{{- else if eq .Values.webhook.namespaceSelectionMode "optOut" }}
  - key: policy.sigstore.dev/exclude
    operator: NotIn
    values: ["true"]
{{- else }}
{{- fail (printf "webhook.namespaceSelectionMode must be optIn or optOut, not %q" .Values.webhook.namespaceSelectionMode) }}
{{- end }}
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
{{- range $excluded }}
      - {{ . | quote }}
{{- end }}
{{- end }}

{{/* Every pod-bearing kind, on create and update. */}}
{{- define "signet.webhookRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- if .Values.webhook.knativeServing }}
- apiGroups: ["serving.knative.dev"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["services", "configurations", "revisions"]
  scope: Namespaced
{{- end }}
{{- end }}

{{/* Values sanity checks, evaluated by the Deployment template. */}}
{{- define "signet.validateValues" -}}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) }}
{{- fail (printf "webhook.failurePolicy must be Fail or Ignore, not %q" .Values.webhook.failurePolicy) }}
{{- end }}
{{- $t := int .Values.webhook.timeoutSeconds }}
{{- if or (lt $t 1) (gt $t 30) }}
{{- fail "webhook.timeoutSeconds must be between 1 and 30" }}
{{- end }}
{{- if not (has .Values.noMatchPolicy (list "allow" "deny" "warn")) }}
{{- fail (printf "noMatchPolicy must be allow, deny or warn, not %q" .Values.noMatchPolicy) }}
{{- end }}
{{- if not (has .Values.log.format (list "json" "text")) }}
{{- fail (printf "log.format must be json or text, not %q" .Values.log.format) }}
{{- end }}
{{- if and .Values.registry.ca.configMap .Values.registry.ca.secret }}
{{- fail "set at most one of registry.ca.configMap and registry.ca.secret" }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "preferred" "required" "none")) }}
{{- fail "podAntiAffinity must be preferred, required or none" }}
{{- end }}
{{- end }}

{{/* kms.endpoints as SIGNET_KMS_ENDPOINT wants them: provider=url,provider=url (sorted). */}}
{{- define "signet.kmsEndpoints" -}}
{{- $pairs := list -}}
{{- range $provider, $url := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $provider $url) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
