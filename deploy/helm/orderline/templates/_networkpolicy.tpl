{{/*
NetworkPolicies. With networkPolicy.enabled, every pod of such a service (and its
migration pods, and the helm test pod) is selected by the release-wide deny in
networkpolicy.yaml; the policies below then allow only:
  service pods:   in:  gRPC from apiClients and from the release's own callers
                       (provisioning -> intake, device-monitor; the helm test pod -> all),
                       metrics from metricsClients;
                  out: DNS, NATS, its database, the OTLP collector (when set), the
                       identity provider's JWKS (when set), extraEgress; provisioning
                       also intake, device-monitor, the device agents and the gateway,
                       on the ports of their addresses.
  migration pods: out: DNS and the database. Nothing in.
*/}}

{{/* Port of a gRPC target "host:port" or "scheme:///host:port". */}}
{{- define "orderline.addressPort" -}}
{{- regexFind "[0-9]+$" . -}}
{{- end -}}

{{/* Port of a URL: explicit, else 443 for https and 80 for http. */}}
{{- define "orderline.urlPort" -}}
{{- $hostPort := regexReplaceAll "^[a-z]+://([^/]+).*$" . "${1}" -}}
{{- if regexMatch ":[0-9]+$" $hostPort -}}
{{- regexFind "[0-9]+$" $hostPort -}}
{{- else if hasPrefix "https://" . -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* One egress rule: (dict "to" <peers, empty = anywhere> "ports" (list (list <port> <protocol>) ...)). */}}
{{- define "orderline.egressRule" -}}
- ports:
    {{- range .ports }}
    - port: {{ int (index . 0) }}
      protocol: {{ index . 1 }}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Egress every pod of a service needs: DNS and its database. */}}
{{- define "orderline.baseEgress" -}}
{{- $np := .svc.networkPolicy -}}
{{ include "orderline.egressRule" (dict "to" $np.dns.to "ports" (list (list 53 "UDP") (list 53 "TCP"))) }}
{{ include "orderline.egressRule" (dict "to" $np.database.to "ports" (list (list $np.database.port "TCP"))) }}
{{- end -}}

{{/* Egress to a peer service of this release (its pods, on its gRPC port). */}}
{{- define "orderline.peerEgress" -}}
{{- $values := get .root.Values.services .target -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "orderline.selectorLabels" (dict "root" .root "component" .target) | nindent 10 }}
  ports:
    - port: {{ int $values.port }}
      protocol: TCP
{{- end -}}

{{/* Policy of one service's pods. */}}
{{- define "orderline.networkPolicy" -}}
{{- $svc := .svc -}}
{{- $np := $svc.networkPolicy -}}
{{- $labels := dict "root" .root "component" .name -}}
{{- $callers := list "test" -}}
{{- if has .name (list "intake" "device-monitor") -}}
{{- $callers = append $callers "provisioning" -}}
{{- end -}}
{{- if eq .name "device-monitor" -}}
{{- /* A standby replica forwards each call to the leader (docs/device-health.md). */ -}}
{{- $callers = append $callers "device-monitor" -}}
{{- end -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "orderline.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "orderline.selectorLabels" $labels | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ include "orderline.name" .root }}
              app.kubernetes.io/instance: {{ .root.Release.Name }}
            matchExpressions:
              - key: app.kubernetes.io/component
                operator: In
                values:
                  {{- toYaml $callers | nindent 18 }}
        {{- with $np.apiClients }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - port: grpc
          protocol: TCP
    {{- if and $svc.metrics.enabled $np.metricsClients }}
    - from:
        {{- toYaml $np.metricsClients | nindent 8 }}
      ports:
        - port: metrics
          protocol: TCP
    {{- end }}
  egress:
    {{- include "orderline.baseEgress" . | nindent 4 }}
    {{- include "orderline.egressRule" (dict "to" $np.nats.to "ports" (list (list $np.nats.port "TCP"))) | nindent 4 }}
    {{- with $svc.otel.exporterOtlpEndpoint }}
    {{- include "orderline.egressRule" (dict "to" $np.collector.to "ports" (list (list (include "orderline.urlPort" .) "TCP"))) | nindent 4 }}
    {{- end }}
    {{- with $svc.auth.jwt.jwksUrl }}
    {{- include "orderline.egressRule" (dict "to" $np.identityProvider.to "ports" (list (list (include "orderline.urlPort" .) "TCP"))) | nindent 4 }}
    {{- end }}
    {{- if eq .name "provisioning" }}
    {{- $addresses := $svc.addresses }}
    {{- $peers := $svc.networkPeers }}
    {{- if $addresses.intake }}
    {{- include "orderline.egressRule" (dict "to" $peers.intake "ports" (list (list (include "orderline.addressPort" $addresses.intake) "TCP"))) | nindent 4 }}
    {{- else }}
    {{- include "orderline.peerEgress" (dict "root" .root "target" "intake") | nindent 4 }}
    {{- end }}
    {{- if $addresses.deviceMonitor }}
    {{- include "orderline.egressRule" (dict "to" $peers.deviceMonitor "ports" (list (list (include "orderline.addressPort" $addresses.deviceMonitor) "TCP"))) | nindent 4 }}
    {{- else }}
    {{- include "orderline.peerEgress" (dict "root" .root "target" "device-monitor") | nindent 4 }}
    {{- end }}
    {{- include "orderline.egressRule" (dict "to" $peers.deviceAgent "ports" (list (list (include "orderline.addressPort" $addresses.deviceAgent) "TCP"))) | nindent 4 }}
    {{- include "orderline.egressRule" (dict "to" $peers.gateway "ports" (list (list (include "orderline.addressPort" $addresses.gateway) "TCP"))) | nindent 4 }}
    {{- end }}
    {{- if eq .name "device-monitor" }}
    {{- include "orderline.peerEgress" (dict "root" .root "target" "device-monitor") | nindent 4 }}
    {{- end }}
    {{- if and (eq .name "device-monitor") ($svc.addresses | default dict).deviceAgent }}
    {{- include "orderline.egressRule" (dict "to" (($svc.networkPeers | default dict).deviceAgent | default list) "ports" (list (list (include "orderline.addressPort" $svc.addresses.deviceAgent) "TCP"))) | nindent 4 }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* Policy of one service's migration pods: DNS and the database out, nothing in. */}}
{{- define "orderline.migrationNetworkPolicy" -}}
{{- $labels := dict "root" .root "component" (printf "%s-migration" .name) -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ printf "%s-migrate" (include "orderline.componentName" .) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderline.labels" $labels | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "orderline.selectorLabels" $labels | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  egress:
    {{- include "orderline.baseEgress" . | nindent 4 }}
{{- end -}}
