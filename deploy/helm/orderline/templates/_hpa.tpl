{{/*
HorizontalPodAutoscaler of one service (autoscaling/v2). The Deployment then has no
replicas field, so upgrades never reset the count the autoscaler chose.
*/}}
{{- define "orderline.hpa" -}}
{{- $svc := .svc -}}
{{- $auto := $svc.autoscaling -}}
{{- if gt (int $auto.minReplicas) (int $auto.maxReplicas) -}}
{{- fail (printf "services.%s.autoscaling: minReplicas (%v) must not exceed maxReplicas (%v)" .name $auto.minReplicas $auto.maxReplicas) -}}
{{- end -}}
{{- if and (eq (int $auto.targetCPUUtilizationPercentage) 0) (eq (int $auto.targetMemoryUtilizationPercentage) 0) -}}
{{- fail (printf "services.%s.autoscaling: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" .name) -}}
{{- end -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" (dict "root" .root "component" .name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "orderline.componentName" . }}
  minReplicas: {{ int $auto.minReplicas }}
  maxReplicas: {{ int $auto.maxReplicas }}
  metrics:
    {{- range $resource, $target := dict "cpu" $auto.targetCPUUtilizationPercentage "memory" $auto.targetMemoryUtilizationPercentage }}
    {{- if $target }}
    - type: Resource
      resource:
        name: {{ $resource }}
        target:
          type: Utilization
          averageUtilization: {{ int $target }}
    {{- end }}
    {{- end }}
  {{- with $auto.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
