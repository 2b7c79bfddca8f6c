{{/*
Shared helpers. Most helpers take a component context built in component.yaml:
  (dict "root" $ "name" "<service>" "svc" <defaults deep-merged with services.<service>>)
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "orderline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Release-wide name prefix. Kept to 40 characters so that
"<prefix>-device-monitor-migrate" still fits a 63-character DNS label.
*/}}
{{- define "orderline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label (never used in selectors). */}}
{{- define "orderline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one service's resources: "<fullname>-<service>". Takes a component context. */}}
{{- define "orderline.componentName" -}}
{{- printf "%s-%s" (include "orderline.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels. Stable for the life of a release: they never contain the chart
version, the app version or anything else that changes on upgrade, because
Deployment selectors are immutable.
Takes (dict "root" $ "component" "<component>").
*/}}
{{- define "orderline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Full label set: selector labels plus descriptive ones, then commonLabels (which
cannot override the chart's own). Same argument as selectorLabels.
*/}}
{{- define "orderline.labels" -}}
{{- $own := include "orderline.ownLabels" . | fromYaml -}}
{{- toYaml (merge $own (.root.Values.commonLabels | default dict)) -}}
{{- end -}}

{{- define "orderline.ownLabels" -}}
helm.sh/chart: {{ include "orderline.chart" .root }}
{{ include "orderline.selectorLabels" . }}
app.kubernetes.io/part-of: orderline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Pod labels: podLabels plus the full label set (which wins on conflicts). */}}
{{- define "orderline.podLabels" -}}
{{- $own := include "orderline.labels" (dict "root" .root "component" .component) | fromYaml -}}
{{- toYaml (merge $own (.podLabels | default dict)) -}}
{{- end -}}

{{/*
Deep merge: copies .src into .dst in place, recursing into maps that exist on
both sides. Unlike sprig's mergeOverwrite, false, 0 and "" in .src do win, so
"pdb: {enabled: false}" or "replicas: 0" on a service override the defaults.
Lists are replaced, not appended.
*/}}
{{- define "orderline.deepMerge" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) -}}
{{- include "orderline.deepMerge" (dict "dst" (get $dst $key) "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Image tag: the service's tag, else the chart appVersion. Never "latest". */}}
{{- define "orderline.imageTag" -}}
{{- $tag := .svc.image.tag | default .root.Chart.AppVersion | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail (printf "services.%s.image.tag: a pinned tag is required (empty or \"latest\" is not allowed)" .name) -}}
{{- end -}}
{{- $tag -}}
{{- end -}}

{{/* Image reference: repository:tag, or repository:tag@digest when a digest is set. */}}
{{- define "orderline.image" -}}
{{- $ref := printf "%s:%s" .svc.image.repository (include "orderline.imageTag" .) -}}
{{- if .svc.image.digest -}}
{{- $ref = printf "%s@%s" $ref .svc.image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* ServiceAccount used by the service's pods. */}}
{{- define "orderline.serviceAccountName" -}}
{{- if .svc.serviceAccount.create -}}
{{- default (include "orderline.componentName" .) .svc.serviceAccount.name -}}
{{- else -}}
{{- default "default" .svc.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the service mounts a tokens file from its auth Secret, else empty. */}}
{{- define "orderline.tokensFile" -}}
{{- if and .svc.auth.existingSecret .svc.auth.tokensFileKey -}}true{{- end -}}
{{- end -}}

{{/* "true" when the service has an identity configuration (a tokens file or a JWKS), else
empty: only without one may the development opt-in be rendered. */}}
{{- define "orderline.hasIdentity" -}}
{{- if or (include "orderline.tokensFile" .) .svc.auth.jwt.jwksUrl -}}true{{- end -}}
{{- end -}}

{{/*
Refuses to render a service that would have no identity, or one it would refuse at start: the
services themselves refuse to start without a tokens file, a JWKS or the development opt-in,
with a JWKS but no issuer or audience, and (provisioning, which calls the others) without a
token of their own; a release that only fails at start is worse than one that never renders.
Takes a component context.
*/}}
{{- define "orderline.requireAuth" -}}
{{- $auth := .svc.auth -}}
{{- if not (or (include "orderline.hasIdentity" .) $auth.allowDevelopmentTokens) -}}
{{- fail (printf "services.%s: no auth configuration: set defaults.auth.existingSecret to a Secret with the tokens file and the service token, or defaults.auth.jwt.jwksUrl (with issuer and audience) for JWT bearer tokens, or set defaults.auth.allowDevelopmentTokens=true on purpose to accept the well-known development tokens (never in production)" .name) -}}
{{- end -}}
{{- if and $auth.jwt.jwksUrl (not (and $auth.jwt.issuer $auth.jwt.audience)) -}}
{{- fail (printf "services.%s: auth.jwt.jwksUrl needs auth.jwt.issuer and auth.jwt.audience: without them a token the provider issued for another application would be accepted" .name) -}}
{{- end -}}
{{- if and (eq .name "intake") (not .svc.customerHashKey.existingSecret) (not (and $auth.allowDevelopmentTokens (not (include "orderline.hasIdentity" .)))) -}}
{{- fail "services.intake: keeps customers' phone and identity numbers searchable only by a keyed hash: set services.intake.customerHashKey.existingSecret to a Secret holding a random key of at least 32 bytes (`openssl rand -base64 48`) under customerHashKey.key" -}}
{{- end -}}
{{- if and (eq .name "intake") (not .svc.piiKeys.existingSecret) (not (and $auth.allowDevelopmentTokens (not (include "orderline.hasIdentity" .)))) -}}
{{- fail "services.intake: keeps customers' phone, identity numbers and addresses encrypted at rest: set services.intake.piiKeys.existingSecret to a Secret holding a keyring of lines `<key id>: <base64 of 32 random bytes>` (`echo \"k1: $(openssl rand -base64 32)\"`) under piiKeys.key, and piiKeys.keyId to the current key's id" -}}
{{- end -}}
{{- if and (eq .name "provisioning") (not .svc.voucherKey.existingSecret) -}}
{{- fail "services.provisioning: signs every activation voucher and issues none unsigned: set services.provisioning.voucherKey.existingSecret to a Secret holding an Ed25519 private key (PEM PKCS#8, from `openssl genpkey -algorithm ed25519`) under voucherKey.key" -}}
{{- end -}}
{{- if and (eq .name "provisioning") (include "orderline.hasIdentity" .) (not $auth.existingSecret) -}}
{{- fail "services.provisioning: calls intake and device-monitor and needs its own token: set auth.existingSecret to a Secret holding it under auth.serviceTokenKey (with auth.tokensFileKey empty when it holds no tokens file)" -}}
{{- end -}}
{{- end -}}

{{/* Name of the existing Secret holding this service's database URL. */}}
{{- define "orderline.databaseSecretName" -}}
{{- default (printf "%s-database" (include "orderline.componentName" .)) .svc.database.existingSecret -}}
{{- end -}}

{{/* Name of the existing Secret holding the NATS URL (and credentials). */}}
{{- define "orderline.natsSecretName" -}}
{{- default (printf "%s-nats" (include "orderline.fullname" .root)) .svc.nats.existingSecret -}}
{{- end -}}

{{/*
gRPC address of another service: .address when set, else that service's
in-cluster Service in this release (which must then be enabled).
*/}}
{{- define "orderline.peerAddress" -}}
{{- if .address -}}
{{- .address -}}
{{- else -}}
{{- $target := .target -}}
{{- $values := get .root.Values.services $target | default dict -}}
{{- if not (get $values "enabled") -}}
{{- fail (printf "services.provisioning.addresses: %s is disabled in this release; set its address explicitly" $target) -}}
{{- end -}}
{{- $port := get $values "port" -}}
{{- printf "%s.%s.svc:%d" (include "orderline.componentName" (dict "root" .root "name" $target)) .root.Release.Namespace (int $port) -}}
{{- end -}}
{{- end -}}

{{/*
Container environment: the contract of docs/configuration.md. Secrets are
referenced with secretKeyRef, never inlined. Used by the Deployment and the
migration Job so both see the same settings (the Job passes "container").
*/}}
{{- define "orderline.env" -}}
{{- $svc := .svc -}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: ORDERLINE_GRPC_HOST
  value: "0.0.0.0"
- name: ORDERLINE_GRPC_PORT
  value: {{ int $svc.port | quote }}
- name: ORDERLINE_MIGRATE_ON_START
  value: "false"
- name: ORDERLINE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "orderline.databaseSecretName" . }}
      key: {{ $svc.database.secretKey }}
- name: ORDERLINE_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "orderline.natsSecretName" . }}
      key: {{ $svc.nats.urlKey }}
{{- if $svc.nats.credentialsKey }}
- name: ORDERLINE_NATS_CREDENTIALS_FILE
  value: /etc/orderline/nats/nats.creds
{{- end }}
{{- if $svc.nats.tls.existingSecret }}
- name: ORDERLINE_NATS_TLS_CA_FILE
  value: /etc/orderline/nats-tls/ca.crt
{{- if $svc.nats.tls.certKey }}
- name: ORDERLINE_NATS_TLS_CERT_FILE
  value: /etc/orderline/nats-tls/tls.crt
- name: ORDERLINE_NATS_TLS_KEY_FILE
  value: /etc/orderline/nats-tls/tls.key
{{- end }}
{{- end }}
{{- if $svc.tls.existingSecret }}
- name: ORDERLINE_TLS_CERT_FILE
  value: /etc/orderline/tls/tls.crt
- name: ORDERLINE_TLS_KEY_FILE
  value: /etc/orderline/tls/tls.key
- name: ORDERLINE_TLS_CA_FILE
  value: /etc/orderline/tls/ca.crt
- name: ORDERLINE_TLS_REQUIRE_CLIENT_AUTH
  value: {{ $svc.tls.requireClientAuth | quote }}
- name: ORDERLINE_HEALTH_PORT
  value: {{ int $svc.tls.healthPort | quote }}
{{- end }}
{{- if $svc.nats.passwordsSecret }}
- name: ORDERLINE_NATS_USER
  value: {{ .name | quote }}
- name: ORDERLINE_NATS_PASSWORD_FILE
  value: /etc/orderline/nats-user/secret
{{- end }}
{{- if include "orderline.tokensFile" . }}
- name: ORDERLINE_AUTH_TOKENS_FILE
  value: /etc/orderline/auth/tokens.json
{{- end }}
{{- if $svc.auth.existingSecret }}
- name: ORDERLINE_SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $svc.auth.existingSecret }}
      key: {{ $svc.auth.serviceTokenKey }}
{{- end }}
{{- with $svc.auth.jwt }}
{{- if .jwksUrl }}
- name: ORDERLINE_AUTH_JWKS_URL
  value: {{ .jwksUrl | quote }}
- name: ORDERLINE_AUTH_ISSUER
  value: {{ .issuer | quote }}
- name: ORDERLINE_AUTH_AUDIENCE
  value: {{ .audience | quote }}
- name: ORDERLINE_AUTH_ROLES_CLAIM
  value: {{ .rolesClaim | quote }}
{{- end }}
{{- end }}
{{- if and $svc.auth.allowDevelopmentTokens (not (include "orderline.hasIdentity" .)) }}
{{- /* Only without an identity configuration: with one it wins anyway, and a production pod
carries no development-token setting at all. */}}
- name: ORDERLINE_ALLOW_DEVELOPMENT_TOKENS
  value: "true"
{{- end }}
- name: ORDERLINE_TRACE_DIR
  value: {{ $svc.tracing.dir | quote }}
- name: ORDERLINE_LOG_LEVEL
  value: {{ $svc.logLevel | quote }}
- name: ORDERLINE_MAX_CONCURRENT_RPCS
  value: {{ int $svc.maxConcurrentRpcs | quote }}
- name: ORDERLINE_MAX_MESSAGE_BYTES
  value: {{ int $svc.limits.maxMessageBytes | quote }}
- name: ORDERLINE_MAX_TEXT_CHARS
  value: {{ int $svc.limits.maxTextChars | quote }}
- name: ORDERLINE_WRITE_RATE_PER_PRINCIPAL
  value: {{ $svc.limits.writeRatePerPrincipal | toString | quote }}
- name: ORDERLINE_WRITE_BURST_PER_PRINCIPAL
  value: {{ int $svc.limits.writeBurstPerPrincipal | quote }}
- name: ORDERLINE_SHUTDOWN_GRACE_SECONDS
  value: {{ $svc.shutdownGraceSeconds | toString | quote }}
{{- if $svc.metrics.enabled }}
- name: ORDERLINE_METRICS_PORT
  value: {{ int $svc.metrics.port | quote }}
{{- end }}
{{- if eq .name "archive" }}
- name: ORDERLINE_ARCHIVE_LOG_ORIGIN
  value: {{ $svc.signingKey.origin | quote }}
{{- if $svc.signingKey.existingSecret }}
- name: ORDERLINE_ARCHIVE_SIGNING_KEY_FILE
  value: /etc/orderline/archive/signing-key.pem
{{- end }}
- name: ORDERLINE_ARCHIVE_BLOB_STORE
  value: {{ $svc.blobs.store | quote }}
{{- if eq $svc.blobs.store "s3" }}
{{- with $svc.blobs.s3 }}
- name: ORDERLINE_ARCHIVE_S3_ENDPOINT
  value: {{ required "services.archive.blobs.s3.endpoint is required with blobs.store s3" .endpoint | quote }}
- name: ORDERLINE_ARCHIVE_S3_BUCKET
  value: {{ required "services.archive.blobs.s3.bucket is required with blobs.store s3" .bucket | quote }}
- name: ORDERLINE_ARCHIVE_S3_REGION
  value: {{ .region | quote }}
- name: ORDERLINE_ARCHIVE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ required "services.archive.blobs.s3.existingSecret is required with blobs.store s3" .existingSecret }}
      key: {{ .accessKeyIdKey }}
