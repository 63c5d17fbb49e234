"""Writing a run's rows to one JSON Lines or Parquet file, atomically.

Rows go to a hidden temporary file next to the target, which is renamed into place only
when the run succeeds: readers never see a half-written file, and a failed run leaves
nothing behind (and an earlier file of the same name untouched).  A successful re-run
of the same window replaces the file, so the load is idempotent per path.

The path may name the run with placeholders, e.g.
``exports/{pipeline}/{window_start}.parquet``: ``{pipeline}``, ``{run_id}``,
``{window_start}`` and ``{window_end}`` (UTC, formatted ``YYYYmmddTHHMMSS``).  A relative
path is taken from the working directory at run time; missing directories are created.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from abc import abstractmethod
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from runner.errors import ConfigError, FatalError
from runner.pipeline.steps import Loader
from runner.tools.extract.files import compression_of

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

PLACEHOLDERS = ("pipeline", "run_id", "window_start", "window_end")
WINDOW_FORMAT = "%Y%m%dT%H%M%S"
PARQUET_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


def _check_template(path: str | os.PathLike[str]) -> str:
    """Validate the path and its placeholders at declaration time."""
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(f"path must be a file path, not {type(path).__name__}")
    text = os.fspath(path)
    if not text.strip() or text.endswith(("/", os.sep)):
        raise ConfigError(f"path {text!r} must name a file")
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as exc:
        raise ConfigError(f"path {text!r}: {exc} (write '{{{{' for a literal brace)") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ConfigError(f"path {text!r}: unknown placeholder {{{name}}}; use {allowed}")
        if spec or conversion:
            raise ConfigError(f"path {text!r}: placeholder {{{name}}} takes no format")
    return text


class FileLoader(Loader):
    """Shared behaviour: resolve the path per run, write a temporary file, rename on success.

    One loader writes one file at a time; use one loader per pipeline.
    """

    label: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _check_template(path)
        self._final: Path | None = None
        self._temp: Path | None = None
        self._shown = ""
        self._rows = 0

    def describe(self) -> str:
        """E.g. ``write_parquet(exports/{window_start}.parquet)``."""
        return f"{self.step_name}({self.path})"

    def target_path(self, ctx: RunContext) -> str:
        """The path with the run's placeholders filled in (relative if given relative)."""
        return self.path.format(
            pipeline=ctx.pipeline,
            run_id=ctx.run_id,
            window_start=ctx.window.start.strftime(WINDOW_FORMAT),
            window_end=ctx.window.end.strftime(WINDOW_FORMAT),
        )

    def open(self, ctx: RunContext) -> None:
        """Pick the target and a temporary file beside it; create missing directories."""
        if self._temp is not None:
            raise FatalError(f"{self.step_name} is already writing {self._shown}")
        shown = self.target_path(ctx)
        final = Path.cwd() / Path(shown).expanduser()
        if final.is_dir():
            raise FatalError(f"{self.label} path {shown} is a directory")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FatalError(f"cannot create the directory of {shown}: {exc}") from exc
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        self._final, self._temp, self._shown, self._rows = final, temp, shown, 0
        try:
            self.begin(temp)
        except OSError as exc:
            self._discard()
            raise FatalError(f"cannot write {shown}: {exc}") from exc

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Append one batch to the temporary file."""
        if self._temp is None:
            self.open(ctx)
        try:
            self.append(batch)
        except OSError as exc:
            raise FatalError(f"cannot write {self._shown}: {exc}") from exc
        self._rows += batch.num_rows

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """On success move the finished file into place; otherwise delete it."""
        final, temp = self._final, self._temp
        if final is None or temp is None:
            return
        if not success:
            self._discard()
            ctx.log.info("file discarded", path=self._shown, reason="run failed")
            return
        try:
            self.finish()
            _fsync(temp)
            temp.replace(final)
        except OSError as exc:
            raise FatalError(f"cannot write {self._shown}: {exc}") from exc
        finally:
            self._discard()
        ctx.log.info("file written", path=self._shown, rows=self._rows, bytes=final.stat().st_size)

    def _discard(self) -> None:
        """Drop the writer and the temporary file (gone already after a rename)."""
        with suppress(Exception):
            self.abort()
        if self._temp is not None:
            with suppress(OSError):
                self._temp.unlink(missing_ok=True)
        self._final = self._temp = None

    @abstractmethod
    def begin(self, temp: Path) -> None:
        """Start writing ``temp``."""

    @abstractmethod
    def append(self, batch: pa.RecordBatch) -> None:
        """Write one batch."""

    @abstractmethod
    def finish(self) -> None:
        """Complete the file (footer, flush) and close it."""

    @abstractmethod
    def abort(self) -> None:
        """Close without completing; must not raise when nothing is open."""


def _fsync(path: Path) -> None:
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


class JsonLinesLoader(FileLoader):
    """One JSON object per row and line, UTF-8; compressed when the path ends in .gz/.zst/.bz2.

    Timestamps and dates are ISO 8601 text, bytes base64 text, decimals text (no digits
    lost), durations seconds, NaN and infinities null.
    """

    name = "write_jsonl"
    label = "JSONL"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._stream: pa.NativeFile | None = None

    def begin(self, temp: Path) -> None:
        """Open the (compressing) output stream."""
        import pyarrow as pa

        # the codec follows the final name: the temporary name ends in .tmp
        codec = compression_of(self._final or temp)
        self._stream = pa.output_stream(str(temp), compression=codec)

    def append(self, batch: pa.RecordBatch) -> None:
        """Encode the batch's rows and write them in one call."""
        if self._stream is None:
            raise FatalError(f"{self.step_name}: write() before open()")
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
            raise FatalError(f"JSONL file {self._shown}: a row cannot be written: {exc}") from exc
        if lines:
            self._stream.write(("\n".join(lines) + "\n").encode())

    def finish(self) -> None:
        """Flush and close the stream (writes the compression trailer)."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()

    def abort(self) -> None:
        """Close the stream."""
        self.finish()


class ParquetLoader(FileLoader):
    """A Parquet file whose schema is the first batch's; later batches are cast to it.

    Each batch becomes (at least) one row group.  A run without rows writes a valid file
    without columns, so re-running an empty window still replaces an older file.
    """

    name = "write_parquet"
    label = "Parquet"

    def __init__(self, path: str | os.PathLike[str], *, compression: str = "zstd") -> None:
        super().__init__(path)
        if not isinstance(compression, str) or compression.lower() not in PARQUET_COMPRESSIONS:
            raise ConfigError(
                f"compression must be one of {', '.join(PARQUET_COMPRESSIONS)}, not {compression!r}"
            )
        self.compression = compression.lower()
        self._writer: Any = None
        self._schema: pa.Schema | None = None
        self._file: Path | None = None

    def begin(self, temp: Path) -> None:
        """Remember the file; the writer needs the first batch's schema."""
        self._file, self._writer, self._schema = temp, None, None

    def _start(self, schema: pa.Schema) -> pa.Schema:
        import pyarrow.parquet as pq

        if self._file is None:
            raise FatalError(f"{self.step_name}: write() before open()")
        self._writer = pq.ParquetWriter(str(self._file), schema, compression=self.compression)
        self._schema = schema
        return schema

    def append(self, batch: pa.RecordBatch) -> None:
        """Write the batch as a row group, cast to the file's schema."""
        import pyarrow as pa

        schema = self._schema if self._schema is not None else self._start(batch.schema)
        if not batch.schema.equals(schema):
            names, wanted = batch.schema.names, schema.names
            if sorted(names) != sorted(wanted):
                missing = [n for n in wanted if n not in names]
                extra = [n for n in names if n not in wanted]
                raise FatalError(
                    f"Parquet file {self._shown}: a batch's columns differ from the first "
                    f"batch's (missing: {', '.join(missing) or '-'}; "
                    f"unexpected: {', '.join(extra) or '-'})"
                )
            try:
                batch = batch.select(wanted).cast(schema)
            except pa.ArrowException as exc:
                raise FatalError(
                    f"Parquet file {self._shown}: a batch does not fit the first batch's "
                    f"types: {exc}"
                ) from exc
        self._writer.write_batch(batch)

    def finish(self) -> None:
        """Write the footer (an empty file when no batch came)."""
        import pyarrow as pa

        if self._writer is None:
            self._start(pa.schema([]))
        writer, self._writer = self._writer, None
        writer.close()

    def abort(self) -> None:
        """Close the writer, if any; the file is deleted by the caller."""
        writer, self._writer, self._schema = self._writer, None, None
        if writer is not None:
            writer.close()


def write_jsonl(path: str | os.PathLike[str]) -> JsonLinesLoader:
    """Write the run's rows as JSON Lines to ``path`` (placeholders allowed, see module doc).

    ``.gz``, ``.zst`` and ``.bz2`` paths are compressed.
    """
    return JsonLinesLoader(path)


def write_parquet(path: str | os.PathLike[str], *, compression: str = "zstd") -> ParquetLoader:
    """Write the run's rows to one Parquet file at ``path`` (placeholders allowed)."""
    return ParquetLoader(path, compression=compression)
