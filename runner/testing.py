"""A testing kit for pipeline authors: pytest fixtures over a real embedded ClickHouse.

Enable with ``pytest_plugins = ["runner.testing"]`` in a ``conftest.py``.  chDB allows one
database path per process, so the whole session shares one warehouse directory and every
test gets a fresh database in it, created only when the test touches it.

Fixtures:

* ``runner_project`` - the project whose ``pipelines/`` and ``migrations/`` the tests use;
  ``None`` (the default) is an empty project.  Override it in your ``conftest.py``;
* ``warehouse_path`` - the session's chDB directory;
* ``runner_settings`` - Settings pointing at a fresh database of that warehouse;
* ``warehouse`` - a connected :class:`~runner.warehouse.client.Warehouse` on it, with the
  framework's tables created and the project's migrations applied;
* ``make_context`` - builds a :class:`~runner.pipeline.context.RunContext` for calling
  steps directly; the database is created on the step's first ``ctx.warehouse`` use, so
  a step that never touches the warehouse costs no database;
* ``run`` - ``run(pipeline, window=...)`` runs a pipeline (an object or its name) as
  ``runner run`` would, in this process, and returns a :class:`LoadedRun`: the run's
  result (rows per step) and the rows of the tables it wrote.

:func:`collect` runs one extractor or transform over a context and returns what it
produced as one Arrow table (``.to_pylist()`` gives the rows).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from runner.log import get_logger
from runner.pipeline.context import RunContext, RunResources
from runner.pipeline.windows import Window
from runner.services.run_record import RunResult
from runner.settings import Settings
from runner.warehouse.client import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.kinds import Pipeline
    from runner.services.run_hooks import RunHook

#: The window of a context built by ``make_context`` unless it is given one.
DEFAULT_WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Undo a test's logging configuration (its stdout may be closed afterwards)."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def runner_project() -> Path | None:
    """The project under test (``pipelines/`` and ``migrations/``); None: an empty one."""
    return None


@pytest.fixture(scope="session")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chDB directory for the whole test session."""
    return tmp_path_factory.mktemp("warehouse") / "chdb"


@pytest.fixture
def runner_settings(warehouse_path: Path, tmp_path: Path, runner_project: Path | None) -> Settings:
    """Settings on a fresh database of the session warehouse (locks and logs under tmp)."""
    database = f"test_{secrets.token_hex(6)}"
    project: dict[str, Any] = {}
    if runner_project is not None:
        root = Path(runner_project).resolve()
        project = {"pipelines_dir": root / "pipelines", "migrations_dir": root / "migrations"}
    return Settings(
        project_dir=tmp_path,
        warehouse_url=f"chdb://{warehouse_path}",
        database=database,
        state_database=f"{database}_state",
        log_format="json",  # type: ignore[arg-type]
        **project,
    )


class LazyDatabase:
    """The test's database, made on first use, from any thread, and dropped if it was.

    Made means created, with the framework's tables and the project's migrations.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mutex = threading.Lock()
        self._warehouse: Warehouse | None = None

    @property
    def created(self) -> bool:
        """Whether a step (or the test) has touched the database."""
        return self._warehouse is not None

    def connect(self) -> Warehouse:
        """The connection to the database, creating and migrating it the first time."""
        from runner.migrate.apply import Migrator
        from runner.migrate.framework import ensure_framework_tables

        with self._mutex:
            if self._warehouse is None:
                settings = self._settings
                wh = Warehouse.connect(settings, ensure_database=True)
                ensure_framework_tables(wh, settings.state_database)
                if settings.migrations_path.is_dir():
                    Migrator(
                        wh, settings.migrations_path, state_database=settings.state_database
                    ).apply()
                self._warehouse = wh
            return self._warehouse

    def drop(self) -> None:
        """Drop the databases if they were created, and close the connection."""
        with self._mutex:
            wh, self._warehouse = self._warehouse, None
        if wh is None:
            return
        # SYNC: dropped at once.  Otherwise the engine keeps each dropped table for minutes and
        # every later DDL of the session gets slower (measured: 0.3 s -> 1.8 s of CPU per test
        # database after 120 of them; constant 0.12 s with SYNC).
        wh.command(f"DROP DATABASE IF EXISTS `{self._settings.state_database}` SYNC")
        wh.command(f"DROP DATABASE IF EXISTS `{wh.database}` SYNC")
        wh.close()


@pytest.fixture
def runner_database(runner_settings: Settings) -> Iterator[LazyDatabase]:
    """The test's database, created lazily (shared by ``warehouse``, ``make_context``, ``run``)."""
    database = LazyDatabase(runner_settings)
    yield database
    database.drop()


