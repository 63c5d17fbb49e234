"""Which rows of a table belong to a run's window: one reading for loaders and checks.

A row is in the window when its time column lies in ``[start, end)``.  A date column
counts a day as in the window when its midnight (UTC) is, so a daily window holds its
own day and nothing else.  The replace-window loader swaps exactly these rows, and the
data checks (:mod:`runner.services.data_checks`) look at exactly these rows.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.warehouse.sql import quote_identifier

if TYPE_CHECKING:
    from runner.pipeline.windows import Window
    from runner.warehouse.client import Warehouse

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
MICROS_PER_DAY = 86_400_000_000


def micros(instant: datetime) -> int:
    """Microseconds since the epoch."""
    return (instant - _EPOCH) // _ONE_MICROSECOND


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up."""
    return -(-a // b)


def time_column_is_date(
    warehouse: Warehouse, database: str, table: str, column: str, *, what: str
) -> bool:
    """Whether ``column`` is a date (else a date-time); anything else is refused.

    ``what`` starts the messages (the loader or check asking).
    """
    rows = warehouse.query_rows(
        "SELECT type FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} AND name = {c:String}",
        {"db": database, "t": table, "c": column},
    )
    if not rows:
        raise ConfigError(f"{what}: table {database}.{table} has no column {column!r}")
    column_type = str(rows[0][0])
    bare = re.sub(r"^(?:Nullable|LowCardinality)\((.*)\)$", r"\1", column_type)
    if bare in {"Date", "Date32"}:
        return True
    if bare.startswith("DateTime"):
        return False
    raise ConfigError(
        f"{what}: column {database}.{table}.{column} is {column_type}; "
        "it must be a Date, Date32, DateTime or DateTime64"
    )


def window_condition(
    column: str, window: Window, *, date_column: bool
) -> tuple[str, dict[str, Any]]:
    """SQL selecting the window's rows by ``column``, with its bound parameters.

    The parameters are ``window_start`` and ``window_end``.
    """
    quoted = quote_identifier(column, what="time column")
    if date_column:  # a date is in the window when its midnight (UTC) is
        low = ceil_div(micros(window.start), MICROS_PER_DAY)
        high = ceil_div(micros(window.end), MICROS_PER_DAY)
        params: dict[str, Any] = {
            "window_start": date(1970, 1, 1) + timedelta(days=low),
            "window_end": date(1970, 1, 1) + timedelta(days=high),
        }
        kind = "Date32"
    else:
        params = {"window_start": window.start, "window_end": window.end}
        kind = "DateTime64(6, 'UTC')"
    sql = f"{quoted} >= {{window_start:{kind}}} AND {quoted} < {{window_end:{kind}}}"
    return sql, params
