#!/usr/bin/env bash
# Build the Dockerfile and run the image read-only, as production does, on a machine with
# no container registry: the image test (tests/image/test_image.py) and people use this.
#
#   bash k8s/tools/image_build.sh [--summary FILE] [--keep-tmp]
#
# What it does, in order:
#   1. Docker engine: uses one that answers; otherwise starts `dockerd` in the background
#      (installing Debian's docker.io first if needed) and stops it again on exit.
#   2. Base image: no registry can be pulled from, so a Debian bookworm root file system
#      with python3, venv, pip and ca-certificates is made with debootstrap and
#      `docker import`ed as $BASE_IMAGE. Cached: skipped when that image exists with the
#      same recipe label.
#   3. Builds from a temporary copy of the build context whose certs/ also holds this
#      machine's locally added CA certificates (a TLS-intercepting proxy re-signs PyPI
#      for pip in the build stage). The repository's certs/ is never written to.
#      Two images: with the embedded extra (chDB) and without it.
#   4. Runs both with --read-only --tmpfs /tmp --user 10001:10001: `runner --version`,
#      `runner list`; with the extra, `runner migrate` and `runner run events` for one
#      week on an embedded warehouse in /tmp, then counts the loaded rows (28000).
#      Without it, an embedded URL must fail with the clear configuration error (exit 3),
#      and `runner migrate --wait-ready 600` against a ClickHouse that never answers must
#      run under tini as PID 1 and exit 130 within 30 s of `docker kill --signal TERM`.
#   5. Prints timings and image sizes; --summary writes them as JSON.
#
# Environment: BASE_IMAGE (default pipeline-runner-base:bookworm), IMAGE (default
# pipeline-runner:image-test; "-embedded" is appended for the other tag), DEBIAN_MIRROR,
# CA_CERT_DIR (default /usr/local/share/ca-certificates), DOCKER (client, default docker),
# ENGINE_TIMEOUT (seconds to wait for a started dockerd, default 90).
# Exit codes: 0 all checks passed, 1 a check failed, 2 usage, 3 no Docker engine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-pipeline-runner-base:bookworm}"
IMAGE="${IMAGE:-pipeline-runner:image-test}"
IMAGE_EMBEDDED="${IMAGE}-embedded"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_CERT_DIR="${CA_CERT_DIR:-/usr/local/share/ca-certificates}"
DOCKER="${DOCKER:-docker}"
ENGINE_TIMEOUT="${ENGINE_TIMEOUT:-90}"
# The legacy builder works with every client/engine pair here (Debian's engine has no
# buildx); the Dockerfile needs nothing BuildKit-only.
export DOCKER_BUILDKIT=0
WINDOW=(--start 2026-01-01 --end 2026-01-08)
EXPECTED_ROWS=28000
# Change this string whenever the base recipe below changes: the cached base is rebuilt.
BASE_RECIPE="bookworm-minbase-python3-venv-pip-wheel-1"
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"

