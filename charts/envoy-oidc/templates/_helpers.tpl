{{/* Names and labels. */}}
{{- define "envoy-oidc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "envoy-oidc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "envoy-oidc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "envoy-oidc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "envoy-oidc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "envoy-oidc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "envoy-oidc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "envoy-oidc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "envoy-oidc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where secrets are mounted in the pod; the filter reads them from files there. */}}
{{- define "envoy-oidc.secretRoot" -}}/etc/envoy-oidc{{- end -}}

{{/* The Secret the chart creates for values given inline (client secret, Redis password). */}}
{{- define "envoy-oidc.secretName" -}}{{ include "envoy-oidc.fullname" . }}-oidc{{- end -}}
{{- define "envoy-oidc.sessionSecretName" -}}
{{- default (printf "%s-session" (include "envoy-oidc.fullname" .)) .Values.session.existingSecret -}}
{{- end -}}
{{- define "envoy-oidc.clientSecretName" -}}
{{- default (include "envoy-oidc.secretName" .) .Values.oidc.clientSecret.existingSecret -}}
{{- end -}}
{{- define "envoy-oidc.redisSecretName" -}}
{{- default (include "envoy-oidc.secretName" .) .Values.redis.password.existingSecret -}}
{{- end -}}
{{- define "envoy-oidc.redisHasPassword" -}}
{{- if or .Values.redis.password.value .Values.redis.password.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "envoy-oidc.sentinelSecretName" -}}
{{- default (include "envoy-oidc.secretName" .) .Values.redis.sentinel.password.existingSecret -}}
{{- end -}}
{{- define "envoy-oidc.sentinelHasPassword" -}}
{{- if and (eq .Values.session.store "redis") (eq .Values.redis.mode "sentinel") (or .Values.redis.sentinel.password.value .Values.redis.sentinel.password.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Redis ports the pods talk to: the data port, and the sentinels' or nodes' ports. */}}
{{- define "envoy-oidc.redisPorts" -}}
{{- $v := .Values.redis -}}
{{- $ports := list -}}
{{- if eq $v.mode "single" -}}
{{- $ports = append $ports (ternary (last (splitList ":" (urlParse (include "envoy-oidc.redisUrl" .)).host)) $v.port (ne $v.url "") | int) -}}
{{- else -}}
{{- $ports = append $ports (int $v.port) -}}
{{- range (ternary $v.sentinel.nodes $v.cluster.nodes (eq $v.mode "sentinel")) -}}
{{- $ports = append $ports (last (splitList ":" .) | int) -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $ports) -}}
{{- end -}}

{{/* The filter's `session.store.redis` for the chosen mode. */}}
{{- define "envoy-oidc.redisStore" -}}
{{- $v := .Values -}}
{{- $root := include "envoy-oidc.secretRoot" . -}}
{{- $redis := dict "prefix" $v.redis.prefix -}}
{{- if eq $v.redis.mode "single" -}}
{{- $_ := set $redis "url" (dict "inline" (include "envoy-oidc.redisUrl" .)) -}}
{{- else -}}
{{- $_ := set $redis "tls" $v.redis.tls.enabled -}}
{{- if $v.redis.username -}}
{{- $_ := set $redis "username" (dict "inline" $v.redis.username) -}}
{{- end -}}
{{- if eq $v.redis.mode "sentinel" -}}
{{- $sentinel := dict "master" $v.redis.sentinel.master "nodes" $v.redis.sentinel.nodes "db" (int $v.redis.db) -}}
{{- if include "envoy-oidc.sentinelHasPassword" . -}}
{{- $_ := set $sentinel "password" (dict "file" (printf "%s/sentinel/password" $root)) -}}
{{- end -}}
{{- $_ := set $redis "sentinel" $sentinel -}}
{{- else -}}
{{- $_ := set $redis "cluster" (dict "nodes" $v.redis.cluster.nodes) -}}
{{- end -}}
{{- end -}}
{{- if include "envoy-oidc.redisHasPassword" . -}}
{{- $_ := set $redis "password" (dict "file" (printf "%s/redis/password" $root)) -}}
{{- end -}}
{{- if or $v.redis.tls.caSecret.name $v.redis.tls.caConfigMap.name -}}
{{- $_ := set $redis "ca_file" (printf "%s/redis-ca/ca.crt" $root) -}}
{{- end -}}
{{- if not (kindIs "invalid" $v.redis.replicasToAck) -}}
{{- $_ := set $redis "replicas_to_ack" (int $v.redis.replicasToAck) -}}
{{- end -}}
{{- toJson $redis -}}
{{- end -}}

{{/* The Redis URL without credentials (the password comes from a file). */}}
{{- define "envoy-oidc.redisUrl" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else -}}
{{- printf "%s://%s%s:%v/%v" (ternary "rediss" "redis" .Values.redis.tls.enabled) (ternary (printf "%s@" .Values.redis.username) "" (ne .Values.redis.username "")) .Values.redis.host (int .Values.redis.port) (int .Values.redis.db) -}}
{{- end -}}
{{- end -}}

{{/* The external base URL of a host: `url`, else https://<host>. */}}
{{- define "envoy-oidc.hostUrl" -}}
{{- trimSuffix "/" (default (printf "https://%s" .host) .url) -}}
{{- end -}}

{{/* Whether a host is authenticated by the filter (default yes). */}}
{{- define "envoy-oidc.authenticates" -}}
{{- if or (not (hasKey . "authenticate")) .authenticate -}}true{{- end -}}
{{- end -}}

{{/* Address and port an upstream is reached at. */}}
{{- define "envoy-oidc.upstreamAddress" -}}
{{- $u := .upstream -}}
{{- if $u.address -}}
{{- $u.address -}}
{{- else -}}
{{- printf "%s.%s.svc.%s" $u.service (default .namespace $u.namespace) .clusterDomain -}}
{{- end -}}
{{- end -}}

{{/* The filter config of one host, as a dict (rendered as a google.protobuf.Struct). */}}
{{- define "envoy-oidc.filterConfig" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $root := include "envoy-oidc.secretRoot" $ -}}
{{- $url := include "envoy-oidc.hostUrl" .host -}}
{{- $keys := list -}}
{{- range $v.session.keys -}}
{{- $keys = append $keys (dict "file" (printf "%s/session/%s" $root .)) -}}
{{- end -}}
{{- $store := dict "memory" dict -}}
{{- if eq $v.session.store "redis" -}}
{{- $store = dict "redis" (include "envoy-oidc.redisStore" $ | fromJson) -}}
{{- end -}}
{{- $cfg := dict
  "issuer" $v.oidc.issuer
  "client_id" $v.oidc.clientId
  "client_secret" (dict "file" (printf "%s/client/%s" $root $v.oidc.clientSecret.key))
  "redirect_uri" (printf "%s%s" $url $v.oidc.callbackPath)
  "scopes" $v.oidc.scopes
  "session" (dict
    "keys" $keys
    "idle_timeout_secs" $v.session.idleTimeoutSeconds
    "absolute_timeout_secs" $v.session.absoluteTimeoutSeconds
    "store" $store)
-}}
{{- if $v.oidc.extraAuthorizeParams -}}
{{- $_ := set $cfg "extra_authorize_params" $v.oidc.extraAuthorizeParams -}}
{{- end -}}
{{- if $v.oidc.postLogoutRedirectPath -}}
{{- $_ := set $cfg "logout" (dict "post_logout_redirect_uri" (printf "%s%s" $url $v.oidc.postLogoutRedirectPath)) -}}
{{- end -}}
{{- $cfg = mustMergeOverwrite $cfg (deepCopy $v.filter.extraConfig) (deepCopy (default dict .host.filterConfig)) -}}
{{- toJson $cfg -}}
{{- end -}}

{{/* Pod annotations that roll the pods when the config or a chart-made secret changes. */}}
{{- define "envoy-oidc.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{- define "envoy-oidc.pdbEnabled" -}}
{{- if kindIs "bool" .Values.podDisruptionBudget.enabled -}}
{{- if .Values.podDisruptionBudget.enabled -}}true{{- end -}}
{{- else if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.minReplicas) 1 -}}true{{- end -}}
{{- else if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* A FilterConfig switching a host's filter instance on with per-route settings. */}}
{{- define "envoy-oidc.routeFilter" -}}
{"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute, dynamic_module_config: {name: envoy_oidc, do_not_close: true}, filter_name: oidc, filter_config: {"@type": type.googleapis.com/google.protobuf.Struct, value: {{ toJson .settings }}}}}
{{- end -}}

{{/* An upstream cluster. */}}
{{- define "envoy-oidc.cluster" -}}
{{- $u := .upstream -}}
{{- $addr := include "envoy-oidc.upstreamAddress" (dict "upstream" $u "namespace" .root.Release.Namespace "clusterDomain" .root.Values.clusterDomain) -}}
- name: {{ .name }}
  type: STRICT_DNS
  dns_lookup_family: V4_PREFERRED
  connect_timeout: 2s
  per_connection_buffer_limit_bytes: 32768
  load_assignment:
    cluster_name: {{ .name }}
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{ $addr | quote }}, port_value: {{ int $u.port }}}}}}]}]
  {{- if $u.tls }}
  {{- $sni := default $addr $u.sni }}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: {{ $sni | quote }}
      {{- if not $u.insecureSkipVerify }}
      common_tls_context:
        validation_context:
          trusted_ca: {filename: /etc/ssl/certs/ca-certificates.crt}
          match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: {{ $sni | quote }}}}]
      {{- end }}
  {{- end }}
{{- end -}}
