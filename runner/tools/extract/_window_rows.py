"""Keeping the rows of the run's window (``time_column=``), rejecting rows without a time.

Part of :mod:`runner.tools.extract._file_source`; the time arithmetic is
:mod:`runner.tools.extract._file_window`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from runner.errors import printable
from runner.tools.extract.source_records import RecordNumbers, number_at

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.tools.extract._file_source import FileSource, Piece, Reading

__all__ = ["dropped", "in_window", "kept_numbers"]


def in_window(
    source: FileSource,
    batch: pa.RecordBatch,
    reading: Reading,
    piece: Piece,
    numbers: RecordNumbers | None,
) -> tuple[pa.RecordBatch, RecordNumbers | None]:
    """The rows inside the run's window (and their record numbers, cut alike).

    Rows without a usable time are rejected.
    """
    assert source.time_filter is not None  # noqa: S101 - only called with a filter
    entry, ctx, rows_before = reading.entry, reading.ctx, reading.rows
    try:
        cut = source.time_filter.split(batch, ctx.window)
    except KeyError:
        raise source.error(
            entry.shown, f"has no column {source.time_column!r} (time_column)"
        ) from None
    except TypeError as exc:
        raise source.error(entry.shown, str(exc)) from None
    if cut.unusable:
        lines = piece.lines
        where = [
            f"line {lines(i)}" if lines is not None else f"row {rows_before + i + 1}"
            for i in cut.unusable
        ]
        reasons = [
            printable(f"{source.label} file {entry.shown}: {at}: {why}")
            for at, why in zip(where, cut.reasons, strict=True)
        ]
        ctx.reject(dropped(batch, cut.unusable, reading, numbers), reasons, source.step_name)
    if cut.kept is None or numbers is None:
        return cut.inside, numbers
    return cut.inside, kept_numbers(numbers, cut.kept)


def dropped(
    batch: pa.RecordBatch,
    indices: list[int],
    reading: Reading,
    numbers: RecordNumbers | None,
) -> list[dict[str, Any]]:
    """Rows the reader rejects, for the quarantine: as the file held them where proven."""
    taken = batch.take(indices)
    rows: list[dict[str, Any]] = taken.to_pylist()
    origins, ctx = reading.origins, reading.ctx
    if origins is None or numbers is None or ctx.reject_sink is None:
        return rows  # no records kept, or the run fails on the first row anyway
    try:
        found = origins.dropped(reading.entry, [number_at(numbers, i) for i in indices], taken)
    except Exception as exc:  # noqa: BLE001 - an error path must not fail on its extras
        ctx.log.warning("source records not read", path=reading.entry.shown, error=str(exc))
        return rows
    return [
        row if record is None else dict(record) for row, record in zip(rows, found, strict=True)
    ]


def kept_numbers(numbers: RecordNumbers, kept: pa.BooleanArray) -> RecordNumbers:
    """``numbers`` filtered as the rows were (a null in ``kept`` drops the row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(numbers, range):
        positions = pc.indices_nonzero(pc.fill_null(kept, False)).cast(pa.int64())
        return cast("pa.Int64Array", pc.add(positions, numbers.start))
    return cast("pa.Int64Array", numbers.filter(kept))
