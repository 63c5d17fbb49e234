"""Loading by replacing the run's window: a re-run replaces exactly that window's data.

How: rows are inserted into a staging table (``<table>__staging_<12 hex>``, one per
run, created ``AS`` the target, so same columns, engine, partition key and settings,
with the owning run in its COMMENT; see :mod:`runner.tools.load.staging`); when the
stream ends successfully each partition the window touches is swapped into the target
with ``ALTER TABLE ... REPLACE PARTITION ID ... FROM <staging>``, or dropped with ``DROP
PARTITION ID`` when the target has rows there but the new data has none.  The staging
table is then dropped.

Guarantees:

* Each partition swap is atomic: a reader sees the old or the new partition, never half.
* A window spanning several partitions is replaced partition by partition: a reader
  between two swaps may see some partitions new and others still old.
* The window must cover whole partitions (e.g. ``PARTITION BY toDate(ts)`` for daily or
  weekly windows, not hourly ones); before swapping, a partition that also holds rows
  outside the window is a FatalError and nothing is swapped.  A concurrent write outside
  the window into an affected partition between that check and the swap would be lost:
  only one writer per partition is supported.
* Nothing is swapped unless the staging table is this run's (its COMMENT) and holds
  exactly the rows this run's inserts confirmed.
* A window that holds rows is not replaced by nothing: zero new rows fail the run unless
  ``allow_empty=True``; with ``min_fraction`` set, so do fewer new rows than that
  fraction of the old ones.  An empty source is far more often a missing or truncated
  file than a real empty window.
* A failed run (bad row, failing extractor, interruption) drops its staging table and
  leaves the target untouched.  A crash before the swaps leaves the target untouched and
  a stray staging table, which the next run of that window drops at its start (and any
  run loading this table once the crashed run is known to be over).  A crash between two
  swaps leaves some partitions new and some old; re-running the window repairs it.

Needs ClickHouse >= 23.10 (partition ids bound as query parameters) and a non-replicated
MergeTree-family target (a staging copy of a Replicated table would share its Keeper
path).
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, FatalError, RunnerError
from runner.tools.load.clickhouse import ClickHouseLoader, OnInvalid
from runner.tools.load.staging import (
    HASH_LENGTH,
    STAGING_MARK,
    Owner,
    drop_orphans,
    owner_of,
    sql_string,
    staging_name,
)
from runner.tools.load.window_rows import (
    MICROS_PER_DAY,
    ceil_div,
    micros,
    time_column_is_date,
    window_condition,
)
from runner.warehouse.sql import check_identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

_PARTITION_ID = re.compile(r"[0-9a-z_-]{1,256}")
# Microseconds per stored integer, per Arrow temporal unit; ns is handled apart.
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "date32": MICROS_PER_DAY, "date64": 1_000}


class ClickHouseReplaceWindow(ClickHouseLoader):
    """Replace the run window's partitions of a partitioned MergeTree table."""

    name = "replace_window"
    expected_engine = "MergeTree"

    def __init__(
        self,
        table: str,
        *,
        time_column: str,
        deduplicate: bool = False,
        insert_threads: int | None = None,
        on_invalid: OnInvalid = "fail",
        allow_empty: bool = False,
        min_fraction: float | None = None,
    ) -> None:
        super().__init__(
            table, deduplicate=deduplicate, insert_threads=insert_threads, on_invalid=on_invalid
        )
        self.time_column = check_identifier(time_column, what="time column")
        check_identifier(self.table + STAGING_MARK + "0" * HASH_LENGTH, what="staging table name")
        if not isinstance(allow_empty, bool):
            raise ConfigError(f"{self.describe()}: allow_empty must be True or False")
        if min_fraction is not None and (
            isinstance(min_fraction, bool)
            or not isinstance(min_fraction, int | float)
            or not 0 < min_fraction <= 1
        ):
            raise ConfigError(
                f"{self.describe()}: min_fraction must be a number above 0 and at most 1 "
                f"(e.g. 0.5: refuse to replace a window by less than half its rows), "
                f"not {min_fraction!r}"
            )
        self.allow_empty = allow_empty
        self.min_fraction = None if min_fraction is None else float(min_fraction)

    def describe(self) -> str:
        """E.g. ``replace_window(events by ts)``."""
        return f"{self.step_name}({self.target} by {self.time_column})"

    # -- open -------------------------------------------------------------------------

    def open(self, ctx: RunContext) -> None:
        """Check the target, drop orphaned staging tables, create this run's staging table."""
        super().open(ctx)  # exists and is MergeTree-family; its columns are read
        wh = ctx.warehouse
        database = self.database or wh.database
        where = {"db": database, "t": self.table}
        engine, partition_key = wh.query_rows(
            "SELECT engine, partition_key FROM system.tables "
            "WHERE database = {db:String} AND name = {t:String}",
            where,
        )[0]
        full_name = f"{database}.{self.table}"
        if str(engine).startswith("Replicated"):
            raise ConfigError(
                f"replace_window cannot stage rows for the replicated table {full_name} "
                f"({engine}); use a non-replicated MergeTree table"
            )
        if not partition_key:
            raise ConfigError(
                f"replace_window needs a partitioned table, but {full_name} has no PARTITION BY:"
                f" add one matching the schedule, e.g. PARTITION BY toDate({self.time_column})"
            )
        state = ctx.step_state(self)  # per run: parallel windows share this loader
        state["partition_key"] = str(partition_key)
        state["date_column"] = time_column_is_date(
            ctx.warehouse, database, self.table, self.time_column, what="replace_window"
        )
        name = staging_name(self.table, ctx)
        drop_orphans(ctx, database, self.table, own=name)
        staging = wh.table(f"{database}.{name}")
        wh.command(f"DROP TABLE IF EXISTS {staging} SYNC")
        wh.command(
            f"CREATE TABLE {staging} AS {wh.table(full_name)} "
            f"COMMENT {sql_string(Owner.of(ctx).comment())}"
        )
        state["staging"] = f"{database}.{name}"
        if not self.deduplicate:
            # Identical batches are distinct rows: no block-hash deduplication in staging.
            wh.command(
                f"ALTER TABLE {staging} MODIFY SETTING non_replicated_deduplication_window = 0"
            )

    # -- write ------------------------------------------------------------------------

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Fit the batch to the table, check every row is in the window, insert into staging."""
        staging = ctx.step_state(self).get("staging")
        if staging is None:
            raise FatalError(f"replace_window into {self.target}: write() before open()")
        fitted = self.fit(batch, ctx)
        if fitted is None:
            return
        self._check_window(fitted, ctx)
        self.insert(ctx, staging, fitted)

    def _check_window(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Refuse a batch with a row outside [window.start, window.end), vectorised."""
        import pyarrow as pa
        import pyarrow.compute as pc

        where = f"replace_window into {self.target}"
        if self.time_column not in batch.schema.names:
            raise ConfigError(
                f"{where}: batches need the time column {self.time_column!r}; "
                f"got {', '.join(batch.schema.names)}"
            )
        column = batch.column(self.time_column)
        if column.null_count:
            raise FatalError(
                f"{where}: column {self.time_column!r} has {column.null_count} null values; "
                f"every row needs a time inside the window [{ctx.window.start.isoformat()}, "
                f"{ctx.window.end.isoformat()})"
            )
        kind = column.type
        if pa.types.is_timestamp(kind):
            unit: str = kind.unit
        elif pa.types.is_date32(kind):
            unit = "date32"
        elif pa.types.is_date64(kind):
            unit = "date64"
        else:
            raise FatalError(
                f"{where}: column {self.time_column!r} is {kind}, not a timestamp or date; "
                "cast it before loading"
            )
        start, end = micros(ctx.window.start), micros(ctx.window.end)
        if unit == "ns":
            low, high = start * 1_000, end * 1_000
        else:  # smallest stored value at or after each bound: exact for integer values
            low, high = ceil_div(start, _MICROS_PER[unit]), ceil_div(end, _MICROS_PER[unit])
        integers = column.view(pa.int32() if unit == "date32" else pa.int64())
        extremes = pc.min_max(integers)
        smallest, largest = extremes["min"].as_py(), extremes["max"].as_py()
        if smallest is None:
            return
        bad = smallest if smallest < low else largest if largest >= high else None
        if bad is not None:
            value = _readable(pa.array([bad], integers.type).view(kind)[0])
            raise FatalError(
                f"{where}: a row has {self.time_column} = {value}, outside the run window "
                f"[{ctx.window.start.isoformat()}, {ctx.window.end.isoformat()})"
            )

    # -- close ------------------------------------------------------------------------

    def rows_written(self, ctx: RunContext) -> int:
        """Rows of the partitions this run swapped into the target (staged rows are not)."""
        return int(ctx.step_state(self).get("swapped", 0))

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """On success swap the window's partitions in; always drop the staging table."""
        staging = ctx.step_state(self).pop("staging", None)
        try:
            super().close(ctx, success=success)  # every insert into staging has ended
            if success and staging is not None:
                self._swap(ctx, staging)
        finally:
            if staging is not None:
                self._drop_staging(ctx, staging)

    @staticmethod
    def _drop_staging(ctx: RunContext, staging: str) -> None:
        try:
            ctx.warehouse.command(f"DROP TABLE IF EXISTS {ctx.warehouse.table(staging)} SYNC")
        except RunnerError as exc:  # the target is consistent; open() drops it later
            ctx.log.warning("staging table not dropped", table=staging, error=str(exc))

    def _window_condition(self, ctx: RunContext) -> tuple[str, dict[str, Any]]:
        """SQL selecting the window's rows of the target, with its bound parameters."""
        return window_condition(
            self.time_column, ctx.window, date_column=bool(ctx.step_state(self).get("date_column"))
        )

    def _swap(self, ctx: RunContext, staging: str) -> None:
        """Replace (or drop) each partition the window covers, after checking it may."""
        wh = ctx.warehouse
        target = wh.table(self.target)
        state = ctx.step_state(self)
        database, _, staging_name_ = staging.rpartition(".")
        where = f"replace_window into {self.target}"
        if owner_of(ctx, database, staging_name_) != Owner.of(ctx):
            raise FatalError(
                f"{where}: the staging table {staging} is gone or no longer this run's; "
                "nothing was replaced (did another run of this window run at the same time?)"
            )
        staged = {
            str(pid): int(rows)
            for pid, rows in wh.query_rows(
                "SELECT partition_id, sum(rows) FROM system.parts WHERE active "
                "AND database = {db:String} AND table = {t:String} GROUP BY partition_id",
                {"db": database, "t": staging_name_},
            )
        }
        inserted = int(state.get("written", 0))
        if sum(staged.values()) != inserted:
            raise FatalError(
                f"{where}: the staging table holds {sum(staged.values())} rows but this run's "
                f"inserts confirmed {inserted}; nothing was replaced"
            )
        in_window, params = self._window_condition(ctx)
        previous = {
            str(pid): int(rows)
            for pid, rows in wh.query_rows(
                f"SELECT _partition_id, count() FROM {target} WHERE {in_window} "
                "GROUP BY _partition_id",  # nosec B608
                params,
            )
        }
        self._check_not_wiped(ctx, before=sum(previous.values()), after=inserted)
        affected = sorted(set(staged) | set(previous))
        if not affected:
            ctx.log.info("window empty, nothing to replace", table=self.target)
            return
        for pid in affected:
            if not _PARTITION_ID.fullmatch(pid):
                raise FatalError(f"{where}: odd partition id {pid!r}")
        outside = wh.query_rows(
            f"SELECT _partition_id, count() FROM {target} WHERE _partition_id IN "
            f"{{ids:Array(String)}} AND NOT ifNull(({in_window}), 0) GROUP BY _partition_id "
            "ORDER BY _partition_id LIMIT 1",  # nosec B608
            {**params, "ids": affected},
        )
        if outside:
            pid, rows = outside[0]
            raise FatalError(
                f"{where}: partition {pid} also holds {rows} rows "
                f"outside the window [{ctx.window.start.isoformat()}, "
                f"{ctx.window.end.isoformat()}), which replacing it would delete; the window must "
                f"cover whole partitions, but PARTITION BY {state['partition_key']} is coarser: "
                f"use a key matching the schedule, e.g. PARTITION BY toDate({self.time_column}) "
                "for daily windows"
            )
        for pid in affected:
            if pid in staged:
                wh.command(
                    f"ALTER TABLE {target} REPLACE PARTITION ID {{p:String}} "
                    f"FROM {wh.table(staging)}",
                    {"p": pid},
                )
            else:  # REPLACE from a source without this partition is refused (26.x) or
                # silently empties it (older): say what is meant
                wh.command(f"ALTER TABLE {target} DROP PARTITION ID {{p:String}}", {"p": pid})
            state["swapped"] = state.get("swapped", 0) + staged.get(pid, 0)
            ctx.log.info(
                "partition replaced",
                table=self.target,
                partition=pid,
                rows=staged.get(pid, 0),
                replaced_rows=previous.get(pid, 0),
            )

    def _check_not_wiped(self, ctx: RunContext, *, before: int, after: int) -> None:
        """Refuse to replace a window's rows by none (or by too few), unless allowed."""
        if not before:
            return
        window = f"[{ctx.window.start.isoformat()}, {ctx.window.end.isoformat()})"
        where = f"replace_window into {self.target}"
        if after == 0 and not self.allow_empty:
            raise FatalError(
                f"{where}: the new data has 0 rows for the window {window}, which holds "
                f"{before:,} rows now; refusing to empty it (an empty source is usually a "
                "missing or truncated file). Nothing was replaced; pass allow_empty=True to "
                "clickhouse_replace_window to allow emptying a window"
            )
        if after and self.min_fraction is not None and after < self.min_fraction * before:
            raise FatalError(
                f"{where}: the new data has {after:,} rows for the window {window}, which holds "
                f"{before:,} rows now ({after / before:.1%}, below min_fraction="
                f"{self.min_fraction}); refusing to replace it. Nothing was replaced; lower "
                "min_fraction to allow it"
            )