- name: ORDERLINE_ARCHIVE_S3_SECRET_KEY_FILE
  value: /etc/orderline/archive-s3/secret-access-key
{{- end }}
{{- else }}
- name: ORDERLINE_ARCHIVE_BLOB_DIR
  value: /var/lib/orderline/archive/blobs
{{- end }}
{{- end }}
{{- if and (eq .name "intake") $svc.customerHashKey.existingSecret }}
- name: ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE
  value: /etc/orderline/intake/customer-hash.key
- name: ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_ID
  value: {{ $svc.customerHashKey.keyId | quote }}
{{- end }}
{{- if and (eq .name "intake") $svc.piiKeys.existingSecret }}
- name: ORDERLINE_INTAKE_PII_KEYS_FILE
  value: /etc/orderline/intake-pii/pii.keys
- name: ORDERLINE_INTAKE_PII_KEY_ID
  value: {{ $svc.piiKeys.keyId | quote }}
{{- end }}
{{- if eq .name "device-monitor" }}
- name: ORDERLINE_DEVICE_AGENT_ADDRESS
  value: {{ (($svc.addresses | default dict).deviceAgent | default "") | quote }}
{{- /* Replicas split the fleet into partitions under leases; each routes the others' samples and calls to their owners, at this address. */}}
- name: K8S_POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: ORDERLINE_REPLICA_ID
  value: "$(K8S_POD_NAME)"
