"""Keeping a file's rows to the run's window: ``time_column=`` of the file readers.

Rows whose time lies outside ``[window.start, window.end)`` are dropped while reading.
Timestamps with a zone are compared as instants; timestamps without one (the usual CSV
``2026-01-01 10:00:00``) are taken as UTC; a date counts as its midnight in UTC; text is
parsed as ISO 8601 (with or without an offset; without one, UTC).  A row whose time is
empty or cannot be parsed belongs to no window: it is rejected (see
:meth:`runner.pipeline.context.RunContext.reject`), never silently dropped.

Parquet row groups whose column statistics show no time inside the window are skipped
without being read or decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from runner.pipeline.windows import Window

_MICROS = 1_000_000
# ticks of a timestamp unit per second, as (numerator, denominator)
_PER_SECOND = {"s": (1, 1), "ms": (1000, 1), "us": (_MICROS, 1), "ns": (1_000_000_000, 1)}
_DAY = (1, 86_400)


def _micros(instant: datetime) -> int:
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


def _ceil_ticks(instant: datetime, rate: tuple[int, int]) -> int:
    """The first tick (of ``rate`` ticks per second) at or after ``instant``."""
    numerator, denominator = rate
    return -(-_micros(instant) * numerator // (denominator * _MICROS))


@dataclass(frozen=True)
class Split:
    """A batch cut to the window: the rows inside it, and the rows without a usable time."""

    inside: pa.RecordBatch
    unusable: list[int]  # row indices in the original batch
    reasons: list[str]
    #: the filter that made ``inside`` (null: dropped), None when every row is inside;
    #: applied to whatever else goes with the rows (their record numbers)
    kept: pa.BooleanArray | None = None


class TimeFilter:
    """Keeps the rows of one column's times inside the run's window."""

    def __init__(self, column: str) -> None:
        self.column = column

    def split(self, batch: pa.RecordBatch, window: Window) -> Split:
        """The rows of ``batch`` inside ``window``, and those that cannot be placed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.column not in batch.schema.names:
            raise KeyError(self.column)
        values = batch.column(self.column)
        unusable: list[int] = []
        reasons: list[str] = []
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values, unparsed = _parse_text(values)
            unusable += unparsed
            reasons += [
                f"{self.column!r} value {batch.column(self.column)[i].as_py()!r} is not an "
                "ISO 8601 date-time"
                for i in unparsed
            ]
        rate = _rate(values.type)
        if rate is None:
            raise TypeError(
                f"time_column {self.column!r} is {values.type}; it must be a timestamp, a date "
                "or ISO 8601 text"
            )
        ticks = values.view(pa.int32() if pa.types.is_date32(values.type) else pa.int64())
        empty = [i for i in pc.indices_nonzero(pc.is_null(ticks)).to_pylist() if i not in unusable]
        unusable += empty
        reasons += [f"{self.column!r} is empty: the row belongs to no window"] * len(empty)
        low, high = _ceil_ticks(window.start, rate), _ceil_ticks(window.end, rate)
        keep = pc.and_(pc.greater_equal(ticks, low), pc.less(ticks, high))
        cut = keep.false_count or keep.null_count
        inside = batch.filter(keep) if cut else batch
        order = sorted(range(len(unusable)), key=unusable.__getitem__)
        return Split(
            inside,
            [unusable[i] for i in order],
            [reasons[i] for i in order],
            keep if cut else None,
        )

    def row_groups(self, metadata: pq.FileMetaData, window: Window) -> list[int]:
        """Row groups that may hold rows of the window (all, when statistics are missing)."""
        index = next(
            (
                i
                for i in range(metadata.num_columns)
                if metadata.row_group(0).column(i).path_in_schema == self.column
            ),
            None,
        )
        groups = list(range(metadata.num_row_groups))
        if index is None or not metadata.num_row_groups:
            return groups
        kept = []
        for group in groups:
            stats = metadata.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                kept.append(group)
                continue
            low, high = _instant(stats.min), _instant(stats.max)
            if low is None or high is None or (high >= window.start and low < window.end):
                kept.append(group)
        return kept


def _rate(kind: pa.DataType) -> tuple[int, int] | None:
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return _PER_SECOND[kind.unit]
    if pa.types.is_date32(kind):
        return _DAY
    if pa.types.is_date64(kind):
        return _PER_SECOND["ms"]
    return None


def _instant(value: Any) -> datetime | None:
    """A statistics value as an instant (None when it is not a time)."""
    if isinstance(value, datetime):  # pandas' Timestamp (nanosecond units) is one too
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    return None


def _parse_text(values: pa.Array) -> tuple[pa.Array, list[int]]:
    """ISO 8601 text as ``timestamp[us, UTC]``; indices of non-empty values that do not parse."""
    import pyarrow as pa

    target = pa.timestamp("us", "UTC")
    for kind in (target, pa.timestamp("us")):  # with offsets; without (taken as UTC)
        try:
            return values.cast(kind).cast(target), []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    parsed: list[datetime | None] = []
    bad: list[int] = []
    for index, text in enumerate(values.to_pylist()):  # mixed or broken: value by value
        if text is None or not text.strip():
            parsed.append(None)
            continue
        try:
            instant = datetime.fromisoformat(text.strip())
        except ValueError:
            parsed.append(None)
            bad.append(index)
            continue
        parsed.append(instant if instant.tzinfo else instant.replace(tzinfo=UTC))
    return pa.array(parsed, target), bad
