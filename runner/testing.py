"""A testing kit for pipeline authors: pytest fixtures over a real embedded ClickHouse.

Enable with ``pytest_plugins = ["runner.testing"]`` in a ``conftest.py``.  chDB allows one
database path per process, so the whole session shares one warehouse directory and every
test gets a fresh database in it.

Fixtures:

* ``warehouse_path`` - the session's chDB directory;
* ``runner_settings`` - Settings pointing at a fresh database of that warehouse;
* ``warehouse`` - a connected :class:`~runner.warehouse.client.Warehouse` on it, with the
  framework's tables created and the project's migrations applied when the settings'
  migrations directory exists;
* ``make_context`` - builds a :class:`~runner.pipeline.context.RunContext` for calling
  steps directly.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.log import get_logger
from runner.migrate.apply import Migrator
from runner.migrate.framework import ensure_framework_tables
from runner.pipeline.context import RunContext, RunResources
from runner.pipeline.windows import Window
from runner.settings import Settings
from runner.warehouse.client import Warehouse


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Undo a test's logging configuration (its stdout may be closed afterwards)."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chDB directory for the whole test session."""
    return tmp_path_factory.mktemp("warehouse") / "chdb"


@pytest.fixture
def runner_settings(warehouse_path: Path, tmp_path: Path) -> Settings:
    """Settings on a fresh database of the session warehouse."""
    database = f"test_{secrets.token_hex(6)}"
    return Settings(
        project_dir=tmp_path,
        warehouse_url=f"chdb://{warehouse_path}",
        database=database,
        state_database=f"{database}_state",
        log_format="json",  # type: ignore[arg-type]
    )


@pytest.fixture
def warehouse(runner_settings: Settings) -> Iterator[Warehouse]:
    """A connected warehouse whose database exists (and is dropped afterwards)."""
    wh = Warehouse.connect(runner_settings, ensure_database=True)
    ensure_framework_tables(wh, runner_settings.state_database)
    if runner_settings.migrations_path.is_dir():
        Migrator(
            wh, runner_settings.migrations_path, state_database=runner_settings.state_database
        ).apply()
    yield wh
    wh.command(f"DROP DATABASE IF EXISTS `{runner_settings.state_database}`")
    wh.command(f"DROP DATABASE IF EXISTS `{wh.database}`")
    wh.close()


@pytest.fixture
def make_context(runner_settings: Settings, warehouse: Warehouse) -> Callable[..., RunContext]:
    """Build a run context on the test database; keyword arguments override defaults."""

    def build(**overrides: Any) -> RunContext:
        options: dict[str, Any] = {
            "pipeline": "test",
            "run_id": f"test-{secrets.token_hex(4)}",
            "window": Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
            "settings": runner_settings,
            "resources": RunResources(connect=lambda: warehouse),
            "log": get_logger(),
            "cancel": threading.Event(),
        }
        options.update(overrides)
        return RunContext(**options)

    return build
