{{- define "moemesh.fullname" -}}
{{- printf "%s-moemesh" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moemesh.labels" -}}
app.kubernetes.io/name: moemesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "moemesh.selector" -}}
app.kubernetes.io/name: moemesh
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{/* The model volume and the config, mounted into every role. */}}
{{- define "moemesh.volumes" -}}
- name: model
{{- if eq .Values.model.volume.type "hostPath" }}
  hostPath:
    path: {{ .Values.model.volume.hostPath }}
    type: Directory
{{- else }}
  persistentVolumeClaim:
    claimName: {{ .Values.model.volume.claimName }}
    readOnly: true
{{- end }}
- name: config
  configMap:
    name: {{ include "moemesh.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "moemesh.mounts" -}}
- name: model
  mountPath: {{ dir .Values.model.path }}
  readOnly: true
- name: config
  mountPath: /etc/moemesh
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Scheduling and resources of one role: .root and .cfg (the role's values). */}}
{{- define "moemesh.placement" -}}
{{- with .cfg.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "moemesh.resources" -}}
{{- $r := deepCopy (default dict .cfg.resources) -}}
{{- if and .cfg.gpus (gt (int .cfg.gpus) 0) -}}
{{- $limits := deepCopy (default dict $r.limits) -}}
{{- $_ := set $limits "nvidia.com/gpu" .cfg.gpus -}}
{{- $_ := set $r "limits" $limits -}}
{{- end -}}
resources:
  {{- toYaml $r | nindent 2 }}
{{- end -}}
