"""Ad-hoc SQL against the configured warehouse (``runner query``), read-only by default.

Read-only is :mod:`runner.warehouse.read_only`: a statement that reads, run with
ClickHouse's ``readonly = 2``; ``write=True`` drops both.  A refusal is a ReadOnlyError, a
usage error: the command needs the caller's leave to write.

One statement per call.  Statements that return rows are streamed as Arrow batches;
others run as commands.  Each call opens its own connection (on the embedded engine a
connection that ran a read-only statement stays read-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runner.errors import FatalError
from runner.warehouse.read_only import (
    READ_ONLY,
    READONLY_CODE,
    ReadOnlyError,
    Statement,
    check_read_only,
    parse_statement,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

__all__ = [
    "ReadOnlyError",
    "Rows",
    "Statement",
    "check_read_only",
    "parse_statement",
    "python_rows",
    "query_rows",
    "run_command",
]

_READ_ONLY = "runner query is read-only"


class Rows:
    """The result of a statement that returns rows: column names, then batches as they come."""

    def __init__(
        self, warehouse: Warehouse, statement: Statement, options: dict[str, int] | None
    ) -> None:
        self._warehouse = warehouse
        self._statement = statement
        self._options = options
        self.names: list[str] = []

    def batches(self, max_rows: int = 10_000) -> Iterator[pa.RecordBatch]:
        """Stream the rows as Arrow batches; ``names`` is set from the first one."""
        with (
            _refusal_explained(),
            self._warehouse.stream_arrow(
                self._statement.sql, max_rows=max_rows, settings=self._options
            ) as batches,
        ):
            for batch in batches:
                self.names = self.names or batch.schema.names
                yield batch

    def column_names(self) -> list[str]:
        """The result's column names.

        When no row arrived the statement runs again (an empty Arrow stream carries no
        schema); read-only statements make that harmless.
        """
        if not self.names:
            with _refusal_explained():
                table = self._warehouse.query_arrow(self._statement.sql, settings=self._options)
            self.names = table.schema.names
        return self.names


@contextmanager
def query_rows(settings: Settings, statement: Statement, *, write: bool = False) -> Iterator[Rows]:
    """The rows of ``statement`` (one that returns rows), on a connection of its own."""
    from runner.warehouse.client import Warehouse

    warehouse = Warehouse.connect(settings)
    try:
        yield Rows(warehouse, statement, None if write else READ_ONLY)
    finally:
        warehouse.close()


def run_command(settings: Settings, statement: Statement, *, write: bool = False) -> None:
    """Run ``statement`` (one that returns no rows)."""
    from runner.warehouse.client import Warehouse

    warehouse = Warehouse.connect(settings)
    try:
        with _refusal_explained():
            warehouse.command(statement.sql, settings=None if write else READ_ONLY)
    finally:
        warehouse.close()


@contextmanager
def _refusal_explained() -> Iterator[None]:
    """A write refused by the read-only setting says how to allow it."""
    try:
        yield
    except FatalError as exc:
        if READONLY_CODE not in exc.message:
            raise
        raise ReadOnlyError(f"{exc.message} ({_READ_ONLY})") from None


def python_rows(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    """A batch's rows as tuples of Python values, in column order (names may repeat)."""
    columns = [column.to_pylist() for column in batch.columns]
    return list(zip(*columns, strict=True))
