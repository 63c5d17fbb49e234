{{/*
Names. Everything is prefixed with the full name so releases do not collide. A name that
does not fit its limit is cut and gets "-<8 hex of sha256(key)>", so cut names stay unique
(runner/deploy/names.py computes the same and `runner render` refuses collisions).
*/}}
{{- define "pipeline-runner.names.bounded" -}}
{{- if and (le (len .base) (int .limit)) (not (hasSuffix "-" .base)) }}
{{- .base }}
{{- else }}
{{- printf "%s-%s" (.base | trunc (int (sub .limit 9)) | trimSuffix "-") (.key | sha256sum | trunc 8) }}
{{- end }}
{{- end }}

{{- define "pipeline-runner.names.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource prefix: at most 30 characters. */}}
{{- define "pipeline-runner.names.fullname" -}}
{{- $base := .Values.fullnameOverride }}
{{- if not $base }}
{{- $name := include "pipeline-runner.names.name" . }}
{{- $base = ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) }}
{{- end }}
{{- include "pipeline-runner.names.bounded" (dict "base" $base "limit" 30 "key" $base) }}
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

{{/*
CronJob name for (dict "root" . "pipeline" name): at most 52 characters, so the Jobs the
CronJob controller names "<cronjob>-<minutes since epoch>" stay within 63.
*/}}
{{- define "pipeline-runner.names.cronjob" -}}
{{- $base := printf "%s-%s" (include "pipeline-runner.names.fullname" .root) (.pipeline | replace "_" "-") }}
{{- include "pipeline-runner.names.bounded" (dict "base" $base "limit" 52 "key" .pipeline) }}
{{- end }}

{{/* Labels. */}}
{{- define "pipeline-runner.labels.selector" -}}
app.kubernetes.io/name: {{ include "pipeline-runner.names.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pipeline-runner.labels.common" -}}
{{ include "pipeline-runner.labels.selector" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
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

{{/*
Metadata of a pod template: (dict "root" . "overrides" $o "labels" <labels YAML>). The
operator's podLabels and podAnnotations (global, then the pipeline's, which win) come on
top; the schema keeps them off the chart's own label keys, and the chart's labels (with
commonLabels) win over them.
*/}}
{{- define "pipeline-runner.podMetadata" -}}
{{- $o := .overrides | default dict }}
{{- $values := .root.Values }}
{{- $labels := merge (.labels | fromYaml) (deepCopy ($o.podLabels | default dict)) (deepCopy ($values.podLabels | default dict)) -}}
labels:
  {{- toYaml $labels | nindent 2 }}
{{- with merge (deepCopy ($o.podAnnotations | default dict)) (deepCopy ($values.podAnnotations | default dict)) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The image, with a per-pipeline override: (dict "root" . "overrides" $o). A digest pins it
("repository@sha256:..."); the tag then only labels it. A pipeline that overrides the
repository or tag without a digest of its own does not inherit the global digest.
*/}}
{{- define "pipeline-runner.image" -}}
{{- $image := deepCopy .root.Values.image }}
{{- $own := (.overrides | default dict).image | default dict }}
{{- if and (or $own.repository $own.tag) (not $own.digest) }}
{{- $_ := unset $image "digest" }}
{{- end }}
{{- $image = mergeOverwrite $image (deepCopy $own) }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The image tag a pod reports as its version (RUNNER_IMAGE_VERSION). */}}
{{- define "pipeline-runner.imageVersion" -}}
{{- ((.overrides | default dict).image | default dict).tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/*
Deliberate exceptions to checkov's Kubernetes checks (.ci/security.sh), as annotations on
every object that runs a pod. checkov reads "checkov.io/skip<N>: <check>=<reason>"; a
reason must not contain "=".
*/}}
{{- define "pipeline-runner.checkov.pod" -}}
checkov.io/skip1: "CKV_K8S_11=No CPU limit on purpose: throttling slows the engine and pyarrow threads; CPU is requested and memory limited"
checkov.io/skip2: "CKV_K8S_15=Release tags are immutable and images loaded into kind have no registry; image.pullPolicy can be set to Always"
checkov.io/skip3: "CKV_K8S_35=The runner reads RUNNER_CLICKHOUSE_PASSWORD and RUNNER_ALERT_WEBHOOK_URL from its environment (SecretStr settings, never logged), filled from existing Secrets by secretKeyRef"
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
serviceAccount and configMap (names; default: the release's), automount (bool), env (a
list of extra EnvVars for this kind of pod).

The operator's extension points apply in this order, the pipeline's after the global
ones: extraEnv and extraEnvFrom (after the chart's own, so they win), extraVolumes and
extraVolumeMounts (after /tmp and the CA bundle), nodeSelector (merged, the pipeline's
keys win), tolerations (both lists), affinity and priorityClassName (the pipeline's
replace the global ones), tmpSizeLimit (the pipeline's, else the global one).
*/}}
{{- define "pipeline-runner.podSpec" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $o := .overrides | default dict }}
{{- $automount := true }}
{{- if hasKey . "automount" }}{{- $automount = .automount }}{{- end }}
{{- $ca := $values.clickhouse.caBundle | default dict }}
{{- if and $ca.secretName $ca.configMapName }}
{{- fail "clickhouse.caBundle: set secretName or configMapName, not both" }}
{{- end -}}
restartPolicy: Never
serviceAccountName: {{ .serviceAccount | default (include "pipeline-runner.names.serviceAccount" $root) }}
automountServiceAccountToken: {{ $automount }}
terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
{{- with $o.priorityClassName | default $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- include "pipeline-runner.podSecurityContext" $root | nindent 2 }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with merge (deepCopy ($o.nodeSelector | default dict)) (deepCopy ($values.nodeSelector | default dict)) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with concat ($values.tolerations | default list) ($o.tolerations | default list) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $o.affinity | default $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: runner
    image: {{ include "pipeline-runner.image" (dict "root" $root "overrides" $o) | quote }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    args: {{ toJson .args }}
    envFrom:
      - configMapRef:
          name: {{ .configMap | default (include "pipeline-runner.names.config" $root) }}
      {{- with concat ($values.extraEnvFrom | default list) ($o.extraEnvFrom | default list) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    env:
      - name: RUNNER_TRIGGER
        value: {{ .trigger | quote }}
      - name: RUNNER_IMAGE
        value: {{ include "pipeline-runner.image" (dict "root" $root "overrides" $o) | quote }}
      - name: RUNNER_IMAGE_VERSION
        value: {{ include "pipeline-runner.imageVersion" (dict "root" $root "overrides" $o) | quote }}
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
            name: {{ $values.clickhouse.existingSecret }}
            key: {{ $values.clickhouse.usernameKey }}
      - name: RUNNER_CLICKHOUSE_PASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ $values.clickhouse.existingSecret }}
            key: {{ $values.clickhouse.passwordKey }}
      {{- with $values.alerts.webhook.existingSecret }}
      - name: RUNNER_ALERT_WEBHOOK_URL
        valueFrom:
          secretKeyRef:
            name: {{ . }}
            key: {{ $values.alerts.webhook.key }}
      {{- end }}
      {{- with concat (.env | default list) ($values.extraEnv | default list) ($o.extraEnv | default list) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml ($o.resources | default .defaultResources | default $values.cronjob.defaultResources) | nindent 6 }}
    securityContext:
      {{- include "pipeline-runner.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if or $ca.secretName $ca.configMapName }}
      - name: ca-bundle
        mountPath: {{ include "pipeline-runner.caBundleDir" . }}
        readOnly: true
      {{- end }}
      {{- with concat ($values.extraVolumeMounts | default list) ($o.extraVolumeMounts | default list) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $o.tmpSizeLimit | default $values.tmpSizeLimit }}
  {{- if $ca.secretName }}
  - name: ca-bundle
    secret:
      secretName: {{ $ca.secretName }}
      items:
        - key: {{ $ca.key }}
          path: ca.crt
  {{- else if $ca.configMapName }}
  - name: ca-bundle
    configMap:
      name: {{ $ca.configMapName }}
      items:
        - key: {{ $ca.key }}
          path: ca.crt
  {{- end }}
  {{- with concat ($values.extraVolumes | default list) ($o.extraVolumes | default list) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Where the CA bundle (clickhouse.caBundle) is mounted; RUNNER_TLS_CA_CERT names the file. */}}
{{- define "pipeline-runner.caBundleDir" -}}
/etc/pipeline-runner/ca
{{- end }}

{{/*
A pipeline's CronJob schedule: (dict "pipeline" name "overrides" $o "schedule" own "source"
file). Run windows are cut from the pipeline's own schedule, so a values override may only
repeat it; anything else would load windows the CronJob never fires for, or fire for
windows that are not the pipeline's, and fails the render instead.
*/}}
{{- define "pipeline-runner.schedule" -}}
{{- with index .overrides "schedule" }}
{{- $wanted := regexReplaceAll "\\s+" (toString .) " " | trim }}
{{- if ne $wanted $.schedule }}
{{- fail (printf "pipelines.%s.schedule %q differs from the schedule %q in %s: run windows follow the pipeline's own schedule, so change it there and run `runner render` (suspend: true pauses a pipeline)" $.pipeline $wanted $.schedule $.source) }}
{{- end }}
{{- end }}
{{- .schedule }}
{{- end }}

{{/*
How a run's Job treats a failed pod (README, "Exit codes"). A pod lost to a disruption
(node drain, preemption, API eviction) does not count against backoffLimit. Exits a retry
cannot fix fail the Job at once: 1 (the run failed: bad data, bad SQL, a bug), 2 (usage),
3 (configuration) and 5 (another run holds the lock). The rest, 4 (not ready), 75
(transient), 130 (interrupted) and signals such as an OOM kill, are retried up to
cronjob.backoffLimit times.
*/}}
{{- define "pipeline-runner.podFailurePolicy" -}}
rules:
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"
  - action: FailJob
    onExitCodes:
      containerName: runner
      operator: In
      values: [1, 2, 3, 5]
{{- end }}

{{/*
What a scheduled run needs to know about its own Job, given the CronJob's name: the Job's
name (the pod label the Job controller sets) ends in the scheduled time as minutes since
the epoch, "<cronjob>-<minutes>". The batch.kubernetes.io/cronjob-scheduled-timestamp
annotation is on the Job only, never on its pods, so the downward API cannot pass it.
*/}}
{{- define "pipeline-runner.cronjobEnv" -}}
- name: RUNNER_CRONJOB_NAME
  value: {{ . | quote }}
- name: RUNNER_JOB_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['batch.kubernetes.io/job-name']
{{- end }}
