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

{{/* The expert host names the chart may run: replicas, or the autoscaler's maximum. */}}
{{- define "moemesh.hostCount" -}}
{{- if .Values.expertHost.hpa.enabled }}{{ max (int .Values.expertHost.replicas) (int .Values.expertHost.hpa.maxReplicas) }}{{ else }}{{ int .Values.expertHost.replicas }}{{ end }}
{{- end -}}

{{/* The keyring of one role (.root, .role): every public key, and the role's own
     secret key (expert hosts share one pod template, so each holds every host's;
     an attention pod holds its mtp-draft sidecar's too). */}}
{{- define "moemesh.keyVolume" -}}
{{- if .root.Values.security.curve }}
{{- $fn := include "moemesh.fullname" .root -}}
{{- $ids := list "router/router" "attention/attention" "mtp-draft/mtp-draft" "gateway/gateway" "admin/admin" -}}
{{- range $i := until (int (include "moemesh.hostCount" .root)) }}
{{- $ids = append $ids (printf "expert-host/%s-expert-host-%d" $fn $i) }}
{{- end }}
- name: curve-keys
  secret:
    secretName: {{ .root.Values.security.keysSecret | default (printf "%s-curve-keys" $fn) }}
    defaultMode: 0440  # the pod's group (fsGroup) reads them; the role runs as non-root
    items:
      {{- range $id := $ids }}
      - {key: {{ replace "/" "--" $id }}.pub, path: {{ $id }}.pub}
      {{- end }}
      {{- range $id := $ids }}
      {{- $kind := index (splitList "/" $id) 0 }}
      {{- if or (eq $kind $.role) (and (eq $kind "mtp-draft") (eq $.role "attention") $.root.Values.mtpDraft.enabled) }}
      - {key: {{ replace "/" "--" $id }}.key, path: {{ $id }}.key}
      {{- end }}
      {{- end }}
{{- end }}
{{- end -}}

{{- define "moemesh.keyMount" -}}
{{- if .Values.security.curve }}
- name: curve-keys
  mountPath: /etc/moemesh-keys
  readOnly: true
{{- end }}
{{- end -}}