- name: ORDERLINE_REPLICA_ADDRESS
  value: "$(K8S_POD_IP):{{ int $svc.port }}"
{{- end }}
{{- if eq .name "provisioning" }}
{{- $addresses := $svc.addresses }}
- name: ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE
  value: /etc/orderline/provisioning/voucher-key.pem
{{- if $svc.voucherKey.publicKeysKey }}
- name: ORDERLINE_PROVISIONING_VOUCHER_PUBLIC_KEYS_FILE
  value: /etc/orderline/provisioning/voucher-public-keys.pem
{{- end }}
- name: ORDERLINE_INTAKE_ADDRESS
  value: {{ include "orderline.peerAddress" (dict "root" .root "target" "intake" "address" $addresses.intake) | quote }}
- name: ORDERLINE_DEVICE_MONITOR_ADDRESS
  value: {{ include "orderline.peerAddress" (dict "root" .root "target" "device-monitor" "address" $addresses.deviceMonitor) | quote }}
- name: ORDERLINE_DEVICE_AGENT_ADDRESS
  value: {{ required "services.provisioning.addresses.deviceAgent is required" $addresses.deviceAgent | quote }}
- name: ORDERLINE_GATEWAY_ADDRESS
  value: {{ required "services.provisioning.addresses.gateway is required" $addresses.gateway | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ .name | quote }}
{{- $attributes := list "service.namespace=orderline" (printf "service.version=%s" (include "orderline.imageTag" .)) "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.pod.name=$(K8S_POD_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" (printf "k8s.container.name=%s" (get . "container" | default .name)) }}
{{- range $key, $value := $svc.otel.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- if $svc.otel.exporterOtlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $svc.otel.exporterOtlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $svc.otel.exporterOtlpProtocol | quote }}
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts shared by the Deployment and the migration Job. */}}
{{- define "orderline.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .svc.nats.credentialsKey }}
- name: nats-credentials
  mountPath: /etc/orderline/nats
  readOnly: true
{{- end }}
{{- if .svc.nats.passwordsSecret }}
- name: nats-user
  mountPath: /etc/orderline/nats-user
  readOnly: true
{{- end }}
{{- if .svc.tls.existingSecret }}
- name: tls
  mountPath: /etc/orderline/tls
  readOnly: true
{{- end }}
{{- if .svc.nats.tls.existingSecret }}
- name: nats-tls
  mountPath: /etc/orderline/nats-tls
  readOnly: true
{{- end }}
{{- if include "orderline.tokensFile" . }}
- name: auth-tokens
  mountPath: /etc/orderline/auth
  readOnly: true
{{- end }}
{{- if and (eq .name "archive") .svc.signingKey.existingSecret }}
- name: archive-signing-key
  mountPath: /etc/orderline/archive
  readOnly: true
{{- end }}
{{- if and (eq .name "archive") (eq .svc.blobs.store "s3") }}
- name: archive-s3-secret-key
  mountPath: /etc/orderline/archive-s3
  readOnly: true
{{- end }}
{{- if eq .name "provisioning" }}
- name: voucher-key
  mountPath: /etc/orderline/provisioning
  readOnly: true
{{- end }}
{{- if and (eq .name "intake") .svc.customerHashKey.existingSecret }}
- name: customer-hash-key
  mountPath: /etc/orderline/intake
  readOnly: true
{{- end }}
{{- if and (eq .name "intake") .svc.piiKeys.existingSecret }}
- name: pii-keys
  mountPath: /etc/orderline/intake-pii
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes shared by the Deployment and the migration Job. */}}
{{- define "orderline.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .svc.tmpVolume.sizeLimit }}
{{- if .svc.nats.credentialsKey }}
- name: nats-credentials
  secret:
    secretName: {{ include "orderline.natsSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .svc.nats.credentialsKey }}
        path: nats.creds
{{- end }}
{{- if .svc.nats.passwordsSecret }}
- name: nats-user
  secret:
    secretName: {{ .svc.nats.passwordsSecret }}
    defaultMode: 0440
    items:
      - key: {{ printf "%s.password" .name }}
        path: secret
{{- end }}
{{- if .svc.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .svc.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.tls.certKey }}
        path: tls.crt
      - key: {{ .svc.tls.keyKey }}
        path: tls.key
      - key: {{ .svc.tls.caKey }}
        path: ca.crt
{{- end }}
{{- if .svc.nats.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ .svc.nats.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.nats.tls.caKey }}
        path: ca.crt
      {{- if .svc.nats.tls.certKey }}
      - key: {{ .svc.nats.tls.certKey }}
        path: tls.crt
      - key: {{ required "nats.tls.keyKey: the client certificate needs its key" .svc.nats.tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- if include "orderline.tokensFile" . }}
- name: auth-tokens
  secret:
    secretName: {{ .svc.auth.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.auth.tokensFileKey }}
        path: tokens.json
{{- end }}
{{- if and (eq .name "archive") .svc.signingKey.existingSecret }}
- name: archive-signing-key
  secret:
    secretName: {{ .svc.signingKey.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.signingKey.key }}
        path: signing-key.pem
{{- end }}
{{- if and (eq .name "archive") (eq .svc.blobs.store "s3") }}
- name: archive-s3-secret-key
  secret:
    secretName: {{ .svc.blobs.s3.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.blobs.s3.secretAccessKeyKey }}
        path: secret-access-key
{{- end }}
{{- if and (eq .name "intake") .svc.customerHashKey.existingSecret }}
- name: customer-hash-key
  secret:
    secretName: {{ .svc.customerHashKey.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.customerHashKey.key }}
        path: customer-hash.key
{{- end }}
{{- if and (eq .name "intake") .svc.piiKeys.existingSecret }}
- name: pii-keys
  secret:
    secretName: {{ .svc.piiKeys.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.piiKeys.key }}
        path: pii.keys
{{- end }}
{{- if eq .name "provisioning" }}
- name: voucher-key
  secret:
    secretName: {{ .svc.voucherKey.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .svc.voucherKey.key }}
        path: voucher-key.pem
{{- if .svc.voucherKey.publicKeysKey }}
      - key: {{ .svc.voucherKey.publicKeysKey }}
        path: voucher-public-keys.pem
{{- end }}
{{- end }}
{{- end -}}

{{/* The archive's local blob store: in the Deployment only (the migration Job never reads
or writes documents). */}}
{{- define "orderline.blobVolumeMount" -}}
{{- if and (eq .name "archive") (eq .svc.blobs.store "local") }}
- name: archive-blobs
  mountPath: /var/lib/orderline/archive/blobs
{{- end }}
{{- end -}}

{{- define "orderline.blobVolume" -}}
{{- if and (eq .name "archive") (eq .svc.blobs.store "local") }}
- name: archive-blobs
{{- if .svc.blobs.volume.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .svc.blobs.volume.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .svc.blobs.volume.sizeLimit }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the Deployment and the migration Job. */}}
{{- define "orderline.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .svc.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .svc.podSecurityContext | nindent 2 }}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Every enabled service with its effective settings ("defaults" deep-merged with its own
entry), as JSON: {"<service>": {...}}. For release-wide templates (NOTES.txt, the
NetworkPolicy deny, the helm test pod); component.yaml does the same merge per service.
*/}}
{{- define "orderline.enabledServices" -}}
{{- $all := dict -}}
{{- range $name, $values := .Values.services -}}
{{- if $values.enabled -}}
{{- $svc := deepCopy $.Values.defaults -}}
{{- include "orderline.deepMerge" (dict "dst" $svc "src" $values) -}}
{{- $_ := set $all $name $svc -}}
{{- end -}}
{{- end -}}
{{- toJson $all -}}
{{- end -}}

{{/*
checkov exceptions, as annotations on the workload they concern: checkov reads
"checkov.io/skip<N>: <check>=<reason>" (one "=" only). Each is rendered only where the
check would otherwise fail; the chart README lists them. Takes (dict "svc" <settings>
"kind" "Deployment|Job|Pod").
*/}}
{{- define "orderline.checkovSkips" -}}
{{- $skips := list -}}
{{- if ne .svc.image.pullPolicy "Always" -}}
{{- $skips = append $skips "CKV_K8S_15=the image tag is pinned and latest is refused, so IfNotPresent pulls each version once; set image.pullPolicy to Always to pull on every start" -}}
{{- end -}}
{{- if not .svc.image.digest -}}
{{- $skips = append $skips "CKV_K8S_43=no image.digest is set (the chart cannot know the digest of your build); the tag is pinned and latest is refused; set image.digest to pin the exact image" -}}
{{- end -}}
{{- $skips = append $skips "CKV_K8S_35=the services read their settings only from environment variables (docs/configuration.md); these come from existing Secrets by secretKeyRef, never inline, and file-shaped secrets (tokens file, NATS creds) are mounted as files" -}}
{{- if eq .kind "Pod" -}}
{{- $skips = append $skips "CKV_K8S_8=the helm test pod runs once to completion; a liveness probe would have nothing to restart" -}}
{{- $skips = append $skips "CKV_K8S_9=the helm test pod serves no traffic; a readiness probe would have nothing to gate" -}}
{{- end -}}
{{- range $i, $skip := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}
