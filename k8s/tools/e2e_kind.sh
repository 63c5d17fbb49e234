#!/usr/bin/env bash
# End-to-end on a throw-away kind cluster: the chart, the image and the dev ClickHouse
# working together, as k8s/README.md walks through by hand. Opt-in (`make e2e`), not CI:
# it needs Docker, kind and kubectl on the PATH and internet access (kind's node image,
# clickhouse/clickhouse-server, the Dockerfile's base image and PyPI).
#
#   bash k8s/tools/e2e_kind.sh            # from the repository root; takes ~10 minutes
#   E2E_KEEP=1 bash k8s/tools/e2e_kind.sh # keep the cluster afterwards, for a look around
#
# Steps, each checked; the first failure prints pods, events and logs, then tears down:
#   1. kind cluster from k8s/kind-config.yaml (its own kubeconfig: yours is not touched)
#   2. docker build of a uniquely tagged image, `kind load docker-image`
#   3. namespace, Secret with a random password, k8s/clickhouse.yaml, rollout
#   4. helm upgrade --install (CronJobs suspended, so no scheduled run adds rows); the
#      pre-install hook must have applied every migration; `helm test` runs `runner check`
#   5. a Job from cronjob/...-events for six days of the sample data (--start/--end
#      appended to its args); exactly those days' rows, counted with clickhouse-client
#   6. helm upgrade with the same values: same manifest, CronJobs unchanged, the hook
#      applied nothing, rows unchanged
#   7. a two-window backfill: `runner backfill job --from-manifest` | kubectl create -f -;
#      both indexes succeed, exactly those two hours' rows more, two backfill runs recorded
#   8. kind delete cluster (unless E2E_KEEP=1)
#
# Environment: E2E_CLUSTER (default pipelines-e2e), E2E_NAMESPACE (pipelines), E2E_RELEASE
# (pipelines), E2E_KEEP (0), BASE_IMAGE (passed to docker build when set), HELM (default:
# helm on the PATH, else the pinned one from k8s/tools/get_helm.py), PYTHON (default
# .venv/bin/python; `make setup` first).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${E2E_CLUSTER:-pipelines-e2e}"
NAMESPACE="${E2E_NAMESPACE:-pipelines}"
RELEASE="${E2E_RELEASE:-pipelines}"
KEEP="${E2E_KEEP:-0}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
IMAGE_REPOSITORY=pipeline-runner
IMAGE_TAG="e2e-$(date -u +%Y%m%d%H%M%S)"
CHART="$REPO/charts/pipeline-runner"
# The sample data covers 2026-01-01..07 (UTC); events loads only its window's rows, so the
# first run takes six days and the backfill two hourly windows of the seventh.
FIRST_RUN_WINDOW=(--start 2026-01-01 --end 2026-01-07)
BACKFILL_RANGE=(--start 2026-01-07T00:00:00 --end 2026-01-07T02:00:00)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/e2e-kind.XXXXXX")"
export KUBECONFIG="$WORK/kubeconfig"
CLUSTER_CREATED=0

log() { printf '\n[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

diagnostics() {
  log "diagnostics: pods, jobs, events and recent logs in $NAMESPACE"
  kubectl -n "$NAMESPACE" get pods,jobs,cronjobs -o wide >&2 || true
  kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp >&2 || true
  local pod
  for pod in $(kubectl -n "$NAMESPACE" get pods -o name 2>/dev/null); do
    printf -- '--- %s\n' "$pod" >&2
    kubectl -n "$NAMESPACE" logs "$pod" --all-containers --tail=30 >&2 || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((status != 0 && CLUSTER_CREATED)); then
    diagnostics
  fi
  if ((CLUSTER_CREATED)); then
    if [[ "$KEEP" == 1 ]]; then
      log "kept cluster $CLUSTER: export KUBECONFIG=$KUBECONFIG; delete it with" \
        "kind delete cluster --name $CLUSTER"
      exit "$status"
    fi
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" || true
  fi
  rm -rf "$WORK"
  if ((status == 0)); then log "end-to-end passed"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Poll a Job until it is Complete (return 0) or Failed (fail), at most $2 seconds.
wait_job() {
  local job="$1" timeout="$2" conditions deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    conditions="$(kubectl -n "$NAMESPACE" get "job/$job" \
      -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
    case " $conditions " in
      *" Complete "*) return 0 ;;
      *" Failed "*) fail "job $job failed (conditions: $conditions)" ;;
    esac
    sleep 5
  done
  fail "job $job did not finish within $timeout s"
}

