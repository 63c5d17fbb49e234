"""The shared part of the file readers: one run's files read into batches of one schema.

:class:`FileSource` resolves the run's files (``file_paths``), opens what they hold
(``file_archives``), checks each file's columns against the run's schema, converts its
batches to it, keeps the rows of the window (``file_window``) and, after a row that does
not fit, reads the rest of a text file line by line (``file_lines``), rejecting the bad
rows through ``ctx.reject``.  The format readers in ``files`` fill in how a file is
opened and how its errors read.  Readers with ``keeps_records`` (JSON Lines) also note
each row's entry and record number, cut with the rows, so the quarantine can store a row
as its line held it (``source_records``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from runner.batches import split
from runner.errors import ConfigError, FatalError, printable
from runner.pipeline.steps import Extractor
from runner.tools.extract.file_archives import Entry, UnreadableFile, entries, open_stream
from runner.tools.extract.file_lines import (
    LineParser,
    Parsed,
    Rejected,
    is_blank_line,
    numbered_lines,
    record_line,
    recover,
)
from runner.tools.extract.file_paths import (
    MissingFiles,
    Paths,
    check_missing,
    check_patterns,
    check_zone,
    resolve_paths,
)
from runner.tools.extract.file_window import TimeFilter, check_time_column
from runner.tools.extract.source_records import UNKNOWN, RecordNumbers, SourceRows, number_at

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

MissingColumns = Literal["fail", "null"]

#: Bytes parsed at a time by the CSV and JSON readers; bounds memory per file.
DEFAULT_BLOCK_SIZE = 4 << 20

# pyarrow reports an empty input with these messages; such a file just has no rows.
_EMPTY_INPUT = ("Empty CSV file", "Empty JSON stream")
#: pyarrow's message about a row longer than a block mentions "straddling".
STRADDLING = "straddl"


@dataclass
class _Shape:
    """The schema every batch of a run gets, and where it came from (for messages)."""

    target: pa.Schema | None
    origin: str


@dataclass
class _Reading:
    """One file being read: where its batches come from and how far it got."""

    entry: Entry
    shape: _Shape
    ctx: RunContext
    stack: ExitStack
    batches: Iterator[pa.RecordBatch]
    rows: int = 0  # rows parsed so far (inside the window or not)
    kept: int = 0  # rows inside the window
    recovering: bool = False  # reading line by line after a row that did not fit
    origins: SourceRows | None = None  # where rows came from (readers keeping records)
    records: pa.Int64Array | None = None  # record numbers of the latest recovered batch


class FileSource(Extractor):
    """Shared behaviour: resolve files, keep one schema, name the file in every error."""

    label: ClassVar[str] = "file"
    #: Re-read a file line by line after a row-level error (CSV and JSON Lines).
    recovers: ClassVar[bool] = False
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
        self.patterns = check_patterns(paths)
        if filename_column is not None and not (
            isinstance(filename_column, str) and filename_column
        ):
            raise ConfigError("filename_column must be a non-empty column name or None")
        self.filename_column = filename_column
        self.time_column = check_time_column(time_column)
        self.time_filter = TimeFilter(self.time_column) if self.time_column else None
        self.timezone = timezone
        self.zone = check_zone(timezone)
        self.missing_files = check_missing(missing_files)
        if missing_columns not in ("fail", "null"):
            raise ConfigError(f"missing_columns must be 'fail' or 'null', not {missing_columns!r}")
        self.missing_columns: MissingColumns = missing_columns
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

    def describe(self) -> str:
        """E.g. ``read_csv(data/*.csv, time_column=ts)``."""
        extra = f", time_column={self.time_column}" if self.time_column else ""
        return f"{self.step_name}({', '.join(self.patterns)}{extra})"

    @abstractmethod
    def open_file(
        self, entry: Entry, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open one file (closing it through ``stack``); return its schema and batches.

        With a ``target`` the reader should already produce its types where it can.
        """

    def explain(self, exc: Exception, entry: Entry, rows_before: int) -> str:
        """Turn a reader error (not about one row) into the message's tail."""
        del entry, rows_before
        return str(exc)

    def is_row_error(self, exc: Exception) -> bool:
        """Whether ``exc`` is about one row, so reading line by line can go on."""
        del exc
        return False

    def line_parser(self, entry: Entry, target: pa.Schema | None) -> LineParser:
        """A parser of whole lines into ``target`` (text formats only)."""
        raise NotImplementedError

    def row_hint(self, rejected: Rejected) -> str:
        """What to change, added to the message when a rejected row fails the run."""
        del rejected
        return ""

    def check_batch(self, batch: pa.RecordBatch, entry: Entry, rows_before: int) -> str | None:
        """What the reader let through in ``batch`` that must not be loaded, or None."""
        del batch, entry, rows_before
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
        shape = _Shape(target, "the given schema" if target is not None else "the given columns")
        gather = _Gather(ctx.batch_rows)
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
                raise self._error(shown, str(exc)) from None
            except OSError as exc:
                raise self._error(shown, exc.strerror or str(exc)) from None
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
        shape: _Shape,
        gather: _Gather,
        ctx: RunContext,
        origins: SourceRows | None,
    ) -> Iterator[pa.RecordBatch]:
        if origins is not None:
            origins.opened(entry)
        try:
            with ExitStack() as stack:
                reading = self._open(entry, shape, ctx, stack, origins)
                if reading is None:
                    return
                while (batch := self._next_batch(reading)) is not None:
                    accepted = self._accept(batch, reading)
                    if accepted is not None:
                        yield from gather.add(accepted)
        except UnicodeDecodeError as exc:  # pyarrow hands on undecodable names as is
            raise self._error(entry.shown, _not_utf8(exc)) from None
        ctx.log.debug("file read", path=entry.shown, rows=reading.rows, rows_in_window=reading.kept)

    def _open(
        self,
        entry: Entry,
        shape: _Shape,
        ctx: RunContext,
        stack: ExitStack,
        origins: SourceRows | None,
    ) -> _Reading | None:
        """Open one file and check its columns; None for an empty file."""
        import pyarrow as pa

        ctx.log.info(
            "reading file", path=entry.shown, format=self.label, bytes=entry.path.stat().st_size
        )
        try:
            schema, batches = self.open_file(entry, shape.target, ctx, stack)
        except (pa.ArrowException, OSError) as exc:
            if str(exc).startswith(_EMPTY_INPUT):
                ctx.log.info("file is empty", path=entry.shown)
                return None
            reading = _Reading(entry, shape, ctx, stack, iter(()), origins=origins)
            self._read_lines(reading, exc)  # the first block already held a bad row
            return reading
        self._open_checks(schema, shape, entry.shown)
        return _Reading(entry, shape, ctx, stack, batches, origins=origins)

    def _next_batch(self, reading: _Reading) -> pa.RecordBatch | None:
        """The reader's next batch; after a row-level error, the line-by-line reader's."""
        import pyarrow as pa

        while True:
            try:
                return next(reading.batches)
            except StopIteration:
                return None
            except (pa.ArrowException, OSError) as exc:
                if reading.recovering:
                    detail = self.explain(exc, reading.entry, reading.rows)
                    raise self._error(reading.entry.shown, detail) from exc
                self._read_lines(reading, exc)

    def _accept(self, batch: pa.RecordBatch, reading: _Reading) -> pa.RecordBatch | None:
        """Conform, check and cut a batch to the window; None if it is read again by line."""
        import pyarrow as pa

        shape, shown = reading.shape, reading.entry.shown
        if shape.target is None:
            shape.target, shape.origin = batch.schema, f"the first file ({shown})"
            self._check_filename_column(shape.target)
        batch = self._conform(batch, shape, shown)
        problem = self.check_batch(batch, reading.entry, reading.rows)
        if problem is not None:
            if reading.recovering or not self.recovers:
                raise self._error(shown, problem)
            self._read_lines(reading, None)
            return None
        batch = self.finish_batch(batch)
        parsed = batch.num_rows
        numbers = self._record_numbers(reading, parsed)
        if self.time_filter is not None:
            batch, numbers = self._in_window(batch, reading, numbers)
        if reading.origins is not None and numbers is not None:
            reading.origins.rows(reading.entry, numbers)
        reading.rows += parsed
        reading.kept += batch.num_rows
        if self.filename_column is not None:
            batch = batch.append_column(self.filename_column, pa.repeat(shown, batch.num_rows))
        return batch

    def _open_checks(self, schema: pa.Schema, shape: _Shape, shown: str) -> None:
        """Check a file's columns when it is opened; Parquet's schema may fix the target."""
        import pyarrow as pa

        wanted = shape.target.names if shape.target is not None else self.wanted_columns
        self._check_columns(schema, wanted, shown, shape.origin)
        if shape.target is None and self.schema_at_open:
            names = wanted or schema.names
            if all(name in schema.names for name in names):
                shape.target = pa.schema([schema.field(name) for name in names])
                shape.origin = f"the first file ({shown})"
                self._check_filename_column(shape.target)

    def _read_lines(self, reading: _Reading, exc: Exception | None) -> None:
        """Go on with the rest of the file read line by line, after a row did not fit.

        ``exc`` is the reader's error (None: a batch failed ``check_batch``); an error that
        is not about one row ends the run.
        """
        entry, ctx = reading.entry, reading.ctx
        if exc is not None and not (self.recovers and self.is_row_error(exc)):
            raise self._error(entry.shown, self.explain(exc, entry, reading.rows)) from exc
        ctx.log.info(
            "reading the rest of the file line by line: a row does not fit",
            path=entry.shown,
            rows_before=reading.rows,
        )
        parser = self.line_parser(entry, reading.shape.target)
        lines = numbered_lines(
            open_stream(entry, reading.stack),
            skip=reading.rows + self.header_records,
            blank=self.blank,
        )

        def rejected(bad: list[Rejected]) -> None:
            if reading.origins is not None:
                reading.origins.rejected(entry, [r.line.record for r in bad])
            reasons = [
                printable(f"{self.label} file {entry.shown}: line {r.line.number}: {r.reason}")
                for r in bad
            ]
            if ctx.reject_sink is None:  # the run fails on the first: say what to change
                reasons[0] += self.row_hint(bad[0])
            ctx.reject([r.why.record for r in bad], reasons, step=self.step_name)

        block_size = getattr(self, "block_size", DEFAULT_BLOCK_SIZE)
        parsed = recover(lines, parser, block_size=block_size, on_rejected=rejected)
        reading.batches = self._recovered(parsed, reading)
        reading.recovering = True

    @staticmethod
    def _recovered(parsed: Iterator[Parsed], reading: _Reading) -> Iterator[pa.RecordBatch]:
        """The batches of the recovered rows; with their lines' record numbers if kept."""
        import pyarrow as pa

        for block in parsed:
            numbers = [line.record for line in block.lines]
            if len(numbers) != block.table.num_rows:  # a line held two values: rows unknown
                numbers = [UNKNOWN] * block.table.num_rows
            offset = 0
            for batch in block.table.to_batches():
                if reading.origins is not None:
                    chunk = numbers[offset : offset + batch.num_rows]
                    reading.records = cast("pa.Int64Array", pa.array(chunk, pa.int64()))
                offset += batch.num_rows
                yield batch

    def _record_numbers(self, reading: _Reading, parsed: int) -> RecordNumbers | None:
        """The record numbers of the ``parsed`` rows just read (None: not kept)."""
        if reading.origins is None:
            return None
        if reading.recovering:
            numbers = reading.records
            reading.records = None
            return numbers
        first = self.header_records + reading.rows  # pyarrow's rows: one per record
        return range(first, first + parsed)

    @property
    def header_records(self) -> int:
        """Non-blank lines before the first row (a CSV header)."""
        return 0

    @property
    def blank(self) -> Callable[[bytes], bool]:
        """Which lines the reader skips."""
        return is_blank_line

    def _in_window(
        self, batch: pa.RecordBatch, reading: _Reading, numbers: RecordNumbers | None
    ) -> tuple[pa.RecordBatch, RecordNumbers | None]:
        """The rows inside the run's window (and their record numbers, cut alike).

        Rows without a usable time are rejected.
        """
        assert self.time_filter is not None  # noqa: S101 - only called with a filter
        entry, ctx, rows_before = reading.entry, reading.ctx, reading.rows
        try:
            cut = self.time_filter.split(batch, ctx.window)
        except KeyError:
            raise self._error(
                entry.shown, f"has no column {self.time_column!r} (time_column)"
            ) from None
        except TypeError as exc:
            raise self._error(entry.shown, str(exc)) from None
        if cut.unusable:
            where = [f"row {rows_before + i + 1}" for i in cut.unusable]
            if ctx.reject_sink is None and not reading.recovering:  # failing: name the line
                record = self.header_records + rows_before + cut.unusable[0] + 1
                with ExitStack() as stack:
                    line = record_line(open_stream(entry, stack), record, self.blank)
                if line is not None:
                    where[0] = f"line {line}"
            reasons = [
                printable(f"{self.label} file {entry.shown}: {at}: {why}")
                for at, why in zip(where, cut.reasons, strict=True)
            ]
            ctx.reject(
                self._dropped(batch, cut.unusable, reading, numbers), reasons, self.step_name
            )
        if cut.kept is None or numbers is None:
            return cut.inside, numbers
        return cut.inside, _kept_numbers(numbers, cut.kept)

    def _dropped(
        self,
        batch: pa.RecordBatch,
        indices: list[int],
        reading: _Reading,
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

    def _error(self, shown: str, detail: str) -> FatalError:
        return FatalError(printable(f"{self.label} file {shown}: {detail}"))

    def _check_filename_column(self, target: pa.Schema) -> None:
        if self.filename_column is not None and self.filename_column in target.names:
            raise FatalError(
                f"filename_column {self.filename_column!r} is already a column of the files"
            )

    def _check_columns(
        self, schema: pa.Schema, wanted: list[str] | None, shown: str, origin: str
    ) -> None:
        """Fail on duplicate names, and on missing (unless allowed) or extra columns."""
        names = schema.names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self._error(shown, f"duplicate columns {', '.join(duplicates)}")
        if wanted is None:
            return
        missing = [] if self.missing_columns == "null" else [n for n in wanted if n not in names]
        extra = [] if self.selects_columns else [n for n in names if n not in wanted]
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
            raise self._error(shown, f"columns do not match {origin}: {detail}{hint}")

    def _conform(self, batch: pa.RecordBatch, shape: _Shape, shown: str) -> pa.RecordBatch:
        import pyarrow as pa

        target = shape.target
        assert target is not None  # noqa: S101 - set before the first batch is conformed
        if batch.schema.equals(target):
            return batch
        try:
            if batch.schema.names != target.names:
                present = batch.schema.names
                if self.missing_columns == "null" and not all(n in present for n in target.names):
                    columns = [
                        batch.column(f.name)
                        if f.name in present
                        else pa.nulls(batch.num_rows, f.type)
                        for f in target
                    ]
                    batch = pa.RecordBatch.from_arrays(columns, names=target.names)
                else:
                    batch = batch.select(target.names)
            return batch.cast(target)
        except (pa.ArrowException, KeyError) as exc:
            raise self._error(shown, f"does not fit {shape.origin}: {exc}") from exc

    def _block_size_message(self, entry: Entry, rows_before: int, block_size: int) -> str:
        """A row longer than a reader block: name its line and the option to raise."""
        with ExitStack() as stack:
            line = record_line(
                open_stream(entry, stack), self.header_records + rows_before + 1, self.blank
            )
        where = f"line {line}" if line is not None else f"the row after row {rows_before}"
        return (
            f"{where} is longer than block_size ({block_size} bytes); "
            "raise block_size= above the longest row"
        )


class _Gather:
    """Joins the readers' blocks, across files, into batches of ``rows`` rows, in order.

    CSV and JSON readers cut by bytes (``block_size``), so a 4 MiB block may hold a few
    thousand rows; every batch becomes one insert, and many small inserts cost the
    warehouse far more (parts, merges) than a few full ones.  Holds fewer than ``rows``
    rows plus one block.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.pending: list[pa.RecordBatch] = []
        self.count = 0

    def add(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """Take ``batch``; yield the full batches it completes."""
        if not batch.num_rows:
            return
        self.pending.append(batch)
        self.count += batch.num_rows
        if self.count < self.rows:
            return
        joined = self._join()
        full = joined.num_rows - joined.num_rows % self.rows
        yield from split(joined.slice(0, full), self.rows)
        rest = joined.slice(full)
        self.pending = [rest] if rest.num_rows else []
        self.count = rest.num_rows

    def flush(self) -> Iterator[pa.RecordBatch]:
        """Yield what is left (fewer than ``rows`` rows)."""
        if self.count:
            yield self._join()
        self.pending, self.count = [], 0

    def _join(self) -> pa.RecordBatch:
        import pyarrow as pa

        if len(self.pending) == 1:
            return self.pending[0]
        return pa.Table.from_batches(self.pending).combine_chunks().to_batches()[0]


def _kept_numbers(numbers: RecordNumbers, kept: pa.BooleanArray) -> RecordNumbers:
    """``numbers`` filtered as the rows were (a null in ``kept`` drops the row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(numbers, range):
        positions = pc.indices_nonzero(pc.fill_null(kept, False)).cast(pa.int64())
        return cast("pa.Int64Array", pc.add(positions, numbers.start))
    return cast("pa.Int64Array", numbers.filter(kept))


def _not_utf8(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return f"holds text that is not valid UTF-8 (byte 0x{byte}: {exc.reason})"


def check_schema(schema: object) -> pa.Schema | None:
    import pyarrow as pa

    if schema is not None and not isinstance(schema, pa.Schema):
        raise ConfigError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
    return schema


def check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"block_size must be a positive number of bytes, not {block_size!r}")
    return block_size
