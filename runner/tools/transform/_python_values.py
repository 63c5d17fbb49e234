"""Arrow batches as Python rows, for the row-level transforms (map/filter, validation).

The values are those of pyarrow's ``to_pylist``, but timestamps are built faster:
pyarrow makes every datetime through the time-zone database, about 3 µs a value, which
is 0.18 s of a 65,536-row batch with one timestamp column and more than half the cost of
a typical ``map_rows``.  numpy turns the same microseconds into naive datetimes in a few
milliseconds, and attaching the zone to each is cheap.  Anything unusual (nanoseconds,
years outside 1-9999, no numpy) takes pyarrow's own path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Microseconds since the epoch of (about) the first and last instant a datetime can hold.
_MIN_MICROS = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def column_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The column's values as Python objects, as ``column.to_pylist()`` gives them."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit != "ns":
        values = _timestamps(column)
        if values is not None:
            return values
    return column.to_pylist()  # type: ignore[no-any-return]


def batch_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch as a list of row dicts, as ``batch.to_pylist()`` gives them."""
    return rows_of(batch.schema.names, [column_values(column) for column in batch.columns])


def rows_of(names: list[str], columns: list[list[Any]]) -> list[dict[str, Any]]:
    """Row dicts from column value lists of equal length."""
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _timestamps(column: pa.Array | pa.ChunkedArray) -> list[Any] | None:
    """Datetimes built through numpy, or None to let pyarrow do it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        import numpy  # noqa: F401 - to_numpy needs it; it is optional for pyarrow
    except ImportError:  # pragma: no cover - numpy comes with the embedded engine
        return None
    if len(column) == column.null_count:
        return None
    micros = column.cast(pa.timestamp("us"))  # the stored UTC instants, without the zone
    bounds = pc.min_max(micros.cast(pa.int64()))
    if bounds["min"].as_py() < _MIN_MICROS or bounds["max"].as_py() > _MAX_MICROS:
        return None
    naive: list[datetime | None] = micros.to_numpy(zero_copy_only=False).tolist()
    if column.type.tz is None:
        return naive
    zone = next(v for v in column if v.is_valid).as_py().tzinfo  # pyarrow's own tzinfo
    if _is_utc(zone):
        return [None if v is None else v.replace(tzinfo=zone) for v in naive]
    return [None if v is None else v.replace(tzinfo=UTC).astimezone(zone) for v in naive]


def _is_utc(zone: Any) -> bool:
    """Whether ``zone`` is UTC itself (not a zone that is at +00:00 only in winter)."""
    return str(zone) in {"UTC", "Etc/UTC", "UTC+00:00", "+00:00", "Z"}


def quarantinable_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch as row dicts for the quarantine table, whatever its values.

    A column whose values Python cannot hold (a date after year 9999, a timestamp in
    nanoseconds beyond datetime's range) is given as Arrow's own text of each value,
    so a row that does not fit a table can still be stored and read.
    """
    import pyarrow as pa

    columns: list[list[Any]] = []
    for column in batch.columns:
        try:
            columns.append(column_values(column))
        except (ValueError, OverflowError, pa.ArrowException):
            columns.append(column.cast(pa.string()).to_pylist())
    return rows_of(batch.schema.names, columns)
