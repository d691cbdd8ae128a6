{{- define "bridge.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bridge.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Where the image's files go: the paths tests/test_container.py runs the entrypoint with. */}}
{{- define "bridge.configPath" -}}/etc/hostdown-bridge/config/bridge.yaml{{- end -}}
{{- define "bridge.tokensDir" -}}/etc/hostdown-bridge/tokens{{- end -}}

{{- define "bridge.databaseUrl" -}}
{{- if eq .Values.database.type "sqlite" -}}
sqlite:////var/lib/hostdown-bridge/bridge.sqlite
{{- else -}}
{{- required "database.postgresql.url is required with database.type postgresql" .Values.database.postgresql.url -}}
{{- end -}}
{{- end -}}

{{/* The bridge's configuration: values.config, with what the chart decides over it. */}}
{{- define "bridge.config" -}}
{{- $tokens := include "bridge.tokensDir" . -}}
{{- $webhook := dict -}}
{{- range .Values.auth.webhookSources -}}
{{- $_ := set $webhook . (dict "file" (printf "%s/%s.token" $tokens .)) -}}
{{- end -}}
{{- $admins := list -}}
{{- range .Values.auth.adminTokens -}}
{{- $admins = append $admins (dict "name" . "token" (dict "file" (printf "%s/admin-%s.token" $tokens .))) -}}
{{- end -}}
{{- $server := dict "bind" "0.0.0.0:8080" "workers" .Values.server.workers "threads" .Values.server.threads
      "timeout" .Values.server.timeout "graceful_timeout" .Values.server.gracefulTimeout -}}
{{- if .Values.secrets.tls -}}
{{- $_ := set $server "tls" (dict "certfile" "/etc/hostdown-bridge/tls/tls.crt" "keyfile" "/etc/hostdown-bridge/tls/tls.key") -}}
{{- end -}}
{{- $chart := dict "dry_run" .Values.dryRun "server" $server
      "database" (dict "url" (include "bridge.databaseUrl" .))
      "auth" (dict "webhook_tokens" $webhook "admin_tokens" $admins)
      "logging" (dict "level" .Values.logging.level "format" .Values.logging.format) -}}
{{- if .Values.nova.cloud -}}
{{- $_ := set $chart "nova" (dict "cloud" .Values.nova.cloud) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $chart) -}}
{{- end -}}

{{/* Environment and volumes shared by the Deployment and the migration Job. */}}
{{- define "bridge.env" -}}
- name: HOSTDOWN_BRIDGE_CONFIG
  value: {{ include "bridge.configPath" . }}
- name: TMPDIR
  value: /tmp
- name: HOME
  value: /tmp
{{- if .Values.secrets.cloudsYaml }}
- name: OS_CLIENT_CONFIG_FILE
  value: /etc/openstack/clouds.yaml
{{- end }}
{{- if and (eq .Values.database.type "postgresql") .Values.database.postgresql.passwordSecret.name }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.postgresql.passwordSecret.name }}
      key: {{ .Values.database.postgresql.passwordSecret.key }}
{{- end }}
{{- end -}}

{{- define "bridge.volumeMounts" -}}
- name: config
  mountPath: /etc/hostdown-bridge/config
  readOnly: true
- name: tokens
  mountPath: {{ include "bridge.tokensDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.secrets.cloudsYaml }}
- name: clouds
  mountPath: /etc/openstack
  readOnly: true
{{- end }}
{{- if .Values.secrets.bmcCredentials }}
- name: bmc
  mountPath: /etc/hostdown-bridge/bmc
  readOnly: true
{{- end }}
{{- if .Values.secrets.tls }}
- name: tls
  mountPath: /etc/hostdown-bridge/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "bridge.volumes" -}}
- name: tokens
  secret:
    secretName: {{ .Values.secrets.tokens }}
    defaultMode: 0440
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if .Values.secrets.cloudsYaml }}
- name: clouds
  secret:
    secretName: {{ .Values.secrets.cloudsYaml }}
    defaultMode: 0440
    items: [{key: clouds.yaml, path: clouds.yaml}]
{{- end }}
{{- if .Values.secrets.bmcCredentials }}
- name: bmc
  secret:
    secretName: {{ .Values.secrets.bmcCredentials }}
    defaultMode: 0440
{{- end }}
{{- if .Values.secrets.tls }}
- name: tls
  secret:
    secretName: {{ .Values.secrets.tls }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "bridge.scheme" -}}{{ if .Values.secrets.tls }}HTTPS{{ else }}HTTP{{ end }}{{- end -}}
