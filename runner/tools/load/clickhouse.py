"""Loading into ClickHouse: append into MergeTree, upsert into ReplacingMergeTree.

Every insert carries a deterministic ``insert_deduplication_token`` built from the
pipeline, the window and the batch number: a retried run of the same window with the
same input sends the same tokens, and ClickHouse drops the repeated blocks (on
non-replicated tables that needs ``non_replicated_deduplication_window`` > 0, which the
example migrations set).

Batches are gathered into inserts of ``RUNNER_INSERT_ROWS`` rows; append (and
replace-window) loaders keep ``insert_threads`` of them in flight at once
(``RUNNER_INSERT_THREADS``), upsert sends one at a time, in order (see
:mod:`runner.tools.load.inserts`).

Before a batch is gathered it is fitted to the table's column types
(:mod:`runner.tools.load.conform`): a value the column cannot hold as it is (300 in a
UInt8, a date before 1970 in a Date, a null in a column that is not Nullable) fails the
run (``on_invalid="fail"``, the default) or goes to the quarantine table with its reason
(``on_invalid="quarantine"``); it never lands altered.

Everything a loader learns or holds during a run (the table's columns, the version
column, the inserts in flight, the batch counter) lives in the run's step state: one
loader object serves every run of its pipeline in the process.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from runner.errors import ConfigError, FatalError
from runner.pipeline.context import QUARANTINE_TABLE
from runner.pipeline.steps import Loader
from runner.tools.load.conform import Column, conform, read_columns
from runner.tools.load.inserts import Inserts
from runner.warehouse.sql import check_identifier

MAX_INSERT_THREADS = 16
OnInvalid = Literal["fail", "quarantine"]
ON_INVALID = ("fail", "quarantine")
_SHOWN_REJECTS = 3

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
    #: Whether batches must land in order (upsert: of two equal versions the last wins).
    ordered: ClassVar[bool] = False

    def __init__(
        self,
        table: str,
        *,
        deduplicate: bool = True,
        insert_threads: int | None = None,
        on_invalid: OnInvalid = "fail",
    ) -> None:
        self.database, self.table = _split_table(table)
        self.deduplicate = deduplicate
        if on_invalid not in ON_INVALID:
            raise ConfigError(
                f"{self.step_name}({self.target}): on_invalid must be 'fail' or 'quarantine', "
                f"not {on_invalid!r}"
            )
        self.on_invalid = on_invalid
        if insert_threads is not None and (
            isinstance(insert_threads, bool)
            or not isinstance(insert_threads, int)
            or not 1 <= insert_threads <= MAX_INSERT_THREADS
        ):
            raise ConfigError(
                f"{self.step_name}({self.target}): insert_threads must be a whole number "
                f"from 1 to {MAX_INSERT_THREADS}, not {insert_threads!r}"
            )
        self.insert_threads = insert_threads

    @property
    def target(self) -> str:
        """``database.table`` as given (unquoted)."""
        return f"{self.database}.{self.table}" if self.database else self.table

    def describe(self) -> str:
        """E.g. ``append(events)``."""
        return f"{self.step_name}({self.target})"

    def open(self, ctx: RunContext) -> None:
        """Fail early when the table is missing or of the wrong kind; read its columns.

        The columns are read once per run and kept in the run's step state.
        """
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
        state = ctx.step_state(self)
        state["columns"] = read_columns(ctx.warehouse, database, self.table)
        state["seen"] = 0

    def fit(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch | None:
        """``batch`` fitted to the table's types; rows that do not fit fail or are quarantined.

        None when no row is left.
        """
        state = ctx.step_state(self)
        columns: dict[str, Column] | None = state.get("columns")
        if columns is None:
            raise FatalError(f"{self.describe()}: write() before open()")
        database = self.database or ctx.warehouse.database
        where = f"{self.step_name} into {database}.{self.table}"
        result = conform(batch, columns, target=where)
        seen = state["seen"]
        state["seen"] = seen + batch.num_rows
        rejected = result.rejected
        if rejected and self.on_invalid == "fail":
            first = rejected[0]
            more = (
                f"; {len(rejected) - 1} more rows of the batch do not fit"
                if len(rejected) > 1
                else ""
            )
            raise FatalError(
                f"{where}: row {seen + first.index + 1} of the run: {first.reason}{more}. "
                f"Nothing of this batch was loaded; fix the data, cast it in a transform, or "
                f"load with on_invalid='quarantine' to keep such rows in {QUARANTINE_TABLE}"
            )
        if rejected:
            import pyarrow as pa

            from runner.tools.transform._python_values import quarantinable_rows

            indices = [r.index for r in rejected]
            held = quarantinable_rows(batch.take(pa.array(indices, pa.int64())))
            originals = ctx.source_records(batch, indices)  # as the source wrote them
            records = [o if o is not None else r for o, r in zip(originals, held, strict=True)]
            ctx.quarantine(records, [r.reason for r in rejected], step=self.step_name)
            shown = "; ".join(r.reason for r in rejected[:_SHOWN_REJECTS])
            ctx.log.warning(
                "rows do not fit the table",
                table=f"{database}.{self.table}",
                rows=len(rejected),
                examples=shown,
            )
        return result.batch if result.batch.num_rows else None

    def insert(self, ctx: RunContext, table: str, batch: pa.RecordBatch) -> None:
        """Send ``batch`` to ``table`` through this run's :class:`Inserts` (made on first use).

        Batches are gathered into inserts of ``RUNNER_INSERT_ROWS`` rows; the rest is sent
        by :meth:`close` when the run succeeded.
        """
        state = ctx.step_state(self)
        inserts: Inserts | None = state.get("inserts")
        if inserts is None:
            threads = 1 if self.ordered else (self.insert_threads or ctx.settings.insert_threads)
            inserts = state["inserts"] = Inserts(
                table=table,
                warehouse=ctx.warehouse,
                connect=ctx.open_warehouse,
                settings_for_next=lambda: self._insert_settings(ctx),
                rows=ctx.settings.insert_rows,
                threads=threads,
            )
        inserts.add(batch)

    def _insert_settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"insert_deduplication_token": self.next_token(ctx)} if self.deduplicate else {}

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """Send the rest on success and wait for every insert; raise the first failure."""
        state = ctx.step_state(self)
        inserts: Inserts | None = state.get("inserts")
        if inserts is None:
            return
        try:
            inserts.finish(success=success)
        finally:
            state.pop("inserts", None)
            state["written"] = state.get("written", 0) + inserts.written

    def rows_written(self, ctx: RunContext) -> int:
        """Rows of this run's inserts that ended without error (now in the table)."""
        state = ctx.step_state(self)
        inserts: Inserts | None = state.get("inserts")
        return int(state.get("written", 0)) + (inserts.written if inserts is not None else 0)

    def next_token(self, ctx: RunContext) -> str:
        """The deterministic deduplication token of the run's next insert.

        Inserts are numbered per run (in the context), so parallel runs of the same
        pipeline object never disturb each other's numbering.
        """
        state = ctx.step_state(self)
        state["batch"] = number = state.get("batch", 0) + 1
        return (
            f"{ctx.pipeline}/{ctx.node}/{self.target}/"
            f"{ctx.window.start.isoformat()}/{ctx.window.end.isoformat()}/{number}"
        )

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Fit one batch to the table and gather it for insertion."""
        fitted = self.fit(batch, ctx)
        if fitted is not None:
            self.insert(ctx, self.target, fitted)


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
    ordered = True

    def __init__(
        self, table: str, *, deduplicate: bool = True, on_invalid: OnInvalid = "fail"
    ) -> None:
        super().__init__(table, deduplicate=deduplicate, on_invalid=on_invalid)

    def open(self, ctx: RunContext) -> None:
        """Check the engine and learn its version column (kept in the run's step state)."""
        super().open(ctx)
        rows = ctx.warehouse.query_rows(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} "
            "AND name = {t:String}",
            {"db": self.database or ctx.warehouse.database, "t": self.table},
        )
        match = re.search(r"ReplacingMergeTree\(\s*`?(\w+)`?", str(rows[0][0]))
        ctx.step_state(self)["version_column"] = match.group(1) if match else None

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Insert one batch, refusing batches without the version column."""
        version_column = ctx.step_state(self).get("version_column")
        if version_column and version_column not in batch.schema.names:
            raise ConfigError(
                f"upsert into {self.target}: batches need the version column "
                f"{version_column!r}; got {', '.join(batch.schema.names)}"
            )
        super().write(batch, ctx)


def clickhouse_append(
    table: str,
    *,
    deduplicate: bool = True,
    insert_threads: int | None = None,
    on_invalid: OnInvalid = "fail",
) -> ClickHouseAppend:
    """Append into ``table`` (``name`` or ``database.name``).

    With ``deduplicate`` (the default) every insert carries a deterministic
    ``insert_deduplication_token``, so a re-run of the window lands each insert once
    (the table needs a deduplication window; see the README's guarantees).

    ``insert_threads`` inserts run at once (default ``RUNNER_INSERT_THREADS``); 1 keeps
    the batches in order.  A row whose values the table's columns cannot hold as they
    are fails the run (``on_invalid="fail"``) or is stored in the quarantine table with
    the reason (``on_invalid="quarantine"``); see :mod:`runner.tools.load.conform`.
    """
    return ClickHouseAppend(
        table, deduplicate=deduplicate, insert_threads=insert_threads, on_invalid=on_invalid
    )


def clickhouse_upsert(
    table: str, *, deduplicate: bool = True, on_invalid: OnInvalid = "fail"
) -> ClickHouseUpsert:
    """Upsert into the ReplacingMergeTree ``table``.

    ``deduplicate`` and ``on_invalid`` as for :func:`clickhouse_append`.  Turn
    ``deduplicate`` off when a re-run of a window must write new versions (the rows of an
    ELT recomputation), so identical blocks are not dropped as repeats.
    """
    return ClickHouseUpsert(table, deduplicate=deduplicate, on_invalid=on_invalid)
