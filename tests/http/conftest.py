"""Fixtures of the HTTP suite: loopback ClickHouse servers and runner environments on them.

Two servers per session, each in its own process with its own chDB directory: the main
one speaks HTTPS with a CA made for this run and requires a password (what a cluster
has); a plain-HTTP one serves the protocol's own tests.  Every test gets fresh databases
on them, and its fault rules are cleared afterwards.  ``pytest -m http`` runs this suite
alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback_certs import TlsFiles, make_tls_files
from loopback_process import Loopback, start_loopback
from loopback_project import HttpProject, make_project

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


@pytest.fixture
def http_project(loopback: Loopback, tmp_path: Path) -> Iterator[Callable[..., HttpProject]]:
    """Make a project on the HTTPS server: ``make(pipelines=..., migrations=..., examples=...)``.

    ``pipelines``/``migrations`` map file names to source text; ``examples=True`` copies
    the shipped pipelines/ and migrations/.  Its databases are dropped afterwards.
    """
    made: list[HttpProject] = []

    def make(**files: Any) -> HttpProject:
        project = make_project(tmp_path / f"project{len(made)}", loopback, **files)
        made.append(project)
        return project

    yield make
    for project in made:
        project.drop()


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
