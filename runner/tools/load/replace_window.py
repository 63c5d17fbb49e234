"""Loading by replacing the run's window: a re-run replaces exactly that window's data.

How: rows are inserted into a staging table (``<table>__staging_<12 hex>``, created
``AS`` the target, so same columns, engine, partition key and settings); when the stream
ends successfully each partition the window touches is swapped into the target with
``ALTER TABLE ... REPLACE PARTITION ID ... FROM <staging>``, or dropped with ``DROP
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
* A failed run (bad row, failing extractor, interruption) drops its staging table and
  leaves the target untouched.  A crash before the swaps leaves the target untouched and a
  stray staging table; staging names derive from the run id, so a later run does not reuse
  it, but every ``open()`` drops this target's staging tables whose metadata is older than
  one day (a run longer than that would lose its staging table and fail).  A crash
  between two swaps leaves some partitions new and some old; re-running the window
  repairs it.

Needs ClickHouse >= 23.10 (partition ids bound as query parameters) and a non-replicated
MergeTree-family target (a staging copy of a Replicated table would share its Keeper
path).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, FatalError, RunnerError
from runner.tools.load.clickhouse import ClickHouseLoader
from runner.warehouse.sql import check_identifier, quote_identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

STAGING_MARK = "__staging_"
STALE_STAGING = "INTERVAL 1 DAY"
_HASH_LENGTH = 12
_PARTITION_ID = re.compile(r"[0-9a-z_-]{1,256}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Microseconds per stored integer, per Arrow temporal unit; ns is handled apart.
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "date32": 86_400_000_000, "date64": 1_000}


def _micros(instant: datetime) -> int:
    return (instant - _EPOCH) // _ONE_MICROSECOND


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


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
    ) -> None:
        super().__init__(table, deduplicate=deduplicate, insert_threads=insert_threads)
        self.time_column = check_identifier(time_column, what="time column")
        check_identifier(self.table + STAGING_MARK + "0" * _HASH_LENGTH, what="staging table name")
        self.partition_key = ""
        self._date_column = False

    def describe(self) -> str:
        """E.g. ``replace_window(events by ts)``."""
        return f"{self.step_name}({self.target} by {self.time_column})"

    # -- open -------------------------------------------------------------------------

    def open(self, ctx: RunContext) -> None:
        """Check the target, drop stale staging tables, create this run's staging table."""
        super().open(ctx)  # exists and is MergeTree-family
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
        self.partition_key = str(partition_key)
        self._date_column = self._check_time_column(ctx, database, full_name)
        self._drop_stale_staging(ctx, database)
        digest = hashlib.sha256(f"{ctx.run_id}/{ctx.node}".encode()).hexdigest()[:_HASH_LENGTH]
        name = f"{database}.{self.table}{STAGING_MARK}{digest}"
        ctx.step_state(self)["staging"] = name  # per run: parallel windows share this loader
        staging = wh.table(name)
        wh.command(f"DROP TABLE IF EXISTS {staging} SYNC")
        wh.command(f"CREATE TABLE {staging} AS {wh.table(full_name)}")
        if not self.deduplicate:
            # Identical batches are distinct rows: no block-hash deduplication in staging.
            wh.command(
                f"ALTER TABLE {staging} MODIFY SETTING non_replicated_deduplication_window = 0"
            )

    def _check_time_column(self, ctx: RunContext, database: str, full_name: str) -> bool:
        """Whether the time column is a date (else a date-time); refuse anything else."""
        rows = ctx.warehouse.query_rows(
            "SELECT type FROM system.columns "
            "WHERE database = {db:String} AND table = {t:String} AND name = {c:String}",
            {"db": database, "t": self.table, "c": self.time_column},
        )
        if not rows:
            raise ConfigError(
                f"replace_window: table {full_name} has no column {self.time_column!r}"
            )
        column_type = str(rows[0][0])
        bare = re.sub(r"^(?:Nullable|LowCardinality)\((.*)\)$", r"\1", column_type)
        if bare in {"Date", "Date32"}:
            return True
        if bare.startswith("DateTime"):
            return False
        raise ConfigError(
            f"replace_window: column {full_name}.{self.time_column} is {column_type}; "
            "it must be a Date, Date32, DateTime or DateTime64"
        )

    def _drop_stale_staging(self, ctx: RunContext, database: str) -> None:
        """Drop staging tables of this target left behind by crashed runs (older than a day)."""
        wh = ctx.warehouse
        like = (self.table + STAGING_MARK).replace("_", "\\_") + "%"
        pattern = re.compile(re.escape(self.table + STAGING_MARK) + f"[0-9a-f]{{{_HASH_LENGTH}}}")
        rows = wh.query_rows(
            "SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE "  # nosec B608
            f"{{like:String}} AND metadata_modification_time < now() - {STALE_STAGING}",
            {"db": database, "like": like},
        )
        for (name,) in rows:
            if pattern.fullmatch(str(name)):
                wh.command(f"DROP TABLE IF EXISTS {wh.table(f'{database}.{name}')} SYNC")
                ctx.log.warning("stale staging table dropped", table=f"{database}.{name}")

    # -- write ------------------------------------------------------------------------

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Check every row is inside the window, then insert the batch into staging."""
        staging = ctx.step_state(self).get("staging")
        if staging is None:
            raise FatalError(f"replace_window into {self.target}: write() before open()")
        self._check_window(batch, ctx)
        self.insert(ctx, staging, batch)

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
        start, end = _micros(ctx.window.start), _micros(ctx.window.end)
        if unit == "ns":
            low, high = start * 1_000, end * 1_000
        else:  # smallest stored value at or after each bound: exact for integer values
            low, high = _ceil_div(start, _MICROS_PER[unit]), _ceil_div(end, _MICROS_PER[unit])
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
        column = quote_identifier(self.time_column, what="time column")
        if self._date_column:  # a date is in the window when its midnight (UTC) is
            day = _MICROS_PER["date32"]
            low = _ceil_div(_micros(ctx.window.start), day)
            high = _ceil_div(_micros(ctx.window.end), day)
            params: dict[str, Any] = {
                "window_start": date(1970, 1, 1) + timedelta(days=low),
                "window_end": date(1970, 1, 1) + timedelta(days=high),
            }
            kind = "Date32"
        else:
            params = {"window_start": ctx.window.start, "window_end": ctx.window.end}
            kind = "DateTime64(6, 'UTC')"
        sql = f"{column} >= {{window_start:{kind}}} AND {column} < {{window_end:{kind}}}"
        return sql, params

    def _swap(self, ctx: RunContext, staging: str) -> None:
        """Replace (or drop) each partition the window covers, after checking it wholly does."""
        wh = ctx.warehouse
        target = wh.table(self.target)
        database, _, staging_name = staging.rpartition(".")
        staged = {
            str(pid): int(rows)
            for pid, rows in wh.query_rows(
                "SELECT partition_id, sum(rows) FROM system.parts WHERE active "
                "AND database = {db:String} AND table = {t:String} GROUP BY partition_id",
                {"db": database, "t": staging_name},
            )
        }
        in_window, params = self._window_condition(ctx)
        previous = {
            str(pid): int(rows)
            for pid, rows in wh.query_rows(
                f"SELECT _partition_id, count() FROM {target} WHERE {in_window} "
                "GROUP BY _partition_id",  # nosec B608
                params,
            )
        }
        affected = sorted(set(staged) | set(previous))
        if not affected:
            ctx.log.info("window empty, nothing to replace", table=self.target)
            return
        for pid in affected:
            if not _PARTITION_ID.fullmatch(pid):
                raise FatalError(f"replace_window into {self.target}: odd partition id {pid!r}")
        outside = wh.query_rows(
            f"SELECT _partition_id, count() FROM {target} WHERE _partition_id IN "
            f"{{ids:Array(String)}} AND NOT ifNull(({in_window}), 0) GROUP BY _partition_id "
            "ORDER BY _partition_id LIMIT 1",  # nosec B608
            {**params, "ids": affected},
        )
        if outside:
            pid, rows = outside[0]
            raise FatalError(
                f"replace_window into {self.target}: partition {pid} also holds {rows} rows "
                f"outside the window [{ctx.window.start.isoformat()}, "
                f"{ctx.window.end.isoformat()}), which replacing it would delete; the window must "
                f"cover whole partitions, but PARTITION BY {self.partition_key} is coarser: use a "
                f"key matching the schedule, e.g. PARTITION BY toDate({self.time_column}) for "
                "daily windows"
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
            ctx.log.info(
                "partition replaced",
                table=self.target,
                partition=pid,
                rows=staged.get(pid, 0),
                replaced_rows=previous.get(pid, 0),
            )


def _readable(value: pa.Scalar) -> str:
    """A temporal scalar as ISO text (nanosecond values that Python cannot hold as-is)."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):
        return str(value)
    return python.isoformat() if isinstance(python, date) else str(python)


def clickhouse_replace_window(
    table: str, *, time_column: str, deduplicate: bool = False, insert_threads: int | None = None
) -> ClickHouseReplaceWindow:
    """Replace the run window's data in ``table``, partitioned to match the schedule.

    Every row's ``time_column`` must lie in the window.  With ``deduplicate`` each batch
    carries a deterministic ``insert_deduplication_token`` (effective when the table keeps a
    deduplication log), so a retried insert of the same batch is not doubled.
    ``insert_threads`` inserts into the staging table run at once (default
    ``RUNNER_INSERT_THREADS``).
    """
    return ClickHouseReplaceWindow(
        table, time_column=time_column, deduplicate=deduplicate, insert_threads=insert_threads
    )
