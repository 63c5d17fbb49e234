"""What ``runner health`` says about the data: target tables and rows per window.

Per table a pipeline fills (its ClickHouse loaders' targets, the tables its checks and
freshness expectations name): the rows stored (``count()``, before merges on
ReplacingMergeTree tables: cheap, no FINAL) and the newest value of its time column when
one is known (a replace-window loader's, a check's or a freshness column), plus when a
part was last written.  Per pipeline: the rows the latest finished window loaded against
the average of the succeeded windows before it (``volume`` in the declaration): none at
all, or fewer than ``min_fraction`` of that average, is unhealthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import RunnerError

if TYPE_CHECKING:
    from runner.pipeline.kinds import Pipeline
    from runner.state.runs import RunHistory
    from runner.warehouse.client import Warehouse


@dataclass(frozen=True)
class TableCount:
    """One target table of a pipeline, as stored now."""

    pipeline: str
    table: str
    rows: int | None
    time_column: str | None
    latest: str | None
    last_written: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For ``--output json``."""
        return dict(self.__dict__)


def pipeline_tables(pipeline: Pipeline) -> dict[str, str | None]:
    """Tables ``pipeline`` fills or checks, each with a time column when one is declared."""
    tables: dict[str, str | None] = {}
    for node in _nodes(pipeline):
        loader = getattr(node, "loader", None)
        target = getattr(loader, "target", None)
        if isinstance(target, str):
            tables.setdefault(target, getattr(loader, "time_column", None))
        for check in node.spec.checks:
            table = getattr(check, "table", None)
            if table is not None and not tables.get(table):
                tables[table] = getattr(check, "time_column", None)
        for expectation in node.spec.freshness:
            if not tables.get(expectation.table):
                tables[expectation.table] = expectation.column
    return tables


def _nodes(pipeline: Pipeline) -> Iterator[Pipeline]:
    yield pipeline
    for child in pipeline.children():
        yield from _nodes(child)


def table_count(warehouse: Warehouse, pipeline: str, table: str, column: str | None) -> TableCount:
    """Rows, newest time and last write of one table (an error is reported, not raised)."""
    database, _, name = table.rpartition(".")
    newest = (
        f"toString(toDateTime64(max(`{column}`), 3, 'UTC'))"
        if column
        else "CAST(NULL, 'Nullable(String)')"
    )
    try:
        rows, latest = warehouse.query_rows(
            f"SELECT count(), {newest} FROM {warehouse.table(table)}"  # nosec B608
        )[0]
        written = warehouse.query_rows(
            "SELECT toString(max(modification_time)) FROM system.parts WHERE active "
            "AND database = {db:String} AND table = {t:String} HAVING count() > 0",
            {"db": database or warehouse.database, "t": name},
        )
    except RunnerError as exc:
        return TableCount(pipeline, table, None, column, None, None, str(exc))
    last = str(written[0][0]) if written else None
    return TableCount(pipeline, table, int(rows), column, latest, last)


def volume_problem(pipeline: Pipeline, history: RunHistory) -> tuple[bool, str] | None:
    """Whether the latest finished window's rows look healthy, and why (None: no data yet)."""
    volume = pipeline.spec.volume
    finished = [r for r in history.recent(pipeline.name, volume.windows + 20) if r.finished_at]
    succeeded = [r for r in finished if r.status == "succeeded"]
    if not succeeded:
        return None
    latest, earlier = succeeded[0], succeeded[1 : volume.windows + 1]
    window = f"window [{latest.window_start.isoformat()}, {latest.window_end.isoformat()})"
    if not earlier:
        return True, f"{window} loaded {latest.rows_loaded} rows (nothing to compare with yet)"
    average = sum(r.rows_loaded for r in earlier) / len(earlier)
    detail = (
        f"{window} loaded {latest.rows_loaded} rows; the {len(earlier)} windows before it "
        f"{average:.1f} on average"
    )
    if latest.rows_loaded == 0 and average > 0 and not volume.allow_empty:
        return False, f"{detail}: an empty window"
    if volume.min_fraction is not None and latest.rows_loaded < volume.min_fraction * average:
        return False, f"{detail}: below min_fraction={volume.min_fraction}"
    return True, detail
