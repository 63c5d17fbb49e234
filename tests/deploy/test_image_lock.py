"""The image's hashed lock files (requirements/*.txt) match pyproject.toml and regenerate.

The Dockerfile installs from them with ``pip --require-hashes``; pip then refuses anything
unpinned or unhashed, and any dependency missing from the file.  What pip cannot know is
whether the file still says what pyproject.toml asks for: that is checked here, offline.
``k8s/tools/image_lock.py --check`` regenerates the files (uv, PyPI, a fixed upload date)
and must reproduce them byte for byte.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"
SCRIPT = REPO / "k8s" / "tools" / "image_lock.py"
# The image: CPython 3.11 on Linux (amd64 or arm64).
IMAGE_ENVIRONMENTS = [
    {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for machine in ("x86_64", "aarch64")
]
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?: ; (?P<marker>.+?))? \\$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}(?: \\)?$")


@dataclass
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: list[str]

    def applies(self, environment: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(environment)


def parse_lock(path: Path) -> list[Pin]:
    pins: list[Pin] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line or line.lstrip().startswith("#"):
            continue
        if match := ENTRY.match(line):
            marker = Marker(match["marker"]) if match["marker"] else None
            name = canonicalize_name(match["name"])
            pins.append(Pin(name, Version(match["version"]), marker, []))
        elif HASH.match(line):
            assert pins, f"{path.name}:{number}: a hash before any requirement"
            pins[-1].hashes.append(line.split("sha256:")[1][:64])
        else:
            pytest.fail(f"{path.name}:{number}: neither a pinned requirement nor a hash: {line}")
    return pins


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def wanted(lock: str) -> list[Requirement]:
    meta = project()
    if lock == "build.txt":
        return [Requirement(r) for r in meta["build-system"]["requires"]]
    requirements = [Requirement(r) for r in meta["project"]["dependencies"]]
    if lock == "image-embedded.txt":
        requirements += [
            Requirement(r) for r in meta["project"]["optional-dependencies"]["embedded"]
        ]
    return requirements


@pytest.mark.parametrize("lock", ["image.txt", "image-embedded.txt", "build.txt"])
def test_every_requirement_is_pinned_with_hashes_in_its_range(lock):
    pins = parse_lock(LOCKS / lock)
    assert pins
    for pin in pins:
        assert pin.hashes, f"{lock}: {pin.name} has no hash"
    for environment in IMAGE_ENVIRONMENTS:
        chosen = {pin.name: pin for pin in pins if pin.applies(environment)}
        assert len(chosen) == len({p.name for p in pins if p.applies(environment)})  # no twins
        for requirement in wanted(lock):
            name = canonicalize_name(requirement.name)
            assert name in chosen, f"{lock} does not pin {requirement} (run {SCRIPT.name})"
            version = chosen[name].version
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock} pins {name}=={version}, outside pyproject's {requirement}: "
                f"run python k8s/tools/image_lock.py"
            )


def test_both_image_locks_pin_the_same_shared_distributions():
    plain = {(p.name, str(p.marker)): p for p in parse_lock(LOCKS / "image.txt")}
    embedded = {(p.name, str(p.marker)): p for p in parse_lock(LOCKS / "image-embedded.txt")}
    extra = {key[0] for key in embedded.keys() - plain.keys()}
    assert "chdb" in extra
    assert plain.keys() - embedded.keys() <= {k for k in plain if k[0] == "numpy"}
    for key, pin in plain.items():
        if key in embedded:
            assert (pin.version, pin.hashes) == (embedded[key].version, embedded[key].hashes), key


def load_script():
    spec = importlib.util.spec_from_file_location("image_lock", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_check_reports_a_stale_lock(tmp_path, monkeypatch):
    script = load_script()
    committed = tmp_path / "committed"
    shutil.copytree(LOCKS, committed)
    path = committed / "image.txt"
    path.write_text(path.read_text().replace("structlog==", "structlog==0", 1))
    monkeypatch.setattr(script, "LOCK_DIR", committed)
    diff = script.differences(LOCKS)
    assert "-structlog==0" in diff
    assert "+structlog==" in diff
    assert script.differences(committed) == ""


@pytest.mark.slow
def test_the_locks_regenerate_byte_for_byte():
    """Asks PyPI (the index CI installs from anyway); a few seconds with uv."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert result.stdout.strip() == "lock files up to date"
