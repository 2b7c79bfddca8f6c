{{/* Deployment of one service. Takes a component context (see _helpers.tpl). */}}
{{- define "orderline.deployment" -}}
{{- $svc := .svc -}}
{{- $labels := dict "root" .root "component" .name -}}
{{- if le (int $svc.terminationGracePeriodSeconds) (int $svc.shutdownGraceSeconds) -}}
{{- fail (printf "services.%s: terminationGracePeriodSeconds (%v) must be greater than shutdownGraceSeconds (%v)" .name $svc.terminationGracePeriodSeconds $svc.shutdownGraceSeconds) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "orderline.componentName" . }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
spec:
  replicas: {{ int $svc.replicas }}
  revisionHistoryLimit: {{ int $svc.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "orderline.selectorLabels" $labels | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      {{- toYaml $svc.rollingUpdate | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "orderline.podLabels" (dict "root" .root "component" .name "podLabels" $svc.podLabels) | nindent 8 }}
      annotations:
        # Rolls the pods when this service's effective configuration changes.
        checksum/config: {{ dict "env" (include "orderline.env" .) "settings" $svc | toJson | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "orderline.serviceAccountName" . }}
      terminationGracePeriodSeconds: {{ int $svc.terminationGracePeriodSeconds }}
      {{- include "orderline.podCommon" . | nindent 6 }}
      {{- if $svc.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ $svc.topologySpread.topologyKey }}
          whenUnsatisfiable: {{ $svc.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "orderline.selectorLabels" $labels | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "orderline.image" . | quote }}
          imagePullPolicy: {{ $svc.image.pullPolicy }}
          # The root filesystem is read-only: relative paths (var/...) land in the /tmp emptyDir.
          workingDir: /tmp
          command:
            - orderline-{{ .name }}
          ports:
            - name: grpc
              containerPort: {{ int $svc.port }}
              protocol: TCP
          env:
            {{- include "orderline.env" . | nindent 12 }}
          startupProbe:
            {{- include "orderline.probe" (dict "svc" $svc "probe" $svc.probes.startup) | nindent 12 }}
          readinessProbe:
            {{- include "orderline.probe" (dict "svc" $svc "probe" $svc.probes.readiness) | nindent 12 }}
          livenessProbe:
            {{- include "orderline.probe" (dict "svc" $svc "probe" $svc.probes.liveness) | nindent 12 }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $svc.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "orderline.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "orderline.volumes" . | nindent 8 }}
{{- end -}}

{{/* A native gRPC probe against the standard grpc.health.v1 service. */}}
{{- define "orderline.probe" -}}
grpc:
  port: {{ int .svc.port }}
  {{- with .probe.service }}
  service: {{ . | quote }}
  {{- end }}
initialDelaySeconds: {{ int .probe.initialDelaySeconds }}
periodSeconds: {{ int .probe.periodSeconds }}
timeoutSeconds: {{ int .probe.timeoutSeconds }}
failureThreshold: {{ int .probe.failureThreshold }}
{{- end -}}
