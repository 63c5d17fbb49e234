"""Loading into ClickHouse: append into MergeTree, upsert into ReplacingMergeTree.

Every insert carries a deterministic ``insert_deduplication_token`` built from the
pipeline, the window and the batch number: a retried run of the same window with the
same input sends the same tokens, and ClickHouse drops the repeated blocks (on
non-replicated tables that needs ``non_replicated_deduplication_window`` > 0, which the
example migrations set).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.pipeline.steps import Loader
from runner.warehouse.sql import check_identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext


def _split_table(table: str) -> tuple[str | None, str]:
    if not isinstance(table, str):
        raise ConfigError(f"invalid table {table!r}: give the table name as text")
    database, dot, name = table.rpartition(".")
    if dot:  # '.events' names no database: refused rather than guessed
        check_identifier(database, what="database")
    return database or None, check_identifier(name, what="table")


class ClickHouseLoader(Loader):
    """Shared behaviour: check the table at open, insert each batch with a token."""

    expected_engine: str | None = None

    def __init__(self, table: str, *, deduplicate: bool = True) -> None:
        self.database, self.table = _split_table(table)
        self.deduplicate = deduplicate

    @property
    def target(self) -> str:
        """``database.table`` as given (unquoted)."""
        return f"{self.database}.{self.table}" if self.database else self.table

    def describe(self) -> str:
        """E.g. ``append(events)``."""
        return f"{self.step_name}({self.target})"

    def open(self, ctx: RunContext) -> None:
        """Fail early, with a clear message, when the table is missing or of the wrong kind."""
        database = self.database or ctx.warehouse.database
        rows = ctx.warehouse.query_rows(
            "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": database, "t": self.table},
        )
        if not rows:
            raise ConfigError(
                f"table {database}.{self.table} does not exist: add a migration that creates it "
                "and run `runner migrate`"
            )
        engine = str(rows[0][0])
        if self.expected_engine and not engine.endswith(self.expected_engine):
            raise ConfigError(
                f"{self.step_name} needs a {self.expected_engine} table, but "
                f"{database}.{self.table} is {engine}"
            )

    def next_token(self, ctx: RunContext) -> str:
        """The deterministic deduplication token of the run's next batch.

        The batch number is counted per run (in the context), so parallel runs of the same
        pipeline object never disturb each other's numbering.
        """
        state = ctx.step_state(self)
        state["batch"] = number = state.get("batch", 0) + 1
        return (
            f"{ctx.pipeline}/{ctx.node}/{self.target}/"
            f"{ctx.window.start.isoformat()}/{ctx.window.end.isoformat()}/{number}"
        )

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Insert one batch."""
        token = self.next_token(ctx)
        settings = {"insert_deduplication_token": token} if self.deduplicate else {}
        ctx.warehouse.insert_arrow(self.target, batch, settings=settings)


class ClickHouseAppend(ClickHouseLoader):
    """Append rows (MergeTree history tables)."""

    name = "append"


class ClickHouseUpsert(ClickHouseLoader):
    """Insert new versions of rows into a ReplacingMergeTree; read them back with FINAL.

    The table's ORDER BY is the key and its version column decides which row wins, so
    re-loading the same rows is harmless.  Every batch must carry the version column.
    """

    name = "upsert"
    expected_engine = "ReplacingMergeTree"

    def __init__(self, table: str, *, deduplicate: bool = True) -> None:
        super().__init__(table, deduplicate=deduplicate)
        self.version_column: str | None = None

    def open(self, ctx: RunContext) -> None:
        """Check the engine and learn its version column."""
        super().open(ctx)
        rows = ctx.warehouse.query_rows(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} "
            "AND name = {t:String}",
            {"db": self.database or ctx.warehouse.database, "t": self.table},
        )
        match = re.search(r"ReplacingMergeTree\(\s*`?(\w+)`?", str(rows[0][0]))
        self.version_column = match.group(1) if match else None

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Insert one batch, refusing batches without the version column."""
        if self.version_column and self.version_column not in batch.schema.names:
            raise ConfigError(
                f"upsert into {self.target}: batches need the version column "
                f"{self.version_column!r}; got {', '.join(batch.schema.names)}"
            )
        super().write(batch, ctx)


def clickhouse_append(table: str, *, deduplicate: bool = True) -> ClickHouseAppend:
    """Append into ``table`` (``name`` or ``database.name``)."""
    return ClickHouseAppend(table, deduplicate=deduplicate)


def clickhouse_upsert(table: str, *, deduplicate: bool = True) -> ClickHouseUpsert:
    """Upsert into the ReplacingMergeTree ``table``."""
    return ClickHouseUpsert(table, deduplicate=deduplicate)