@pytest.fixture
def warehouse(runner_database: LazyDatabase) -> Warehouse:
    """A connected warehouse whose database exists (and is dropped afterwards)."""
    return runner_database.connect()


@pytest.fixture
def make_context(
    runner_settings: Settings, runner_database: LazyDatabase
) -> Callable[..., RunContext]:
    """Build a run context on the test database; keyword arguments override defaults."""

    def build(**overrides: Any) -> RunContext:
        options: dict[str, Any] = {
            "pipeline": "test",
            "run_id": f"test-{secrets.token_hex(4)}",
            "window": DEFAULT_WINDOW,
            "settings": runner_settings,
            "resources": RunResources(connect=runner_database.connect),
            "log": get_logger(),
            "cancel": threading.Event(),
        }
        options.update(overrides)
        return RunContext(**options)

    return build


@dataclass
class LoadedRun(RunResult):
    """A run made by the ``run`` fixture: its result, and the tables it wrote."""

    warehouse: Warehouse | None = None

    def table(self, name: str, *, final: bool = False, order_by: Sequence[str] = ()) -> pa.Table:
        """Every row of table ``name`` (of the test database unless qualified), in order.

        ``final`` reads a ReplacingMergeTree as queries should (``FINAL``); rows are
        ordered by ``order_by`` columns, else by all columns.
        """
        from runner.warehouse.sql import quote_identifier

        if self.warehouse is None:  # pragma: no cover - always set by the fixture
            raise RuntimeError("this run has no warehouse")
        order = ", ".join(quote_identifier(c, what="column") for c in order_by) or "ALL"
        final_sql = " FINAL" if final else ""
        # the table name and columns are quoted identifiers
        sql = f"SELECT * FROM {self.warehouse.table(name)}{final_sql}"  # nosec B608
        return self.warehouse.query_arrow(f"{sql} ORDER BY {order}")

    def rows(
        self, name: str, *, final: bool = False, order_by: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """:meth:`table` as a list of row dicts."""
        rows: list[dict[str, Any]] = self.table(name, final=final, order_by=order_by).to_pylist()
        return rows


@pytest.fixture
def run(runner_settings: Settings, runner_database: LazyDatabase) -> Callable[..., LoadedRun]:
    """``run(pipeline, window=..., params=..., hooks=...)``: one run, as ``runner run`` does it.

    ``pipeline`` is a pipeline object or the name of one in the project's ``pipelines/``.
    The run takes its locks, passes the schema gate, records itself in the run history,
    commits its state and raises the run's error on failure, on the test database.
    """

    def run_once(
        pipeline: Pipeline | str,
        *,
        window: Window | None = None,
        params: Mapping[str, str] | None = None,
        hooks: Sequence[RunHook] = (),
    ) -> LoadedRun:
        from runner.pipeline.discovery import Registry
        from runner.services.run import PipelineRun
        from runner.services.session import RunSession

        warehouse = runner_database.connect()  # created and migrated before the gate looks
        if isinstance(pipeline, str):
            pipeline = Registry(runner_settings.pipelines_path).load(pipeline)
        with RunSession(runner_settings) as session:
            done = PipelineRun(
                runner_settings, pipeline, session, window=window, params=params, hooks=hooks
            ).run()
        return LoadedRun(**vars(done), warehouse=warehouse)

    return run_once


def collect(step: object, ctx: RunContext, rows: object = None) -> pa.Table:
    """What one step produces, as one Arrow table (``.to_pylist()`` for the rows).

    Without ``rows``, ``step`` is an extractor (an Extractor, a function, an iterable);
    with ``rows`` (row dicts, a RecordBatch or a Table) it is a transform run over them.
    Batches are cut at ``ctx.batch_rows`` as in a run; a transform's dropped batches
    (None) are left out.
    """
    import pyarrow as pa

    from runner.batches import to_batches
    from runner.pipeline.steps import as_extractor, as_transformer

    if rows is None:
        produced = as_extractor(step).extract(ctx)
    else:
        transformer = as_transformer(step)
        produced = (
            out
            for batch in to_batches([rows], ctx.batch_rows)
            if (out := transformer.transform(batch, ctx)) is not None
        )
    batches = list(to_batches(produced, ctx.batch_rows))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)
