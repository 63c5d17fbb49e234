"""The shared part of the file readers: one run's files read into batches of one schema.

:class:`FileSource` resolves the run's files (``_file_paths``), opens what they hold
(``_file_archives``), checks each file's columns against the run's schema, converts its
batches to it and keeps the rows of the window (``_file_window``).  How a file becomes
batches is the reader's: Parquet through :meth:`FileSource.open_file`, the text formats
block by block with rows that do not fit rejected through ``ctx.reject``
(``_file_text``).  Readers with ``keeps_records`` (JSON Lines) also note each row's entry
and record number, cut with the rows, so the quarantine can store a row as its line held
it (``source_records``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from runner.errors import ConfigError, FatalError, printable
from runner.pipeline.steps import Extractor
from runner.tools.extract._file_archives import Entry, UnreadableFile, entries
from runner.tools.extract._file_lines import is_blank_line
from runner.tools.extract._file_options import FileOptions, zone_of
from runner.tools.extract._file_paths import (
    MissingFiles,
    Paths,
    resolve_paths,
)
from runner.tools.extract._file_shape import Shape, check_columns, check_filename_column, fit
from runner.tools.extract._file_window import TimeFilter
from runner.tools.extract._gather import Gather
from runner.tools.extract._window_rows import in_window
from runner.tools.extract.source_records import RecordNumbers, SourceRows
from runner.tools.options import parse_options

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

MissingColumns = Literal["fail", "null"]


# pyarrow reports an empty input with these messages; such a file just has no rows.
_EMPTY_INPUT = ("Empty CSV file", "Empty JSON stream")


#: A row's line in its file, by the row's index in its batch (text files only).
RowLines = Callable[[int], int]


@dataclass
class Piece:
    """A batch read from a file, and where its rows are (if the reader knows)."""

    batch: pa.RecordBatch
    records: RecordNumbers | None = None  # record numbers (non-blank lines before each row)
    lines: RowLines | None = None


@dataclass
class Reading:
    """One file being read, and how far it got."""

    entry: Entry
    shape: Shape
    ctx: RunContext
    stack: ExitStack
    rows: int = 0  # rows parsed so far (inside the window or not)
    kept: int = 0  # rows inside the window
    origins: SourceRows | None = None  # where rows came from (readers keeping records)


class FileSource(Extractor):
    """Shared behaviour: resolve files, keep one schema, name the file in every error."""

    label: ClassVar[str] = "file"
    #: Note each row's entry and record number, to find its record for the quarantine
    #: (JSON Lines: a batch cannot tell a missing key from a null; see source_records).
    keeps_records: ClassVar[bool] = False

    def __init__(
        self,
        paths: Paths,
        *,
        filename_column: str | None = None,
        time_column: str | None = None,
        timezone: str | None = None,
        missing_files: MissingFiles = "fail",
        missing_columns: MissingColumns = "fail",
    ) -> None:
        options = parse_options(
            FileOptions,
            self.name,
            paths=paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
            missing_columns=missing_columns,
        )
        self.patterns = options.paths
        self.filename_column = options.filename_column
        self.time_column = options.time_column
        self.time_filter = TimeFilter(self.time_column) if self.time_column else None
        self.timezone = options.timezone
        self.zone = zone_of(options.timezone)
        self.missing_files: MissingFiles = options.missing_files
        self.missing_columns: MissingColumns = options.missing_columns
        fixed = self.fixed_schema
        if filename_column is not None and fixed is not None and filename_column in fixed.names:
            raise ConfigError(
                f"filename_column {filename_column!r} is already a column of the schema"
            )
        named = fixed.names if fixed is not None else self.wanted_columns
        if self.time_column is not None and named is not None and self.time_column not in named:
            raise ConfigError(
                f"time_column {self.time_column!r} is not one of the columns read "
                f"({', '.join(named)})"
            )

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The schema chosen by the author, if any (otherwise the first file's)."""
        return None

    @property
    def selects_columns(self) -> bool:
        """Whether files may hold more columns than are read (the author chose a subset)."""
        return False

    @property
    def wanted_columns(self) -> list[str] | None:
        """Columns every file must have before a schema is known, if the author named them."""
        return None

    @property
    def schema_at_open(self) -> bool:
        """Whether a file's own schema is reliable before any row is read (Parquet)."""
        return False

    @property
    def blank(self) -> Callable[[bytes], bool]:
        """Which lines hold no record (text files)."""
        return is_blank_line

    def describe(self) -> str:
        """E.g. ``read_csv(data/*.csv, time_column=ts)``."""
        extra = f", time_column={self.time_column}" if self.time_column else ""
        return f"{self.step_name}({', '.join(self.patterns)}{extra})"

    def open_file(
        self, entry: Entry, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open one file (closing it through ``stack``); return its schema and batches.

        With a ``target`` the reader should already produce its types where it can.
        Readers of whole files (Parquet) implement this; text readers :meth:`pieces`.
        """
        raise NotImplementedError

    def explain(self, exc: Exception, entry: Entry, rows_before: int) -> str:
        """Turn a reader error (not about one row) into the message's tail."""
        del entry, rows_before
        return str(exc)

    def check_batch(self, batch: pa.RecordBatch) -> tuple[int | None, str] | None:
        """What the reader let through in ``batch`` that must not be loaded, or None.

        Gives the row at fault (its index in ``batch``, if known) and the reason.
        """
        del batch
        return None

    def finish_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        r"""Last touches to a conformed batch (CSV: ``\N`` in text columns)."""
        return batch

    # -- the run ---------------------------------------------------------------------

    def extract(self, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Yield every file's rows (of the window, with ``time_column``) in bounded batches."""
        if not self.keeps_records:
            yield from self._batches(ctx, None)
            return
        origins = SourceRows(self.blank, self.filename_column)
        ctx.step_state(self)["source_rows"] = origins
        first_row = 0
        for batch in self._batches(ctx, origins):
            origins.handed(batch, first_row)
            first_row += batch.num_rows
            yield batch

    def source_rows(self, ctx: RunContext) -> SourceRows | None:
        """Where this run's rows came from (readers that keep records, once extracting)."""
        found = ctx.step_state(self).get("source_rows")
        return found if isinstance(found, SourceRows) else None

    def _batches(self, ctx: RunContext, origins: SourceRows | None) -> Iterator[pa.RecordBatch]:
        target = self.fixed_schema
        shape = Shape(target, "the given schema" if target is not None else "the given columns")
        gather = Gather(ctx.batch_rows)
        resolved = resolve_paths(
            self.patterns,
            Path.cwd(),
            window=ctx.window,
            zone=self.zone,
            missing_files=self.missing_files,
        )
        for pattern in resolved.missing:
            ctx.log.warning("no file matches", pattern=pattern, missing_files=self.missing_files)
        for path, shown in resolved.files:
            try:
                units = entries(path, shown)
            except UnreadableFile as exc:
                raise self.error(shown, str(exc)) from None
            except OSError as exc:
                raise self.error(shown, exc.strerror or str(exc)) from None
            for entry in units:
                if entry.note is not None:
                    ctx.log.warning(
                        "file content differs from its name", path=shown, detail=entry.note
                    )
                yield from self._read_entry(entry, shape, gather, ctx, origins)
        yield from gather.flush()

    def _read_entry(
        self,
        entry: Entry,
        shape: Shape,
        gather: Gather,
        ctx: RunContext,
        origins: SourceRows | None,
    ) -> Iterator[pa.RecordBatch]:
        if origins is not None:
            origins.opened(entry)
        ctx.log.info(
            "reading file", path=entry.shown, format=self.label, bytes=entry.path.stat().st_size
        )
        try:
            with ExitStack() as stack:
                reading = Reading(entry, shape, ctx, stack, origins=origins)
                for piece in self.pieces(reading):
                    accepted = self._place(piece, reading)
                    if accepted.num_rows:
                        yield from gather.add(accepted)
        except UnicodeDecodeError as exc:  # pyarrow hands on undecodable names as is
            raise self.error(entry.shown, _not_utf8(exc)) from None
        ctx.log.debug("file read", path=entry.shown, rows=reading.rows, rows_in_window=reading.kept)

    def pieces(self, reading: Reading) -> Iterator[Piece]:
        """The file's batches, conformed to the run's schema and checked."""
        import pyarrow as pa

        entry, shape = reading.entry, reading.shape
        try:
            schema, batches = self.open_file(entry, shape.target, reading.ctx, reading.stack)
        except (pa.ArrowException, OSError) as exc:
            if str(exc).startswith(_EMPTY_INPUT):
                reading.ctx.log.info("file is empty", path=entry.shown)
                return
            raise self.error(entry.shown, self.explain(exc, entry, 0)) from exc
        self.open_checks(schema, shape, entry.shown)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise self.error(entry.shown, self.explain(exc, entry, reading.rows)) from exc
            batch = self.conformed(batch, shape, entry.shown)
            problem = self.check_batch(batch)
            if problem is not None:
                raise self.error(entry.shown, problem[1])
            yield Piece(batch)

    def conformed(self, batch: pa.RecordBatch, shape: Shape, shown: str) -> pa.RecordBatch:
        """``batch`` in the run's schema (the first batch of a run fixes it, if not given)."""
        if shape.target is None:
            shape.target, shape.origin = batch.schema, f"the first file ({shown})"
            check_filename_column(self, shape.target)
        return fit(self, batch, shape, shown)

    def _place(self, piece: Piece, reading: Reading) -> pa.RecordBatch:
        """A checked batch's rows of the window, noted (and named by file) as asked."""
        import pyarrow as pa

        batch = self.finish_batch(piece.batch)
        parsed = batch.num_rows
        numbers = piece.records if reading.origins is not None else None
        if self.time_filter is not None:
            batch, numbers = in_window(self, batch, reading, piece, numbers)
        if reading.origins is not None and numbers is not None:
            reading.origins.rows(reading.entry, numbers)
        reading.rows += parsed
        reading.kept += batch.num_rows
        if self.filename_column is not None:
            batch = batch.append_column(
                self.filename_column, pa.repeat(reading.entry.shown, batch.num_rows)
            )
        return batch

    def open_checks(self, schema: pa.Schema, shape: Shape, shown: str) -> None:
        """Check a file's columns when it is opened; Parquet's schema may fix the target."""
        import pyarrow as pa

        wanted = shape.target.names if shape.target is not None else self.wanted_columns
        check_columns(self, schema, wanted, shown, shape.origin)
        if shape.target is None and self.schema_at_open:
            names = wanted or schema.names
            if all(name in schema.names for name in names):
                shape.target = pa.schema([schema.field(name) for name in names])
                shape.origin = f"the first file ({shown})"
                check_filename_column(self, shape.target)

    def error(self, shown: str, detail: str) -> FatalError:
        """The run's error about one file."""
        return FatalError(printable(f"{self.label} file {shown}: {detail}"))


def _not_utf8(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return f"holds text that is not valid UTF-8 (byte 0x{byte}: {exc.reason})"
