"""Which rows belong to a run's window, for ``clickhouse_replace_window``.

Part of :mod:`runner.tools.load.replace_window`: the check that every loaded row is inside
``[window.start, window.end)`` (vectorised over the stored integers, exact for every Arrow
temporal unit) and the SQL condition selecting the window's rows of the target.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, FatalError
from runner.warehouse.sql import quote_identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.windows import Window

__all__ = ["check_in_window", "window_condition"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Microseconds per stored integer, per Arrow temporal unit; ns is handled apart.
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "date32": 86_400_000_000, "date64": 1_000}


def _micros(instant: datetime) -> int:
    return (instant - _EPOCH) // _ONE_MICROSECOND


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_in_window(batch: pa.RecordBatch, time_column: str, window: Window, where: str) -> None:
    """Refuse a batch with a row outside [window.start, window.end), vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if time_column not in batch.schema.names:
        raise ConfigError(
            f"{where}: batches need the time column {time_column!r}; "
            f"got {', '.join(batch.schema.names)}"
        )
    column = batch.column(time_column)
    if column.null_count:
        raise FatalError(
            f"{where}: column {time_column!r} has {column.null_count} null values; "
            f"every row needs a time inside the window [{window.start.isoformat()}, "
            f"{window.end.isoformat()})"
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
            f"{where}: column {time_column!r} is {kind}, not a timestamp or date; "
            "cast it before loading"
        )
    start, end = _micros(window.start), _micros(window.end)
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
            f"{where}: a row has {time_column} = {value}, outside the run window "
            f"[{window.start.isoformat()}, {window.end.isoformat()})"
        )


def window_condition(
    time_column: str, window: Window, *, date_column: bool
) -> tuple[str, dict[str, Any]]:
    """SQL selecting the window's rows of the target, with its bound parameters."""
    column = quote_identifier(time_column, what="time column")
    if date_column:  # a date is in the window when its midnight (UTC) is
        day = _MICROS_PER["date32"]
        low = _ceil_div(_micros(window.start), day)
        high = _ceil_div(_micros(window.end), day)
        params: dict[str, Any] = {
            "window_start": date(1970, 1, 1) + timedelta(days=low),
            "window_end": date(1970, 1, 1) + timedelta(days=high),
        }
        kind = "Date32"
    else:
        params = {"window_start": window.start, "window_end": window.end}
        kind = "DateTime64(6, 'UTC')"
    sql = f"{column} >= {{window_start:{kind}}} AND {column} < {{window_end:{kind}}}"
    return sql, params


def _readable(value: pa.Scalar) -> str:
    """A temporal scalar as ISO text (nanosecond values that Python cannot hold as-is)."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):
        return str(value)
    return python.isoformat() if isinstance(python, date) else str(python)
