{{/* Prometheus Operator ServiceMonitor of one service: scrapes the Service port "metrics". */}}
{{- define "orderline.serviceMonitor" -}}
{{- $monitor := .svc.metrics.serviceMonitor -}}
{{- if not .svc.metrics.enabled -}}
{{- fail (printf "services.%s.metrics.serviceMonitor.enabled needs metrics.enabled" .name) -}}
{{- end -}}
{{- $labels := dict "root" .root "component" .name -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- /* Extra labels cannot override the chart's own. */}}
    {{- toYaml (merge (include "orderline.labels" $labels | fromYaml) ($monitor.labels | default dict)) | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "orderline.selectorLabels" $labels | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ .root.Release.Namespace }}
  endpoints:
    - port: metrics
      path: /metrics
      scheme: http
      {{- with $monitor.interval }}
      interval: {{ . }}
      {{- end }}
      {{- with $monitor.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
{{- end -}}
