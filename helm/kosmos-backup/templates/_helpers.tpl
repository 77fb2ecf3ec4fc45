{{- define "kb.name" -}}kosmos-backup{{- end -}}
{{- define "kb.labels" -}}
app.kubernetes.io/name: {{ include "kb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "kb.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  fsGroup: 10001
{{- end -}}
{{- define "kb.volumes" -}}
- name: config
  configMap:
    name: {{ include "kb.name" . }}-config
- name: tmp
  emptyDir: {}
{{- end -}}
{{- define "kb.mounts" -}}
- name: config
  mountPath: /etc/kosmos-backup
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}
{{- define "kb.container" -}}
image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - secretRef:
      name: {{ .Values.existingSecret }}
env:
  - name: KOSMOS__REDIS__URL
    value: {{ .Values.redis.url | quote }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
