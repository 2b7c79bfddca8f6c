{{/* PodDisruptionBudget of one service. */}}
{{- define "orderline.pdb" -}}
{{- $labels := dict "root" .root "component" .name -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
spec:
  maxUnavailable: {{ .svc.pdb.maxUnavailable }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "orderline.selectorLabels" $labels | nindent 6 }}
{{- end -}}