# One query, run by clickhouse-client inside the ClickHouse pod with the pod's own
# credentials (the Secret's), so no password passes through this script's arguments.
clickhouse() {
  # shellcheck disable=SC2016 # expanded by the pod's shell
  kubectl -n "$NAMESPACE" exec clickhouse-0 -c clickhouse -- sh -c \
    'clickhouse-client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --query "$1"' \
    sh "$1"
}

expect_equal() {
  local what="$1" got="$2" want="$3"
  [[ "$got" == "$want" ]] || fail "$what: got '$got', wanted '$want'"
  log "ok: $what = $want"
}

# Objects are found by their labels, not by guessing the chart's naming rules.
RELEASE_LABEL="app.kubernetes.io/instance=$RELEASE"
name_of() {
  kubectl -n "$NAMESPACE" get "$1" -l "$RELEASE_LABEL,$2" -o jsonpath='{.items[*].metadata.name}'
}

migrate_log_applied() {
  local job
  job="$(name_of jobs app.kubernetes.io/component=migrations)"
  [[ -n "$job" && "$job" != *" "* ]] || fail "expected one migration Job, found '$job'"
  kubectl -n "$NAMESPACE" logs "job/$job" |
    sed -n 's/.*"event": "migrations done".*"applied": \([0-9]*\),.*/\1/p' | tail -n 1
}

helm_install() {
  "$HELM" upgrade --install "$RELEASE" "$CHART" -n "$NAMESPACE" \
    -f "$WORK/values.yaml" --wait --timeout 10m
}

# ------------------------------------------------------------------ 0. tools
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on the PATH (this test is opt-in: see k8s/README.md)"
done
docker info >/dev/null 2>&1 || fail "no Docker engine answers"
[[ -x "$PYTHON" ]] || fail "no $PYTHON: run \`make setup\` first (or set PYTHON)"
RUNNER="$(dirname "$PYTHON")/runner"
[[ -x "$RUNNER" ]] || fail "no runner next to $PYTHON: run \`make setup\` first"
HELM="${HELM:-$(command -v helm || "$PYTHON" "$REPO/k8s/tools/get_helm.py" --print 3)}"
"$HELM" version --short >/dev/null || fail "helm at $HELM does not run"
MIGRATIONS="$(find "$REPO/migrations" -maxdepth 1 -name '[0-9]*.sql' | wc -l)"
mapfile -t PIPELINES < <(find "$REPO/pipelines" -maxdepth 1 -name '*_pipeline.py' -printf '%f\n' |
  sed 's/_pipeline\.py$//' | sort)

# Rows of the sample event files with ts in [$1, $2), by the pipeline's own rule (UTC).
sample_rows() {
  "$PYTHON" - "$REPO/pipelines/data/events" "$1" "$2" <<'PY'
import csv, gzip, sys
from datetime import datetime
from pathlib import Path

folder, start, end = Path(sys.argv[1]), *map(datetime.fromisoformat, sys.argv[2:])
count = 0
for path in sorted(folder.glob("events_*.csv.gz")):
    with gzip.open(path, "rt", newline="") as handle:
        count += sum(start <= datetime.fromisoformat(r["ts"]) < end for r in csv.DictReader(handle))
print(count)
PY
}
FIRST_RUN_ROWS="$(sample_rows "${FIRST_RUN_WINDOW[1]}" "${FIRST_RUN_WINDOW[3]}")"
BACKFILL_ROWS="$(sample_rows "${BACKFILL_RANGE[1]}" "${BACKFILL_RANGE[3]}")"

# ------------------------------------------------------------------ 1. cluster
log "1. kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --config "$REPO/k8s/kind-config.yaml" \
  --kubeconfig "$KUBECONFIG" --wait 180s
CLUSTER_CREATED=1

# ------------------------------------------------------------------ 2. image
IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG"
log "2. docker build $IMAGE, kind load"
build_args=(--build-arg "VERSION=$IMAGE_TAG")
[[ -z "${BASE_IMAGE:-}" ]] || build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
docker build "${build_args[@]}" -t "$IMAGE" "$REPO"
kind load docker-image "$IMAGE" --name "$CLUSTER"

# ------------------------------------------------------------------ 3. ClickHouse
log "3. namespace, credentials, ClickHouse"
kubectl create namespace "$NAMESPACE"
kubectl -n "$NAMESPACE" create secret generic clickhouse-credentials \
  --from-literal=username=runner \
  --from-literal=password="$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
kubectl -n "$NAMESPACE" apply -f "$REPO/k8s/clickhouse.yaml"
kubectl -n "$NAMESPACE" rollout status statefulset/clickhouse --timeout=10m

