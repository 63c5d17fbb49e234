"""The security scans of .ci/security.sh (checkov on the rendered chart, bandit on runner/)
pass, and would notice a problem: the scanners are run on bad input too.

The first run builds the scanners' own virtualenv (about half a minute); a failure to build
it, e.g. without a package index, fails these tests rather than skipping them.
"""

import re
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # checkov and bandit, in a virtualenv built on first use

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "security.sh"
TOOLS = ROOT / ".venv-tools" / "checkov" / "bin"
CHART = ROOT / "charts" / "pipeline-runner"


@pytest.fixture(scope="module")
def scan():
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f".ci/security.sh failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


def test_the_chart_and_the_code_pass_the_scans(scan):
    assert re.search(r"Failed checks: 0, Skipped checks: \d+", scan.stdout), scan.stdout
    passed = int(re.search(r"Passed checks: (\d+)", scan.stdout).group(1))
    assert passed > 500  # the whole chart was scanned, not an empty directory
    assert "checkov and bandit found nothing" in scan.stderr


def test_every_deliberate_skip_carries_its_reason(scan, helm3):
    rendered = subprocess.run(
        [str(helm3), "template", "pipelines", str(CHART), "--namespace", "pipelines"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    skips = 0
    for document in yaml.safe_load_all(rendered):
        if not document:
            continue
        for key, value in (document["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                skips += 1
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), value
                assert len(reason) > 30, value
                assert "=" not in reason, value
    assert skips >= 10


def test_checkov_fails_on_a_hardening_mistake(scan, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: bad, namespace: pipelines}
            spec:
              containers:
                - name: runner
                  image: pipeline-runner:1
                  securityContext: {privileged: true}
            """
        )
    )
    result = subprocess.run(
        [
            str(TOOLS / "checkov"),
            *("--framework", "kubernetes", "--skip-download"),
            *("--directory", str(tmp_path), "--compact", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "CKV_K8S_16" in result.stdout  # privileged container


def test_bandit_fails_on_a_medium_finding(scan, tmp_path):
    (tmp_path / "bad.py").write_text(
        "import subprocess\n\n\ndef run(command):\n"
        "    return subprocess.call(command, shell=True)\n"
    )
    result = subprocess.run(
        [str(TOOLS / "bandit"), "--recursive", str(tmp_path), "-ll", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "B602" in result.stdout