SUMMARY=""
KEEP_TMP=0
while (($#)); do
  case "$1" in
    --summary)
      [[ $# -ge 2 ]] || { echo "image_build: --summary needs a file" >&2; exit 2; }
      SUMMARY="$2"
      shift 2
      ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) sed -n '2,31p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "image_build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/image-build.XXXXXX")"
DOCKERD_PID=""
CONTAINERS=()
DOCKERD_LOG="$WORK/dockerd.log"

log() { printf '[image_build %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
  local status=$?
  if ((${#CONTAINERS[@]})); then
    "$DOCKER" rm --force "${CONTAINERS[@]}" >/dev/null 2>&1 || true
  fi
  if [[ -n "$DOCKERD_PID" ]]; then
    log "stopping the dockerd this script started (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$DOCKERD_PID" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      log "dockerd did not stop within 30 s: killing it"
      kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    fi
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  if ((KEEP_TMP)); then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# need_root WHAT [EXIT]: exit 3 (no engine) by default, for what the engine needs.
need_root() {
  [[ $EUID -eq 0 ]] || {
    log "$1 needs root (apt-get, dockerd, debootstrap)"
    exit "${2:-3}"
  }
}

apt_install() {
  need_root "installing $*"
  log "installing $* with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

engine_up() { "$DOCKER" info >/dev/null 2>&1; }

# ------------------------------------------------------------------ 1. Docker engine
ensure_engine() {
  local missing=()
  command -v "$DOCKER" >/dev/null 2>&1 || missing+=(docker.io)
  if engine_up; then
    log "using the running Docker engine"
    return
  fi
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  if ((${#missing[@]})); then
    apt_install docker.io
  fi
  need_root "starting dockerd"
  local pidfile=/var/run/docker.pid
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "a dockerd (pid $(cat "$pidfile")) is running but not answering yet: waiting for it"
  else
    log "no Docker engine answers: starting dockerd in the background (log: $DOCKERD_LOG)"
    dockerd >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
  fi
  local deadline=$((SECONDS + ENGINE_TIMEOUT))
  until engine_up; do
    if [[ -n "$DOCKERD_PID" ]] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      DOCKERD_PID=""
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      log "NO DOCKER ENGINE: dockerd exited at start (its last log lines are above)"
      exit 3
    fi
    if ((SECONDS > deadline)); then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      log "NO DOCKER ENGINE: dockerd did not answer within ${ENGINE_TIMEOUT} s"
      exit 3
    fi
    sleep 0.5
  done
  log "Docker engine $("$DOCKER" version --format '{{.Server.Version}}') is up"
}

# ------------------------------------------------------------------ 2. base image
build_base() {
  local have
  have="$("$DOCKER" image inspect --format '{{ index .Config.Labels "pipeline-runner.base-recipe" }}' \
    "$BASE_IMAGE" 2>/dev/null || true)"
  if [[ "$have" == "$BASE_RECIPE" ]]; then
    log "base image $BASE_IMAGE exists (recipe $BASE_RECIPE): reusing it"
    BASE_BUILT=false
    return
  fi
  need_root "debootstrap" 1
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local root="$WORK/rootfs"
  log "debootstrap bookworm ($BASE_PACKAGES) from $DEBIAN_MIRROR"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" \
    "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    fail "debootstrap failed (its last log lines are above)"
  fi
  # Make it behave like the python:3.11-slim the Dockerfile defaults to: `python` and a
  # pip of its own in /usr/local (removable by the runtime stage), no PEP 668 marker.
  # Debian disables ensurepip, so pip installs itself from the wheel python3-venv ships:
  # nothing is downloaded. Then drop what a slim image leaves out.
  # shellcheck disable=SC2016 # expanded by the chroot's shell
  chroot "$root" /bin/sh -eu -c '
    rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
    for wheel in /usr/share/python-wheels/pip-*.whl; do
      python3 "$wheel/pip" install --quiet --no-index --no-cache-dir "$wheel"
    done
    python -m pip --version
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
      /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/log/* /root/.cache
  ' >"$WORK/base-setup.log" 2>&1 || {
    cat "$WORK/base-setup.log" >&2
    fail "setting up the base root file system failed"
  }
  log "importing the root file system as $BASE_IMAGE"
  tar --numeric-owner -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL pipeline-runner.base-recipe=$BASE_RECIPE" \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  BASE_BUILT=true
}

# ------------------------------------------------------------------ 3. build
make_context() {
  local ctx="$WORK/context" path
  mkdir -p "$ctx"
  # Exactly what the Dockerfile and .dockerignore use; a file missing here fails the build.
  for path in Dockerfile .dockerignore pyproject.toml README.md requirements runner pipelines migrations \
    certs; do
    cp -a "$REPO/$path" "$ctx/"
  done
  local count=0 cert
  if [[ -d "$CA_CERT_DIR" ]]; then
    # update-ca-certificates reads *.crt in that folder and its subfolders.
    while IFS= read -r -d '' cert; do
      cp "$cert" "$ctx/certs/local-$count-$(basename "$cert")"
      count=$((count + 1))
    done < <(find "$CA_CERT_DIR" -name '*.crt' -type f -print0)
  fi
  log "build context in $ctx, with $count CA certificate(s) from $CA_CERT_DIR"
  CONTEXT="$ctx"
}

# The build stage is tagged too ($tag-build): the legacy builder keeps a stage's result
# only as an image, and an untagged one would be pruned below, losing the pip cache.
build_image() {
  local tag="$1" embedded="$2" started target
  started="$(now)"
  log "docker build $tag (WITH_EMBEDDED=$embedded, BASE_IMAGE=$BASE_IMAGE)"
  for target in build runtime; do
    if ! "$DOCKER" build --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "WITH_EMBEDDED=$embedded" \
      --target "$target" -t "$tag$([[ $target == build ]] && echo -build)" "$CONTEXT" \
      >>"$WORK/build-$embedded.log" 2>&1; then
      tail -n 40 "$WORK/build-$embedded.log" >&2
      fail "docker build of $tag (stage $target) failed (its last log lines are above)"
    fi
  done
  BUILD_SECONDS="$(since "$started")"
  log "built $tag in ${BUILD_SECONDS} s"
}

# Earlier builds of these tags are left untagged; every image made from this base carries
# its label, so pruning by it frees their space and touches nothing else on the machine.
prune_old_builds() {
  local reclaimed
  reclaimed="$("$DOCKER" image prune --force --filter label=pipeline-runner.base-recipe |
    sed -n 's/^Total reclaimed space: //p')"
  log "removed earlier, now untagged builds of these images (${reclaimed:-0B} reclaimed)"
}

# ------------------------------------------------------------------ 4. run
# As the chart runs it: read-only root file system, writable /tmp only, uid/gid 10001.
run_ro() {
  "$DOCKER" run --rm --read-only --tmpfs /tmp:rw,exec,mode=1777 --user 10001:10001 \
    --network none "$@"
}

expect_ok() {
  local what="$1" output status=0
  shift
  output="$("$@" 2>&1)" || status=$?
  if ((status != 0)); then
    printf '%s\n' "$output" | tail -n 30 >&2
    fail "$what exited $status (output above)"
  fi
  printf '%s' "$output"
}

check_common() {
  local image="$1" out name
  out="$(expect_ok "runner --version ($image)" run_ro "$image" --version)"
  [[ "$out" == "runner $VERSION" ]] || fail "runner --version printed '$out', wanted 'runner $VERSION'"
  log "$image: $out"
  out="$(expect_ok "runner list ($image)" run_ro "$image" list)"
  for name in "${PIPELINES[@]}"; do
    grep -qw -- "$name" <<<"$out" || fail "runner list ($image) does not show pipeline $name: $out"
  done
  log "$image: runner list shows ${#PIPELINES[@]} pipelines (${PIPELINES[*]})"
  # The runtime stage promises no pip and none of the build stage's CA certificates.
  # shellcheck disable=SC2016 # expanded by the container's shell
  out="$(expect_ok "runtime contents ($image)" run_ro --entrypoint /bin/sh "$image" -c '
    if python -m pip --version >/dev/null 2>&1; then echo "pip is installed"; fi
    if [ -n "$(find /usr/local/share/ca-certificates -name "*.crt" 2>/dev/null)" ]; then
      echo "build-time CA certificates are in the image"
    fi
    if [ "$(id -u):$(id -g)" != "10001:10001" ]; then echo "not uid/gid 10001"; fi
    if touch /app/probe 2>/dev/null; then echo "/app is writable"; fi
  ')"
  [[ -z "$out" ]] || fail "$image: $out"
}

check_embedded() {
  local image="$1" out rows
  # One container, so the warehouse in its /tmp lives through all three steps.
  # shellcheck disable=SC2016 # expanded by the container's shell
  out="$(expect_ok "migrate + run events ($image)" run_ro -e RUNNER_WAREHOUSE_URL=chdb:///tmp/wh \
    --entrypoint /bin/sh "$image" -c '
    set -e
    runner migrate
    runner run events "$@"
    python -c "
from runner.settings import load_settings
from runner.warehouse.client import Warehouse
warehouse = Warehouse.connect(load_settings())
print(\"ROWS\", warehouse.query_rows(\"SELECT count() FROM events\")[0][0])
warehouse.close()
"
  ' sh "${WINDOW[@]}")"
  grep -q "\"event\": \"migrations done\".*\"applied\": $MIGRATIONS," <<<"$out" ||
    fail "runner migrate did not report $MIGRATIONS applied migrations: $out"
  grep -q '"event": "run finished".*"status": "succeeded"' <<<"$out" ||
    fail "runner run events did not finish successfully: $out"
  rows="$(sed -n 's/^ROWS \([0-9]*\)$/\1/p' <<<"$out")"
  [[ "$rows" == "$EXPECTED_ROWS" ]] || fail "events holds '${rows}' rows, wanted $EXPECTED_ROWS: $out"
  ROWS="$rows"
  log "$image: migrate applied $MIGRATIONS, run events succeeded, events holds $rows rows"
}

check_without_extra() {
  local image="$1" out status=0
  out="$(run_ro -e RUNNER_WAREHOUSE_URL=chdb:///tmp/wh "$image" migrate 2>&1)" || status=$?
  ((status == 3)) || fail "$image: migrate on an embedded URL exited $status, wanted 3: $out"
  grep -q "needs chDB" <<<"$out" || fail "$image: no clear 'needs chDB' error: $out"
  ! grep -q "Traceback" <<<"$out" || fail "$image: a traceback instead of one clear line: $out"
  log "$image: an embedded URL fails with exit 3 and a one-line error, as it should"
}

# SIGTERM while `runner migrate --wait-ready` waits for a ClickHouse that never answers
# (--network none): tini is PID 1, forwards the signal, and runner exits 130 at once.
check_sigterm() {
  local image="$1" cid out status started pid1
  cid="$("$DOCKER" run --detach --read-only --tmpfs /tmp:rw,exec,mode=1777 --user 10001:10001 \
    --network none -e RUNNER_WAREHOUSE_URL=http://127.0.0.1:9/analytics -e RUNNER_LOG_FORMAT=json \
    "$image" migrate --wait-ready 600)"
  CONTAINERS+=("$cid")
  for _ in $(seq 1 120); do
    if "$DOCKER" logs "$cid" 2>&1 | grep -q '"warehouse not ready; retrying"'; then
      break
    fi
    [[ "$("$DOCKER" inspect --format '{{.State.Running}}' "$cid")" == true ]] ||
      fail "$image: migrate --wait-ready exited before waiting: $("$DOCKER" logs "$cid" 2>&1)"
    sleep 0.5
  done
  "$DOCKER" logs "$cid" 2>&1 | grep -q '"warehouse not ready; retrying"' ||
    fail "$image: migrate --wait-ready never logged a retry within 60 s"
  pid1="$("$DOCKER" exec "$cid" cat /proc/1/comm)"
  [[ "$pid1" == tini ]] || fail "$image: PID 1 is '$pid1', wanted tini"
  started="$(now)"
  "$DOCKER" kill --signal TERM "$cid" >/dev/null
  status="$(timeout 30 "$DOCKER" wait "$cid")" ||
    fail "$image: still running 30 s after SIGTERM (Kubernetes would SIGKILL it now)"
  SIGTERM_SECONDS="$(since "$started")"
  out="$("$DOCKER" logs "$cid" 2>&1)"
  ((status == 130)) || fail "$image: exited $status after SIGTERM, wanted 130: $out"
  grep -q '^error: interrupted by SIGTERM$' <<<"$out" ||
    fail "$image: no one-line 'interrupted by SIGTERM' error: $out"
  ! grep -q "Traceback" <<<"$out" || fail "$image: a traceback after SIGTERM: $out"
  SIGTERM_STATUS="$status"
  "$DOCKER" rm --force "$cid" >/dev/null
  log "$image: PID 1 is tini; SIGTERM during migrate --wait-ready: exit $status in ${SIGTERM_SECONDS} s"
}

size_of() { "$DOCKER" image inspect --format '{{.Size}}' "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }

# ------------------------------------------------------------------ main
TOTAL_START="$(now)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n 1)"
[[ -n "$VERSION" ]] || fail "no version in pyproject.toml"
mapfile -t PIPELINES < <(find "$REPO/pipelines" -maxdepth 1 -name '*_pipeline.py' -printf '%f\n' |
  sed 's/_pipeline\.py$//' | sort)
((${#PIPELINES[@]})) || fail "no pipelines/*_pipeline.py"
MIGRATIONS="$(find "$REPO/migrations" -maxdepth 1 -name '[0-9]*.sql' | wc -l)"

ensure_engine

STARTED="$(now)"
build_base
BASE_SECONDS="$(since "$STARTED")"

make_context
build_image "$IMAGE_EMBEDDED" true
BUILD_EMBEDDED_SECONDS="$BUILD_SECONDS"
build_image "$IMAGE" false
BUILD_SLIM_SECONDS="$BUILD_SECONDS"
prune_old_builds

STARTED="$(now)"
check_common "$IMAGE_EMBEDDED"
check_embedded "$IMAGE_EMBEDDED"
check_common "$IMAGE"
check_without_extra "$IMAGE"
check_sigterm "$IMAGE"
RUN_SECONDS="$(since "$STARTED")"

SIZE_BASE="$(size_of "$BASE_IMAGE")"
SIZE_SLIM="$(size_of "$IMAGE")"
SIZE_EMBEDDED="$(size_of "$IMAGE_EMBEDDED")"
TOTAL_SECONDS="$(since "$TOTAL_START")"

printf '\n%-34s %s\n' "image" "size"
printf '%-34s %s\n' "$BASE_IMAGE (base)" "$(mib "$SIZE_BASE")" \
  "$IMAGE (no extra)" "$(mib "$SIZE_SLIM")" \
  "$IMAGE_EMBEDDED" "$(mib "$SIZE_EMBEDDED")"
printf '\nbase %s s (built: %s), build with extra %s s, without %s s, checks %s s, total %s s\n' \
  "$BASE_SECONDS" "$BASE_BUILT" "$BUILD_EMBEDDED_SECONDS" "$BUILD_SLIM_SECONDS" "$RUN_SECONDS" \
  "$TOTAL_SECONDS"

if [[ -n "$SUMMARY" ]]; then
  cat >"$SUMMARY" <<EOF
{
  "version": "$VERSION",
  "engine_started_by_script": $([[ -n "$DOCKERD_PID" ]] && echo true || echo false),
  "base_image": "$BASE_IMAGE",
  "base_built": $BASE_BUILT,
  "images": {"base": "$BASE_IMAGE", "slim": "$IMAGE", "embedded": "$IMAGE_EMBEDDED"},
  "sizes_bytes": {"base": $SIZE_BASE, "slim": $SIZE_SLIM, "embedded": $SIZE_EMBEDDED},
  "seconds": {"base": $BASE_SECONDS, "build_embedded": $BUILD_EMBEDDED_SECONDS,
              "build_slim": $BUILD_SLIM_SECONDS, "checks": $RUN_SECONDS, "total": $TOTAL_SECONDS},
  "pipelines": $(printf '"%s",' "${PIPELINES[@]}" | sed 's/^/[/; s/,$/]/'),
  "events_rows": $ROWS,
  "sigterm": {"exit_code": $SIGTERM_STATUS, "seconds": $SIGTERM_SECONDS}
}
EOF
fi
log "all checks passed"
