"""Deploy-test fixtures: the pinned Helm 3 and Helm 4 binaries, and offline schema validation.

Helm comes from ``k8s/tools/get_helm.py`` (cached after the first run); a failure to fetch
it is a test error, never a skip, so CI cannot pass without having rendered the chart.

Schemas come from ``kubernetes-validate`` (official OpenAPI schemas for 1.25 and newer,
shipped in the package, no network). Its Python API is used rather than its CLI because
the CLI only *warns* (exit 0) about a kind/apiVersion it has no schema for, so a removed
API such as ``batch/v1beta1`` CronJob would pass; here that is a failure.

Conftest modules are not importable from test modules (pytest drops ``conftest`` from
``sys.modules``), so the versions are offered as fixtures: ``newest_kube_version`` and
``kube_version`` (parametrized over ``OLDEST_TESTED_KUBE_VERSION`` and the newest).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GET_HELM = REPO / "k8s" / "tools" / "get_helm.py"

#: The oldest Kubernetes minor the chart promises to support (and is tested against).
OLDEST_TESTED_KUBE_VERSION = "1.30.0"
#: The newest Kubernetes version kubernetes-validate ships schemas for, e.g. "1.37.0".
NEWEST_KUBE_VERSION: str = kubernetes_validate.latest_version()

Validator = Callable[[str, str], None]


def fetch_helm(major: int) -> Path:
    """Run the fetch script and return the binary's path; any failure fails the test."""
    result = subprocess.run(
        [sys.executable, str(GET_HELM), "--print", str(major)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(
            f"could not fetch Helm {major} (exit {result.returncode}): {result.stderr.strip()}",
            pytrace=False,
        )
    path = Path(result.stdout.strip())
    if not path.is_file():
        pytest.fail(f"get_helm.py printed {path!r}, which is not a file", pytrace=False)
    return path


@pytest.fixture(scope="session")
def helm3() -> Path:
    """Path of the pinned Helm 3 binary (3.18.0)."""
    return fetch_helm(3)


@pytest.fixture(scope="session")
def helm4() -> Path:
    """Path of the pinned Helm 4 binary (4.1.4)."""
    return fetch_helm(4)


@pytest.fixture(scope="session")
def newest_kube_version() -> str:
    """The newest Kubernetes version with shipped schemas (``NEWEST_KUBE_VERSION``)."""
    return NEWEST_KUBE_VERSION


@pytest.fixture(params=[OLDEST_TESTED_KUBE_VERSION, NEWEST_KUBE_VERSION])
def kube_version(request: pytest.FixtureRequest) -> str:
    """Each Kubernetes version a manifest must be valid for: the oldest supported, newest."""
    version: str = request.param
    return version


def _label(document: dict[str, Any], index: int) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"document {index + 1} ({document.get('kind', '<no kind>')}/{name or '<no name>'})"


def _check_version(kube_version: str) -> None:
    """kubernetes-validate fails obscurely (IndexError) outside the versions it ships."""
    shipped = sorted(Version(v) for v in kubernetes_validate.utils.all_versions())
    wanted = Version(kube_version.removeprefix("v"))
    oldest, newest = shipped[0], shipped[-1]
    if (wanted.major, wanted.minor) < (oldest.major, oldest.minor):
        raise ValueError(f"kubernetes-validate has no schemas older than {oldest}: {kube_version}")
    if (wanted.major, wanted.minor) > (newest.major, newest.minor):
        raise ValueError(f"kubernetes-validate has no schemas newer than {newest}: {kube_version}")


def validate_manifests(manifests_yaml: str, kube_version: str) -> None:
    """Validate every YAML document strictly; AssertionError lists each invalid document.

    Empty documents (a template that rendered nothing) are skipped; a stream with no
    document at all is an error, since it usually means the render went wrong.
    """
    _check_version(kube_version)
    documents = [doc for doc in yaml.safe_load_all(manifests_yaml) if doc is not None]
    if not documents:
        raise AssertionError("no Kubernetes documents to validate")
    failures: list[str] = []
    for index, document in enumerate(documents):
        if not isinstance(document, dict) or "apiVersion" not in document or "kind" not in document:
            failures.append(f"document {index + 1}: not a Kubernetes object: {document!r:.200}")
            continue
        label = _label(document, index)
        try:
            kubernetes_validate.validate(document, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path) or "<root>"
            failures.append(f"{label} against Kubernetes {exc.version}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{label}: {exc.message}")
    if failures:
        raise AssertionError("invalid Kubernetes manifests:\n" + "\n".join(failures))


@pytest.fixture(scope="session")
def validate_k8s() -> Validator:
    """``validate(manifests_yaml, kube_version)``: strict schema validation, offline."""
    return validate_manifests


def copy_chart(destination: Path) -> Path:
    """The chart without its generated per-pipeline parts, for another set of pipelines.

    The chart's own values configure the example `exports` pipeline, which another project
    does not have (`runner render` refuses that), so the copy's values configure none.
    """
    import shutil

    chart = REPO / "charts" / "pipeline-runner"
    shutil.copytree(chart, destination, ignore=shutil.ignore_patterns("pipelines"))
    values_path = destination / "values.yaml"
    values = yaml.safe_load(values_path.read_text())
    values["pipelines"] = {}
    values_path.write_text(yaml.safe_dump(values, sort_keys=False))
    return destination


@pytest.fixture(scope="session")
def chart_copy() -> Callable[[Path], Path]:
    """``chart_copy(destination)``: see :func:`copy_chart`."""
    return copy_chart
