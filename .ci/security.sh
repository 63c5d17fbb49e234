#!/usr/bin/env bash
# Security scans, run by CI and by tests/deploy/test_security_scans.py:
#   1. checkov on the Helm chart's rendered manifests (default install and GitOps mode):
#      zero failed checks; deliberate exceptions are annotated on the objects themselves
#      (checkov.io/skipN, with a reason, in charts/pipeline-runner/templates/_helpers.tpl).
#   2. bandit on runner/: no medium or high finding. B608 (SQL built with f-strings) is
#      marked per statement with `# nosec B608` where every interpolation is a checked,
#      back-quoted identifier (runner.warehouse.sql) and every value a bound parameter.
#
# checkov pins many packages, so both tools live in their own virtualenv,
# .venv-tools/checkov, built on first use and reused while the pins below are unchanged.
# A failure to build it (no package index) fails the scan: it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TOOLS=".venv-tools/checkov"
PINS=("checkov==3.3.30" "bandit==1.9.4")
STAMP="$TOOLS/.installed-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"

if [ ! -f "$STAMP" ]; then
  echo "security: building $TOOLS (${PINS[*]})" >&2
  rm -rf "$TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --upgrade pip
  "$TOOLS/bin/python" -m pip install --quiet "${PINS[@]}"
  touch "$STAMP"
fi

# Helm 3 as the chart tests use it (pinned, checksummed, cached).
if [ -x .venv/bin/python ]; then HELM_PYTHON=.venv/bin/python; else HELM_PYTHON="$PYTHON"; fi
HELM="$("$HELM_PYTHON" k8s/tools/get_helm.py --print 3)"

RENDERED="$(mktemp -d)"
trap 'rm -rf "$RENDERED"' EXIT
"$HELM" template pipelines charts/pipeline-runner --namespace pipelines \
  > "$RENDERED/default.yaml"
"$HELM" template pipelines charts/pipeline-runner --namespace pipelines \
  --set migrations.hook=false > "$RENDERED/gitops.yaml"

echo "security: checkov on the rendered chart" >&2
"$TOOLS/bin/checkov" --framework kubernetes --skip-download --directory "$RENDERED" \
  --compact --quiet

echo "security: bandit on runner/ (medium and high)" >&2
"$TOOLS/bin/bandit" --recursive runner -ll --quiet

echo "security: checkov and bandit found nothing" >&2
