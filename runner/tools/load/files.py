"""Writing a run's rows to one JSON Lines or Parquet file, atomically.

Rows go to a hidden temporary file next to the target, which is renamed into place only
when the run succeeds: readers never see a half-written file, and a failed run leaves
nothing behind (and an earlier file of the same name untouched).  A successful re-run
of the same window replaces the file, so the load is idempotent per path.

The path may name the run with placeholders, e.g.
``exports/{pipeline}/{window_start}.parquet``: ``{pipeline}``, ``{run_id}``,
``{window_start}`` and ``{window_end}`` (UTC, formatted ``YYYYmmddTHHMMSS``).  A relative
path is taken from the working directory at run time; missing directories are created.

A loader object serves every run of its pipeline in the process (parallel backfill
windows run it at once), so each run's file lives in the run's step state.  Two runs of
this process never write one path at once (the second fails, naming the first), and a
run counts its rows as loaded only once its file is confirmed: the finished temporary
file is read back (Parquet: its footer; JSON Lines: its lines) and must hold every row
written, and after the rename the path must hold that very file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import threading
from abc import ABC, abstractmethod
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


class _Paths:
    """Files being written in this process, so two runs never write one path at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[Path, str] = {}

    def claim(self, path: Path, owner: str) -> str | None:
        """Take ``path`` for ``owner``; the current owner when another run has it."""
        with self._lock:
            holder = self._owners.setdefault(path, owner)
        return None if holder == owner else holder

    def release(self, path: Path, owner: str) -> None:
        """Give ``path`` back (only its owner can)."""
        with self._lock:
            if self._owners.get(path) == owner:
                del self._owners[path]


_WRITING = _Paths()


class FileLoader(Loader):
    """Shared behaviour: resolve the path per run, write a temporary file, rename on success.

    The run's file is confirmed before it counts: its rows are read back from the
    temporary file before the rename (a mismatch fails the run and leaves an older file
    in place), and after the rename the file at the path must be that same file.  Rows
    are counted as loaded only then.
    """

    label: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _check_template(path)

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

    @staticmethod
    def _owner(ctx: RunContext) -> str:
        return f"run {ctx.run_id} ({ctx.node})"

    def open(self, ctx: RunContext) -> None:
        """Pick the target and a temporary file beside it; create missing directories."""
        state = ctx.step_state(self)
        if state.get("file") is not None:
            raise FatalError(f"{self.step_name} is already writing {state['file'].shown}")
        state["confirmed"] = 0
        shown = self.target_path(ctx)
        final = Path.cwd() / Path(shown).expanduser()
        if final.is_dir():
            raise FatalError(f"{self.label} path {shown} is a directory")
        holder = _WRITING.claim(final, self._owner(ctx))
        if holder is not None:
            raise FatalError(
                f"{self.label} path {shown} is being written by {holder}: two runs must not "
                "write one file (put {window_start} or {run_id} in the path)"
            )
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _WRITING.release(final, self._owner(ctx))
            raise FatalError(f"cannot create the directory of {shown}: {exc}") from exc
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        try:
            state["file"] = self.begin(final=final, temp=temp, shown=shown)
        except OSError as exc:
            _WRITING.release(final, self._owner(ctx))
            with suppress(OSError):
                temp.unlink(missing_ok=True)
            raise FatalError(f"cannot write {shown}: {exc}") from exc

    def _file(self, ctx: RunContext) -> FileWriter:
        file: FileWriter | None = ctx.step_state(self).get("file")
        if file is None:
            self.open(ctx)
            file = ctx.step_state(self)["file"]
        return file

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Append one batch to the run's temporary file."""
        file = self._file(ctx)
        try:
            file.append(batch)
        except OSError as exc:
            raise FatalError(f"cannot write {file.shown}: {exc}") from exc
        file.rows += batch.num_rows

    def rows_written(self, ctx: RunContext) -> int:
        """Rows of the file this run put in place (0 until it is confirmed there)."""
        return int(ctx.step_state(self).get("confirmed", 0))

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """On success confirm the finished file and move it into place; else delete it."""
        file: FileWriter | None = ctx.step_state(self).pop("file", None)
        if file is None:
            return
        try:
            if not success:
                _discard(file)
                ctx.log.info("file discarded", path=file.shown, reason="run failed")
                return
            self._put_in_place(file)
        finally:
            _WRITING.release(file.final, self._owner(ctx))
        ctx.step_state(self)["confirmed"] = file.rows
        size = file.final.stat().st_size
        ctx.log.info("file written", path=file.shown, rows=file.rows, bytes=size)

    def _put_in_place(self, file: FileWriter) -> None:
        """Finish, check what is on disk, rename; the renamed file must be the checked one."""
        try:
            try:
                file.finish()
                _fsync(file.temp)
                found = file.rows_in(file.temp)
                written = file.temp.stat()
            except OSError as exc:
                raise FatalError(f"cannot write {file.shown}: {exc}") from exc
            if found != file.rows:
                raise FatalError(
                    f"{self.label} file {file.shown}: {file.rows} rows were written but the "
                    f"finished file holds {found}; it was not put in place"
                )
            try:
                file.temp.replace(file.final)
                placed = file.final.stat()
            except OSError as exc:
                raise FatalError(f"cannot write {file.shown}: {exc}") from exc
        finally:
            _discard(file)
        if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
            raise FatalError(
                f"{self.label} file {file.shown} was replaced by another writer right after "
                "this run put its file there; one path takes one writer"
            )

    @abstractmethod
    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """Start writing ``temp`` (to become ``final``); ``shown`` names it in messages."""


def _discard(file: FileWriter) -> None:
    """Drop the writer and the temporary file (gone already after a rename)."""
    with suppress(Exception):
        file.abort()
    with suppress(OSError):
        file.temp.unlink(missing_ok=True)


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


class _JsonLinesFile(FileWriter):
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


class JsonLinesLoader(FileLoader):
    """One JSON object per row and line, UTF-8; compressed when the path ends in .gz/.zst/.bz2.

    Timestamps and dates are ISO 8601 text, bytes base64 text, decimals text (no digits
    lost), durations seconds, NaN and infinities null.
    """

    name = "write_jsonl"
    label = "JSONL"

    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """Open the (compressing) output stream."""
        return _JsonLinesFile(final=final, temp=temp, shown=shown)


class _ParquetFile(FileWriter):
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

    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """The writer starts with the first batch (its schema is the file's)."""
        return _ParquetFile(final=final, temp=temp, shown=shown, compression=self.compression)


def write_jsonl(path: str | os.PathLike[str]) -> JsonLinesLoader:
    """Write the run's rows as JSON Lines to ``path`` (placeholders allowed, see module doc).

    ``.gz``, ``.zst`` and ``.bz2`` paths are compressed.
    """
    return JsonLinesLoader(path)


def write_parquet(path: str | os.PathLike[str], *, compression: str = "zstd") -> ParquetLoader:
    """Write the run's rows to one Parquet file at ``path`` (placeholders allowed).

    ``compression`` is one of none, snappy, gzip, brotli, lz4 or zstd (the default).
    """
    return ParquetLoader(path, compression=compression)
