"""The file writers behind ``write_jsonl`` and ``write_parquet``: one temporary file each.

Part of :mod:`runner.tools.load.files`, which owns paths, renames and run bookkeeping; a
writer only appends batches to its temporary file, finishes (flushed to disk) or aborts,
and counts the rows a finished file holds.
"""

from __future__ import annotations

import base64
import json
import os
from abc import ABC, abstractmethod
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from runner.errors import FatalError
from runner.tools.extract.files import compression_of

if TYPE_CHECKING:
    import pyarrow as pa


__all__ = ["FileWriter", "JsonLinesFile", "ParquetFile", "fsync"]


class FileWriter(ABC):
    """One run's file being written: the temporary file, its format's writer, its rows.

    A loader object is shared by every run of its pipeline in the process (parallel
    backfill windows run it at once), so everything about one file lives here, in the
    run's step state, never on the loader.
    """

    def __init__(self, *, final: Path, temp: Path, shown: str) -> None:
        self.final = final
        self.temp = temp
        self.shown = shown
        self.rows = 0

    @abstractmethod
    def append(self, batch: pa.RecordBatch) -> None:
        """Write one batch."""

    @abstractmethod
    def finish(self) -> None:
        """Complete the file (footer, flush) and close it."""

    @abstractmethod
    def abort(self) -> None:
        """Close without completing; must not raise when nothing is open."""

    @abstractmethod
    def rows_in(self, path: Path) -> int:
        """Rows a finished file of this format holds, read back from disk."""


def fsync(path: Path) -> None:
    """Flush the file to disk before the rename, so a crash cannot leave it empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_value(value: object) -> Any:
    """JSON for what ``json`` cannot encode itself; bytes become base64 text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        return str(value)  # as text: a float would lose digits
    isoformat = getattr(value, "isoformat", None)  # e.g. pandas.Timestamp for nanoseconds
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"{type(value).__name__} values cannot be written as JSON")


def _finite_or_null(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and infinities become null: JSON has no way to write them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(batch.schema):
        if pa.types.is_floating(field.type):
            column = batch.column(index)
            finite = pc.is_finite(column)
            if not pc.all(finite).as_py():
                fixed = pc.if_else(finite, column, pa.scalar(None, field.type))
                batch = batch.set_column(index, field, fixed)
    return batch


class JsonLinesFile(FileWriter):
    """One JSON Lines file, through a (compressing) output stream."""

    def __init__(self, *, final: Path, temp: Path, shown: str) -> None:
        import pyarrow as pa

        super().__init__(final=final, temp=temp, shown=shown)
        # the codec follows the final name: the temporary name ends in .tmp
        self.codec = compression_of(final)
        self.stream: pa.NativeFile | None = pa.output_stream(str(temp), compression=self.codec)

    def append(self, batch: pa.RecordBatch) -> None:
        """Encode the batch's rows and write them in one call."""
        if self.stream is None:
            raise FatalError(f"JSONL file {self.shown}: write after the file was closed")
        try:
            lines = [
                json.dumps(
                    row,
                    default=_json_value,
                    ensure_ascii=False,
                    allow_nan=False,
                    separators=(",", ":"),
                )
                for row in _finite_or_null(batch).to_pylist()
            ]
        except (TypeError, ValueError) as exc:
            raise FatalError(f"JSONL file {self.shown}: a row cannot be written: {exc}") from exc
        if lines:
            self.stream.write(("\n".join(lines) + "\n").encode())

    def finish(self) -> None:
        """Flush and close the stream (writes the compression trailer)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            stream.close()

    def abort(self) -> None:
        """Close the stream."""
        self.finish()

    def rows_in(self, path: Path) -> int:
        """Lines of the file, decompressed (a row is one line: JSON escapes newlines)."""
        import pyarrow as pa

        lines = 0
        with pa.input_stream(str(path), compression=self.codec) as stream:
            while chunk := stream.read(1 << 20):
                lines += chunk.count(b"\n")
        return lines


class ParquetFile(FileWriter):
    """One Parquet file whose schema is its first batch's."""

    def __init__(self, *, final: Path, temp: Path, shown: str, compression: str) -> None:
        super().__init__(final=final, temp=temp, shown=shown)
        self.compression = compression
        self.writer: Any = None
        self.schema: pa.Schema | None = None

    def _start(self, schema: pa.Schema) -> pa.Schema:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(str(self.temp), schema, compression=self.compression)
        self.schema = schema
        return schema

    def append(self, batch: pa.RecordBatch) -> None:
        """Write the batch as a row group, cast to the file's schema."""
        import pyarrow as pa

        schema = self.schema if self.schema is not None else self._start(batch.schema)
        if not batch.schema.equals(schema):
            names, wanted = batch.schema.names, schema.names
            if sorted(names) != sorted(wanted):
                missing = [n for n in wanted if n not in names]
                extra = [n for n in names if n not in wanted]
                raise FatalError(
                    f"Parquet file {self.shown}: a batch's columns differ from the first "
                    f"batch's (missing: {', '.join(missing) or '-'}; "
                    f"unexpected: {', '.join(extra) or '-'})"
                )
            try:
                batch = batch.select(wanted).cast(schema)
            except pa.ArrowException as exc:
                raise FatalError(
                    f"Parquet file {self.shown}: a batch does not fit the first batch's "
                    f"types: {exc}"
                ) from exc
        self.writer.write_batch(batch)

    def finish(self) -> None:
        """Write the footer (a file without columns when no batch came)."""
        import pyarrow as pa

        if self.writer is None:
            self._start(pa.schema([]))
        writer, self.writer = self.writer, None
        writer.close()

    def abort(self) -> None:
        """Close the writer, if any; the file is deleted by the caller."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def rows_in(self, path: Path) -> int:
        """Rows in the file's footer."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return int(pq.read_metadata(str(path)).num_rows)
        except pa.ArrowException as exc:
            raise OSError(f"the finished file cannot be read back: {exc}") from exc
