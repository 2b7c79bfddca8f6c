{{/* Deployment of one service. Takes a component context (see _helpers.tpl). */}}
{{- define "orderline.deployment" -}}
{{- $svc := .svc -}}
{{- $labels := dict "root" .root "component" .name -}}
{{- /*
The drain after SIGTERM: the preStop sleep, then up to shutdownGraceSeconds for the gRPC
server to finish its calls and as long again for consumers and workers to finish the
message or step in hand, then a few seconds to drain NATS and close the database.
The pod must not be killed before that is over.
*/ -}}
{{- $drain := addf $svc.preStopSleepSeconds (mulf 2 $svc.shutdownGraceSeconds) 5 -}}
{{- if le (float64 $svc.terminationGracePeriodSeconds) (float64 $drain) -}}
{{- fail (printf "services.%s: terminationGracePeriodSeconds (%v) must be greater than the drain, preStopSleepSeconds + 2 x shutdownGraceSeconds + 5 = %v" .name $svc.terminationGracePeriodSeconds $drain) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
  annotations:
    {{- include "orderline.checkovSkips" (dict "svc" $svc "kind" "Deployment") | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ int $svc.replicas }}
  {{- end }}
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
            {{- if $svc.tls.existingSecret }}
            - name: health
              containerPort: {{ int $svc.tls.healthPort }}
              protocol: TCP
            {{- end }}
            {{- if $svc.metrics.enabled }}
            - name: metrics
              containerPort: {{ int $svc.metrics.port }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "orderline.env" . | nindent 12 }}
          {{- with $svc.preStopSleepSeconds }}
          lifecycle:
            # Endpoints are removed while the pod sleeps, so no new calls arrive once
            # SIGTERM starts the drain.
            preStop:
              exec:
                command:
                  - sleep
                  - {{ . | toString | quote }}
          {{- end }}
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
            {{- include "orderline.blobVolumeMount" . | nindent 12 }}
      volumes:
        {{- include "orderline.volumes" . | nindent 8 }}
        {{- include "orderline.blobVolume" . | nindent 8 }}
{{- end -}}

{{/* A native gRPC probe against the standard grpc.health.v1 service. */}}
{{- define "orderline.probe" -}}
grpc:
  {{- /* The kubelet's gRPC probes cannot speak TLS: with TLS, the plaintext health port. */}}
  port: {{ ternary (int .svc.tls.healthPort) (int .svc.port) (not (empty .svc.tls.existingSecret)) }}
  {{- with .probe.service }}
  service: {{ . | quote }}
  {{- end }}
initialDelaySeconds: {{ int .probe.initialDelaySeconds }}
periodSeconds: {{ int .probe.periodSeconds }}
timeoutSeconds: {{ int .probe.timeoutSeconds }}
failureThreshold: {{ int .probe.failureThreshold }}
{{- end -}}