# ------------------------------------------------------------------ 4. install
log "4. helm upgrade --install $RELEASE (CronJobs suspended)"
{
  printf 'image:\n  repository: %s\n  tag: "%s"\n' "$IMAGE_REPOSITORY" "$IMAGE_TAG"
  printf 'clickhouse:\n  url: http://clickhouse:8123/analytics\n'
  printf '  existingSecret: clickhouse-credentials\n'
  printf 'pipelines:\n'
  for name in "${PIPELINES[@]}"; do printf '  %s:\n    suspend: true\n' "$name"; done
} >"$WORK/values.yaml"
helm_install
expect_equal "migrations applied by the pre-install hook" "$(migrate_log_applied)" "$MIGRATIONS"
expect_equal "CronJobs" "$(kubectl -n "$NAMESPACE" get cronjobs -o name | wc -l)" "${#PIPELINES[@]}"
"$HELM" test "$RELEASE" -n "$NAMESPACE" --logs --timeout 5m

# ------------------------------------------------------------------ 5. first run
events_cronjob="$(name_of cronjobs pipeline-runner/pipeline=events)"
log "5. a Job from cronjob/$events_cronjob for ${FIRST_RUN_WINDOW[*]}"
# as the README's "Run a pipeline by hand": the CronJob's Job with the window appended
kubectl -n "$NAMESPACE" create job --from="cronjob/$events_cronjob" e2e-first-run \
  --dry-run=client -o json |
  "$PYTHON" -c 'import json, sys
job = json.load(sys.stdin)
container = job["spec"]["template"]["spec"]["containers"][0]
container["args"] = [*container.get("args", []), *sys.argv[1:]]
json.dump(job, sys.stdout)' "${FIRST_RUN_WINDOW[@]}" |
  kubectl -n "$NAMESPACE" create -f -
wait_job e2e-first-run 600
last_line="$(kubectl -n "$NAMESPACE" logs job/e2e-first-run | tail -n 1)"
grep -q '"event": "run finished".*"status": "succeeded"' <<<"$last_line" ||
  fail "the first run's last log line is not a succeeded 'run finished': $last_line"
expect_equal "rows in analytics.events after one run" \
  "$(clickhouse 'SELECT count() FROM analytics.events')" "$FIRST_RUN_ROWS"

# ------------------------------------------------------------------ 6. upgrade, no change
log "6. helm upgrade with the same values: nothing may change"
"$HELM" get manifest "$RELEASE" -n "$NAMESPACE" >"$WORK/manifest-before.yaml"
generations() {
  kubectl -n "$NAMESPACE" get cronjobs \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.generation} {end}'
}
before="$(generations)"
helm_install
"$HELM" get manifest "$RELEASE" -n "$NAMESPACE" >"$WORK/manifest-after.yaml"
diff -u "$WORK/manifest-before.yaml" "$WORK/manifest-after.yaml" ||
  fail "helm upgrade with the same values changed the manifest"
log "ok: manifest unchanged"
expect_equal "CronJob generations" "$(generations)" "$before"
expect_equal "migrations applied by the pre-upgrade hook" "$(migrate_log_applied)" 0
expect_equal "rows in analytics.events after the upgrade" \
  "$(clickhouse 'SELECT count() FROM analytics.events')" "$FIRST_RUN_ROWS"

# ------------------------------------------------------------------ 7. backfill
log "7. two-window backfill Job (runner backfill job --from-manifest | kubectl create -f -)"
RUNNER_PROJECT_DIR="$REPO" "$RUNNER" backfill job events "${BACKFILL_RANGE[@]}" \
  --from-manifest "$WORK/manifest-after.yaml" --namespace "$NAMESPACE" --parallelism 2 \
  >"$WORK/backfill.yaml"
backfill_job="$(kubectl create -f "$WORK/backfill.yaml" -o name)"
backfill_job="${backfill_job#job.batch/}"
expect_equal "completions of $backfill_job" \
  "$(kubectl -n "$NAMESPACE" get "job/$backfill_job" -o jsonpath='{.spec.completions}')" 2
wait_job "$backfill_job" 900
expect_equal "succeeded indexes of $backfill_job" \
  "$(kubectl -n "$NAMESPACE" get "job/$backfill_job" -o jsonpath='{.status.completedIndexes}')" "0,1"
expect_equal "rows in analytics.events after the backfill" \
  "$(clickhouse 'SELECT count() FROM analytics.events')" "$((FIRST_RUN_ROWS + BACKFILL_ROWS))"
expect_equal "succeeded backfill runs recorded" \
  "$(clickhouse "SELECT count() FROM pipeline_runner.runs FINAL
    WHERE pipeline = 'events' AND trigger = 'backfill' AND status = 'succeeded'")" 2
