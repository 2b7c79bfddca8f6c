{{/*
Migration hook Job of one service: runs "orderline-<service> migrate" before
install and before every upgrade, so new pods start on a migrated schema (the
pods themselves run with ORDERLINE_MIGRATE_ON_START=false). Its pods carry the
component label "<service>-migration", so they never match the Service, the
Deployment or the PodDisruptionBudget.
The chart's ServiceAccounts do not exist yet at pre-install time, so the Job
runs under migration.serviceAccountName (default: the namespace's "default"
account), always without an API token.
*/}}
{{- define "orderline.migrationJob" -}}
{{- $svc := .svc -}}
{{- $labels := dict "root" .root "component" (printf "%s-migration" .name) -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-migrate" (include "orderline.componentName" .) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    {{- include "orderline.checkovSkips" (dict "svc" $svc "kind" "Job") | nindent 4 }}
spec:
  backoffLimit: {{ int $svc.migration.backoffLimit }}
  activeDeadlineSeconds: {{ int $svc.migration.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "orderline.podLabels" (dict "root" .root "component" (printf "%s-migration" .name) "podLabels" $svc.podLabels) | nindent 8 }}
      {{- with $svc.migration.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      restartPolicy: Never
      {{- with $svc.migration.serviceAccountName }}
      serviceAccountName: {{ . }}
      {{- end }}
      {{- include "orderline.podCommon" . | nindent 6 }}
      containers:
        - name: migrate
          image: {{ include "orderline.image" . | quote }}
          imagePullPolicy: {{ $svc.image.pullPolicy }}
          # The root filesystem is read-only: relative paths (var/...) land in the /tmp emptyDir.
          workingDir: /tmp
          command:
            - orderline-{{ .name }}
            - migrate
          env:
            {{- include "orderline.env" (merge (dict "container" "migrate") .) | nindent 12 }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $svc.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "orderline.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "orderline.volumes" . | nindent 8 }}
{{- end -}}
