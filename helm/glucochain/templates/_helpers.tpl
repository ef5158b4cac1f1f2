{{/* Names and labels. */}}
{{- define "glucochain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "glucochain.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "glucochain.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "glucochain.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* Environment every service shares. */}}
{{- define "glucochain.env" -}}
- name: GLUCOCHAIN_GENESIS
  value: /etc/glucochain/genesis.json
- name: GLUCOCHAIN_NATS_URL
  value: {{ .Values.nats.url | quote }}
- name: GLUCOCHAIN_HTTP_ADDR
  value: "0.0.0.0:8080"
{{- if .Values.http.insecure }}
{{- /* The services refuse plain HTTP on a non-loopback address unless told that a proxy terminates TLS. */}}
- name: GLUCOCHAIN_INSECURE_HTTP
  value: "true"
{{- end }}
- name: GLUCOCHAIN_DATA_DIR
  value: /data
- name: GLUCOCHAIN_LOG_FORMAT
  value: json
{{- if .Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .Values.otel.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.otel.sampleRatio | quote }}
{{- end }}
{{- end -}}

{{- define "glucochain.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
{{- end -}}

{{/* NATS credentials of one service kind (dict "root" $ "user" "ledger"): env, mount, volume. */}}
{{- define "glucochain.natsEnv" -}}
{{- if .root.Values.nats.auth.enabled }}
- name: GLUCOCHAIN_NATS_NKEY_FILE
  value: /nats/seed
{{- end }}
{{- if (.root.Values.nats.tls).caSecret }}
- name: GLUCOCHAIN_NATS_CA_FILE
  value: /nats-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "glucochain.natsMount" -}}
{{- if .root.Values.nats.auth.enabled }}
- {name: nats-nkey, mountPath: /nats, readOnly: true}
{{- end }}
{{- if (.root.Values.nats.tls).caSecret }}
- {name: nats-ca, mountPath: /nats-ca, readOnly: true}
{{- end }}
{{- end -}}

{{- define "glucochain.natsVolume" -}}
{{- if .root.Values.nats.auth.enabled }}
- name: nats-nkey
  secret: {secretName: {{ .root.Values.nats.auth.seedSecretPrefix }}-{{ .user }}, defaultMode: 0400}
{{- end }}
{{- if (.root.Values.nats.tls).caSecret }}
- name: nats-ca
  secret: {secretName: {{ .root.Values.nats.tls.caSecret }}, defaultMode: 0444}
{{- end }}
{{- end -}}
