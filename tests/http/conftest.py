"""Fixtures of the HTTP suite: loopback ClickHouse servers and runner environments on them.

Two servers per session, each in its own process with its own chDB directory: the main
one speaks HTTPS with a CA made for this run and requires a password (what a cluster
has); a plain-HTTP one serves the protocol's own tests.  Every test gets fresh databases
on them, and its fault rules are cleared afterwards.  ``pytest -m http`` runs this suite
alone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loopback_certs import TlsFiles, make_tls_files
from loopback_process import Loopback, start_loopback

ROOT = Path(__file__).resolve().parents[2]
#: The password of the HTTPS server: a canary the secrets tests look for everywhere.
PASSWORD = f"canary-{secrets.token_hex(8)}"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a server certificate made for this run."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def loopback(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Loopback]:
    """The HTTPS server, user ``etl`` with the canary password."""
    server = start_loopback(
        tmp_path_factory.mktemp("loopback-https"), password=PASSWORD, tls=tls_files
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    """A plain HTTP server (user ``etl``, password ``pw``) for the protocol tests."""
    server = start_loopback(tmp_path_factory.mktemp("loopback-http"), password="pw")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fault rules never outlive the test that set them."""
    yield
    for name in ("loopback", "plain_loopback"):
        if name in request.fixturenames:
            request.getfixturevalue(name).set_faults()


@dataclass
class HttpProject:
    """A project directory, its databases on the HTTPS server, and how to run `runner` on it."""

    root: Path
    database: str
    server: Loopback

    @property
    def state_database(self) -> str:
        """The framework's own database for this project."""
        return f"{self.database}_state"

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of a `runner` process on this project, over HTTPS."""
        env = {
            **os.environ,
            "RUNNER_PROJECT_DIR": str(self.root),
            "RUNNER_WAREHOUSE_URL": self.server.url(self.database),
            "RUNNER_CLICKHOUSE_PASSWORD": self.server.password,
            "RUNNER_STATE_DATABASE": self.state_database,
            "RUNNER_LOG_FORMAT": "json",
            "RUNNER_LOCK_BACKEND": "file",
            "RUNNER_LOCK_DIR": str(self.root / "locks"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if self.server.ca_cert:
            env["RUNNER_TLS_CA_CERT"] = str(self.server.ca_cert)
        env.update(overrides)
        return env

    def runner(
        self, *args: str, check: bool = True, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run `runner ARGS` in a subprocess; with ``check`` it must exit 0."""
        result = subprocess.run(
            [sys.executable, "-m", "runner", *args],
            env=self.env(**env),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, (args, result.returncode, result.stderr[-3000:])
        return result

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query on the project's database, straight through clickhouse-connect."""
        client = self.server.client(database=self.database)
        try:
            return [tuple(r) for r in client.query(sql, parameters=parameters).result_rows]
        finally:
            client.close()

    def scalar(self, sql: str) -> Any:
        """The single value of a query."""
        return self.rows(sql)[0][0]


@pytest.fixture
def http_project(loopback: Loopback, tmp_path: Path) -> Iterator[Callable[..., HttpProject]]:
    """Make a project on the HTTPS server: ``make(pipelines=..., migrations=..., examples=...)``.

    ``pipelines``/``migrations`` map file names to source text; ``examples=True`` copies
    the shipped pipelines/ and migrations/.  Its databases are dropped afterwards.
    """
    made: list[HttpProject] = []

    def make(
        *,
        pipelines: dict[str, str] | None = None,
        migrations: dict[str, str] | None = None,
        examples: bool = False,
    ) -> HttpProject:
        root = tmp_path / f"project{len(made)}"
        root.mkdir()
        if examples:
            shutil.copytree(
                ROOT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
            )
            shutil.copytree(ROOT / "migrations", root / "migrations")
        for folder, files in (("pipelines", pipelines), ("migrations", migrations)):
            (root / folder).mkdir(exist_ok=True)
            for name, text in (files or {}).items():
                (root / folder / name).write_text(text)
        project = HttpProject(root, f"http_{secrets.token_hex(5)}", loopback)
        made.append(project)
        return project

    yield make
    client = loopback.client()
    try:
        for project in made:
            client.command(f"DROP DATABASE IF EXISTS `{project.database}`")
            client.command(f"DROP DATABASE IF EXISTS `{project.state_database}`")
    finally:
        client.close()


@pytest.fixture
def http_settings(loopback: Loopback, tmp_path: Path) -> Iterator[Any]:
    """Settings of this process on a fresh database of the HTTPS server (in-process tests)."""
    from runner.settings import Settings

    database = f"http_{secrets.token_hex(5)}"
    settings = Settings(
        project_dir=tmp_path,
        warehouse_url=loopback.url(database),
        clickhouse_password=PASSWORD,  # type: ignore[arg-type]
        tls_ca_cert=loopback.ca_cert,
        state_database=f"{database}_state",
        lock_backend="file",  # type: ignore[arg-type]
        lock_dir=tmp_path / "locks",
        log_format="json",  # type: ignore[arg-type]
        retry_max_wait_seconds=0.5,
    )
    yield settings
    client = loopback.client()
    try:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.command(f"DROP DATABASE IF EXISTS `{database}_state`")
    finally:
        client.close()


@pytest.fixture
def http_warehouse(http_settings: Any) -> Iterator[Any]:
    """A Warehouse over HTTPS on that database, created with the framework's tables."""
    from runner.migrate.framework import ensure_framework_tables
    from runner.warehouse.client import Warehouse

    warehouse = Warehouse.connect(http_settings, ensure_database=True)
    ensure_framework_tables(warehouse, http_settings.state_database)
    yield warehouse
    warehouse.close()