def _readable(value: pa.Scalar) -> str:
    """A temporal scalar as ISO text (nanosecond values that Python cannot hold as-is)."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):
        return str(value)
    return python.isoformat() if isinstance(python, date) else str(python)


def clickhouse_replace_window(
    table: str,
    *,
    time_column: str,
    deduplicate: bool = False,
    insert_threads: int | None = None,
    on_invalid: OnInvalid = "fail",
    allow_empty: bool = False,
    min_fraction: float | None = None,
) -> ClickHouseReplaceWindow:
    """Replace the run window's data in ``table``, partitioned to match the schedule.

    Every row's ``time_column`` must lie in the window.  With ``deduplicate`` each batch
    carries a deterministic ``insert_deduplication_token`` (effective when the table keeps a
    deduplication log), so a retried insert of the same batch is not doubled.
    ``insert_threads`` inserts into the staging table run at once (default
    ``RUNNER_INSERT_THREADS``).  ``on_invalid`` as for append.

    A window holding rows is not replaced by an empty source unless ``allow_empty=True``;
    ``min_fraction`` (e.g. 0.5) also refuses a replacement with fewer rows than that
    fraction of the rows the window holds.
    """
    return ClickHouseReplaceWindow(
        table,
        time_column=time_column,
        deduplicate=deduplicate,
        insert_threads=insert_threads,
        on_invalid=on_invalid,
        allow_empty=allow_empty,
        min_fraction=min_fraction,
    )
