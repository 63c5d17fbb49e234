"""One schema for every batch of a run: checking a file's columns, fitting its batches.

Part of :mod:`runner.tools.extract._file_source`; functions of the source they check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import FatalError

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.tools.extract._file_source import FileSource

__all__ = ["Shape", "check_columns", "check_filename_column", "fit"]


@dataclass
class Shape:
    """The schema every batch of a run gets, and where it came from (for messages)."""

    target: pa.Schema | None
    origin: str


def check_filename_column(source: FileSource, target: pa.Schema) -> None:
    if source.filename_column is not None and source.filename_column in target.names:
        raise FatalError(
            f"filename_column {source.filename_column!r} is already a column of the files"
        )


def check_columns(
    source: FileSource, schema: pa.Schema, wanted: list[str] | None, shown: str, origin: str
) -> None:
    """Fail on duplicate names, and on missing (unless allowed) or extra columns."""
    names = schema.names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise source.error(shown, f"duplicate columns {', '.join(duplicates)}")
    if wanted is None:
        return
    missing = [] if source.missing_columns == "null" else [n for n in wanted if n not in names]
    extra = [] if source.selects_columns else [n for n in names if n not in wanted]
    if missing or extra:
        detail = "; ".join(
            text
            for text in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            )
            if text
        )
        hint = " (missing_columns='null' reads missing columns as null)" if missing else ""
        raise source.error(shown, f"columns do not match {origin}: {detail}{hint}")


def fit(source: FileSource, batch: pa.RecordBatch, shape: Shape, shown: str) -> pa.RecordBatch:
    import pyarrow as pa

    target = shape.target
    assert target is not None  # noqa: S101 - set before the first batch is conformed
    if batch.schema.equals(target):
        return batch
    try:
        if batch.schema.names != target.names:
            present = batch.schema.names
            if source.missing_columns == "null" and not all(n in present for n in target.names):
                columns = [
                    batch.column(f.name) if f.name in present else pa.nulls(batch.num_rows, f.type)
                    for f in target
                ]
                batch = pa.RecordBatch.from_arrays(columns, names=target.names)
            else:
                batch = batch.select(target.names)
        return batch.cast(target)
    except (pa.ArrowException, KeyError) as exc:
        raise source.error(shown, f"does not fit {shape.origin}: {exc}") from exc
