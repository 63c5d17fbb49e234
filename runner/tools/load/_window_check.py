"""Every row a replace-window load writes must lie in the run's window: the check.

Part of :mod:`runner.tools.load.replace_window`, vectorised over the stored integers and
exact for every Arrow temporal unit; which rows of the *table* are the window's is
:mod:`runner.tools.load.window_rows`.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from runner.errors import ConfigError, FatalError
from runner.tools.load.window_rows import MICROS_PER_DAY, ceil_div, micros

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.windows import Window

__all__ = ["check_in_window"]

# Microseconds per stored integer, per Arrow temporal unit; ns is handled apart.
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "date32": MICROS_PER_DAY, "date64": 1_000}


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
    start, end = micros(window.start), micros(window.end)
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
            f"{where}: a row has {time_column} = {value}, outside the run window "
            f"[{window.start.isoformat()}, {window.end.isoformat()})"
        )


def _readable(value: pa.Scalar) -> str:
    """A temporal scalar as ISO text (nanosecond values that Python cannot hold as-is)."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):
        return str(value)
    return python.isoformat() if isinstance(python, date) else str(python)
