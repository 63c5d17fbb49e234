{{/* Names. Everything is prefixed with the full name so releases do not collide. */}}
{{- define "pipeline-runner.names.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pipeline-runner.names.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- $name := include "pipeline-runner.names.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 30 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pipeline-runner.names.serviceAccount" -}}
{{- default (include "pipeline-runner.names.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "pipeline-runner.names.config" -}}
{{- printf "%s-config" (include "pipeline-runner.names.fullname" .) }}
{{- end }}

{{- define "pipeline-runner.names.migrate" -}}
{{- printf "%s-migrate" (include "pipeline-runner.names.fullname" .) }}
{{- end }}

{{/* CronJob name for (dict "root" . "pipeline" name): at most 52 characters (DNS-1123). */}}
{{- define "pipeline-runner.names.cronjob" -}}
{{- printf "%s-%s" (include "pipeline-runner.names.fullname" .root) (.pipeline | replace "_" "-") | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Labels. */}}
{{- define "pipeline-runner.labels.selector" -}}
app.kubernetes.io/name: {{ include "pipeline-runner.names.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pipeline-runner.labels.common" -}}
{{ include "pipeline-runner.labels.selector" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pipeline-runner
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one pipeline's objects, for (dict "root" . "pipeline" name). */}}
{{- define "pipeline-runner.labels.pipeline" -}}
{{ include "pipeline-runner.labels.common" .root }}
app.kubernetes.io/component: pipeline
pipeline-runner/pipeline: {{ .pipeline }}
{{- end }}

{{/* The image, with a per-pipeline override: (dict "root" . "overrides" $o). */}}
{{- define "pipeline-runner.image" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) ((.overrides | default dict).image | default dict) }}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{/*
Deliberate exceptions to checkov's Kubernetes checks (.ci/security.sh), as annotations on
every object that runs a pod. checkov reads "checkov.io/skip<N>: <check>=<reason>"; a
reason must not contain "=".
*/}}
{{- define "pipeline-runner.checkov.pod" -}}
checkov.io/skip1: "CKV_K8S_11=No CPU limit on purpose: throttling slows the engine and pyarrow threads; CPU is requested and memory limited"
checkov.io/skip2: "CKV_K8S_15=Release tags are immutable and images loaded into kind have no registry; image.pullPolicy can be set to Always"
checkov.io/skip3: "CKV_K8S_35=The runner reads RUNNER_CLICKHOUSE_PASSWORD from its environment (a SecretStr, never logged), filled from an existing Secret by secretKeyRef"
checkov.io/skip4: "CKV_K8S_38=The pod needs its token: runs and migrations hold Kubernetes Lease locks and the check pod reads CronJobs"
checkov.io/skip5: "CKV_K8S_43=The image is chosen at install time (image.repository and image.tag) by the operator"
{{- end }}

{{/* The same for the per-pipeline CronJobs, which also leave their namespace unset. */}}
{{- define "pipeline-runner.checkov.cronjob" -}}
{{ include "pipeline-runner.checkov.pod" . }}
checkov.io/skip6: "CKV_K8S_21=The namespace comes from helm --namespace; a Job copied from this CronJob by runner backfill job --from-manifest must follow -n"
{{- end }}

{{/* Hardened security contexts. */}}
{{- define "pipeline-runner.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "pipeline-runner.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Pod spec shared by pipeline runs, the migration hook and the test pod. Arguments:
root, args, trigger, defaultResources, overrides (per-pipeline values, may be empty),
serviceAccount and configMap (names; default: the release's), automount (bool).
*/}}
{{- define "pipeline-runner.podSpec" -}}
{{- $root := .root }}
{{- $o := .overrides | default dict }}
{{- $automount := true }}
{{- if hasKey . "automount" }}{{- $automount = .automount }}{{- end }}
restartPolicy: Never
serviceAccountName: {{ .serviceAccount | default (include "pipeline-runner.names.serviceAccount" $root) }}
automountServiceAccountToken: {{ $automount }}
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
securityContext:
  {{- include "pipeline-runner.podSecurityContext" $root | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: runner
    image: {{ include "pipeline-runner.image" (dict "root" $root "overrides" $o) | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: {{ toJson .args }}
    envFrom:
      - configMapRef:
          name: {{ .configMap | default (include "pipeline-runner.names.config" $root) }}
    env:
      - name: RUNNER_TRIGGER
        value: {{ .trigger | quote }}
      - name: RUNNER_IMAGE
        value: {{ include "pipeline-runner.image" (dict "root" $root "overrides" $o) | quote }}
      - name: RUNNER_IMAGE_VERSION
        value: {{ (($o.image | default dict).tag | default $root.Values.image.tag | default $root.Chart.AppVersion) | quote }}
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: RUNNER_LEASE_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      - name: RUNNER_CLICKHOUSE_USER
        valueFrom:
          secretKeyRef:
            name: {{ $root.Values.clickhouse.existingSecret }}
            key: {{ $root.Values.clickhouse.usernameKey }}
      - name: RUNNER_CLICKHOUSE_PASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ $root.Values.clickhouse.existingSecret }}
            key: {{ $root.Values.clickhouse.passwordKey }}
    resources:
      {{- toYaml ($o.resources | default .defaultResources | default $root.Values.cronjob.defaultResources) | nindent 6 }}
    securityContext:
      {{- include "pipeline-runner.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- end }}
