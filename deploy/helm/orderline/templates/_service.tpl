{{/* ClusterIP Service of one service; the port is named "grpc". */}}
{{- define "orderline.service" -}}
{{- $labels := dict "root" .root "component" .name -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
  {{- with .svc.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .svc.service.type }}
  selector:
    {{- include "orderline.selectorLabels" $labels | nindent 4 }}
  ports:
    - name: grpc
      port: {{ int .svc.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if .svc.metrics.enabled }}
    - name: metrics
      port: {{ int .svc.metrics.port }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end -}}
