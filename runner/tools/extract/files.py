"""Reading CSV, JSON Lines and Parquet files, streamed as bounded Arrow batches.

Which files: paths and glob patterns (``data/*.csv``, ``data/**/*.jsonl.gz``) and window
templates (``data/{window_start:%Y/%m/%d}/*.csv``), resolved when the run starts,
relative to the working directory of the process (see ``file_paths``).  Each pattern's
matches are read in sorted order, patterns in the order given; a file matched twice is
read once.  Compression and zip archives are recognised by their first bytes (see
``file_archives``).

Every batch of one run has the same schema: the given one, or the one of the first file
that has rows (for Parquet, which states its schema, simply the first file).  Later
files are converted to it while they are parsed (CSV, JSON) or cast (Parquet); a file
whose columns do not fit fails the run with its name in the message, because silently
mixing shapes would load wrong data.

A row that does not fit (a value of the wrong type, a broken line) makes the text
readers re-read the rest of that file line by line (see ``file_lines``): the rows that
fit go on, the others are rejected through ``ctx.reject`` (quarantined when the flow has
a ``validate(on_error="skip")`` step, otherwise the run fails naming file, line and
field).  ``time_column=`` keeps only the rows of the run's window (see ``file_window``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from runner.errors import ConfigError
from runner.tools.extract import file_csv, file_jsonl
from runner.tools.extract.file_archives import Entry, local_file
from runner.tools.extract.file_blocks import (
    Count,
    csv_layout,
    json_layout,
    split_header,
    unbalanced_line,
)
from runner.tools.extract.file_lines import LineParser, Rejected, is_empty_line
from runner.tools.extract.file_paths import MissingFiles, Paths
from runner.tools.extract.file_source import (
    DEFAULT_BLOCK_SIZE,
    FileSource,
    MissingColumns,
    check_block_size,
    check_schema,
)
from runner.tools.extract.file_text import Place, Start, TextSource

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "CsvSource",
    "FileSource",
    "JsonLinesSource",
    "ParquetSource",
    "compression_of",
    "read_csv",
    "read_jsonl",
    "read_parquet",
]

#: Compression codecs by file suffix (pyarrow codec names), used by the file writers.
COMPRESSION_BY_SUFFIX: Mapping[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}

#: Bytes read at a time from a Parquet column chunk (instead of whole row groups).
PARQUET_BUFFER_SIZE = 1 << 20


def compression_of(path: Path | str) -> str | None:
    """The pyarrow codec implied by the file name, or None for plain files."""
    return COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower())


class CsvSource(TextSource):
    """CSV files, parsed block by block; types inferred from the first block unless given."""

    name = "read_csv"
    label = "CSV"
    universal = True

    def __init__(
        self,
        paths: Paths,
        *,
        schema: pa.Schema | None = None,
        delimiter: str = ",",
        header: bool = True,
        column_types: Mapping[str, pa.DataType] | None = None,
        null_values: Sequence[str] | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        filename_column: str | None = None,
        time_column: str | None = None,
        timezone: str | None = None,
        missing_files: MissingFiles = "fail",
        missing_columns: MissingColumns = "fail",
    ) -> None:
        import pyarrow as pa

        self.schema = check_schema(schema)
        super().__init__(
            paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
            missing_columns=missing_columns,
        )
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n":
            raise ConfigError(f"delimiter must be one character, not {delimiter!r}")
        if self.schema is not None and column_types:
            raise ConfigError("give either schema= or column_types=, not both")
        types = dict(column_types or {})
        for column, dtype in types.items():
            if not isinstance(dtype, pa.DataType):
                raise ConfigError(
                    f"column_types[{column!r}] must be a pyarrow type such as pa.int64(), "
                    f"not {dtype!r}"
                )
        if null_values is not None and (
            isinstance(null_values, str) or not all(isinstance(v, str) for v in null_values)
        ):
            raise ConfigError("null_values must be a list of strings, e.g. ['', 'NULL']")
        self.delimiter = delimiter
        self.header = bool(header)
        self.column_types = types
        self.null_values = None if null_values is None else list(null_values)
        self.block_size = check_block_size(block_size)

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The ``schema`` argument."""
        return self.schema

    @property
    def selects_columns(self) -> bool:
        """A given schema names the columns to read; other columns are skipped."""
        return self.schema is not None

    @property
    def blank(self) -> Callable[[bytes], bool]:
        """Pyarrow's CSV reader skips empty lines only."""
        return is_empty_line

    def _types(self, target: pa.Schema | None) -> dict[str, pa.DataType]:
        types = dict(self.column_types)
        if target is not None:
            types.update(zip(target.names, target.types, strict=True))
        return types

    def _nulls(self) -> tuple[list[str], bool]:
        """The null markers, and whether they apply to text columns (see ``file_csv``)."""
        if self.null_values is None:
            return file_csv.default_null_markers(), False
        return self.null_values, True

    def start(self, first: bytes, target: pa.Schema | None) -> Start | None:
        """A parser with the header's names (or the schema's) and the run's types."""
        import pyarrow as pa

        names = None
        rest, skipped, columns = first, Count(0, 0), None
        if self.header:
            line, lines, rest = split_header(first)
            if line is None:
                return None
            names = file_csv.read_header(
                line,
                self.delimiter,
                include=self.schema.names if self.schema is not None else None,
                missing_as_null=self.missing_columns == "null",
            )
            skipped = Count(lines, 1)
            columns = pa.schema([(name, pa.null()) for name in names])
        elif self.schema is not None:
            names = self.schema.names
        null_values, text_too = self._nulls()
        parser = file_csv.CsvLineParser(
            names=names,
            types=self._types(target),
            include=self.schema.names if self.schema is not None else None,
            delimiter=self.delimiter,
            null_values=null_values,
            strings_can_be_null=text_too,
            missing_as_null=self.missing_columns == "null",
        )
        return Start(parser, rest, skipped, columns)

    def layout(self, data: bytes, rows: int) -> Count | None:
        """One row per non-empty line (fewer: a quoted value holds a line break)."""
        return csv_layout(data, rows)

    def merged_lines(
        self, data: bytes, place: Place, parser: LineParser, *, known: bool
    ) -> str | None:
        """A row over several lines: refused, as a value holding a line break is.

        A block that failed on a row is first parsed again as text to find out.
        """
        import pyarrow as pa

        if not known:
            try:
                rows = cast("file_csv.CsvLineParser", parser).rows_as_text(data)
            except pa.ArrowException:
                return None
            if csv_layout(data, rows) is not None:
                return None
        line = unbalanced_line(data, place.line)
        where = f"line {line}" if line is not None else f"a row from line {place.line} on"
        return (
            f"{where}: a quoted value holds a line break (an unbalanced quote?); "
            "quoted line breaks are not supported"
        )

    def finish_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        r"""``\N`` in text columns as null, unless ``null_values`` says otherwise."""
        return file_csv.text_markers_to_null(batch) if self.null_values is None else batch

    def check_batch(self, batch: pa.RecordBatch) -> tuple[int | None, str] | None:
        """Refuse a value holding a line break (an unbalanced quote).

        pyarrow lets an unbalanced quote swallow the lines after it into one value, up to
        the next quote or the end of the file, silently dropping rows.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            kind = column.type
            large = pa.types.is_large_string(kind)
            if not (large or pa.types.is_string(kind)) or not len(column):
                continue
            _, offsets, data = column.buffers()
            if offsets is None or data is None:
                continue
            # a byte search over the column's characters is five times faster than compute
            positions = memoryview(offsets).cast("q" if large else "i")
            first, last = positions[column.offset], positions[column.offset + len(column)]
            text = memoryview(data)[first:last].tobytes()
            if b"\n" not in text and b"\r" not in text:
                continue
            broken = pc.or_(pc.match_substring(column, "\n"), pc.match_substring(column, "\r"))
            return (
                pc.index(broken, True).as_py(),
                f"the {name!r} value holds a line break (an unbalanced quote?); "
                "quoted line breaks are not supported",
            )
        return None

    def is_row_error(self, exc: Exception) -> bool:
        """Conversion errors and rows with another number of columns."""
        return file_csv.is_row_error(exc)

    def row_hint(self, rejected: Rejected) -> str:
        """For a value that does not convert: the option to change (never one given)."""
        why = rejected.why
        if why.column is None or why.value is None:
            return ""
        return file_csv.conversion_hint(
            why.column,
            why.value,
            schema_given=self.schema is not None,
            column_types=self.column_types,
            null_values_given=self.null_values is not None,
        )

    def explain(self, exc: Exception, entry: Entry, rows_before: int) -> str:
        """Name the missing column."""
        del entry, rows_before
        text = str(exc)
        missing = re.match(r"Column '(.*)' in include_columns does not exist", text)
        if missing:
            return (
                f"has no column {missing.group(1)!r} of the given schema "
                "(missing_columns='null' reads missing columns as null)"
            )
        return text


class JsonLinesSource(TextSource):
    """JSON Lines files (one object per line); a missing key reads as null."""

    name = "read_jsonl"
    label = "JSONL"
    keeps_records = True
    parse_ahead = 2  # as pyarrow's streaming JSON reader did on its threads

    def __init__(
        self,
        paths: Paths,
        *,
        schema: pa.Schema | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        filename_column: str | None = None,
        time_column: str | None = None,
        timezone: str | None = None,
        missing_files: MissingFiles = "fail",
    ) -> None:
        self.schema = check_schema(schema)
        super().__init__(
            paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
        )
        self.block_size = check_block_size(block_size)

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The ``schema`` argument."""
        return self.schema

    @property
    def selects_columns(self) -> bool:
        """A given schema names the fields to read; other keys are ignored."""
        return self.schema is not None

    def start(self, first: bytes, target: pa.Schema | None) -> Start:
        """Parse into the run's schema; keys beyond a given schema are ignored."""
        parser = file_jsonl.JsonLineParser(target, ignore_unexpected=self.schema is not None)
        return Start(parser, first, Count(0, 0))

    def layout(self, data: bytes, rows: int) -> Count | None:
        """One JSON object per non-blank line."""
        return json_layout(data, rows)

    def check_batch(self, batch: pa.RecordBatch) -> tuple[int | None, str] | None:
        """Refuse strings that are not UTF-8: pyarrow's JSON reader does not check them."""
        import pyarrow as pa

        try:
            batch.validate(full=True)
        except pa.ArrowInvalid as exc:
            return None, f"invalid data: {exc}"
        return None

    def is_row_error(self, exc: Exception) -> bool:
        """Parse errors, type changes and conversion errors of one row."""
        return file_jsonl.is_row_error(exc)

    def source_records(
        self, ctx: RunContext, rows: Sequence[int], held: pa.RecordBatch
    ) -> Mapping[int, Any]:
        """The JSON objects of run rows ``rows`` as the files hold them (see source_records)."""
        origins = self.source_rows(ctx)
        return {} if origins is None else origins.records(rows, held)

    def row_hint(self, rejected: Rejected) -> str:
        """For a key the schema does not know: how to name the fields."""
        if rejected.reason.startswith("unexpected field") and self.schema is None:
            return (
                " (a key first seen after the first block of a file, or absent from the first "
                "file; pass schema= to name the fields)"
            )
        return ""


class ParquetSource(FileSource):
    """Parquet files, read in batches of at most ``ctx.batch_rows`` rows."""

    name = "read_parquet"
    label = "Parquet"

    def __init__(
        self,
        paths: Paths,
        *,
        columns: Sequence[str] | None = None,
        schema: pa.Schema | None = None,
        filename_column: str | None = None,
        time_column: str | None = None,
        timezone: str | None = None,
        missing_files: MissingFiles = "fail",
        missing_columns: MissingColumns = "fail",
    ) -> None:
        if columns is not None:
            if isinstance(columns, str) or not columns:
                raise ConfigError("columns must be a non-empty list of column names")
            if not all(isinstance(c, str) and c for c in columns):
                raise ConfigError("columns must be column names (non-empty strings)")
            if len(set(columns)) != len(columns):
                raise ConfigError(f"columns lists a column twice: {list(columns)}")
        self.schema = check_schema(schema)
        if self.schema is not None and columns is not None:
            raise ConfigError("give either schema= or columns=, not both")
        self.columns = None if columns is None else list(columns)
        super().__init__(
            paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
            missing_columns=missing_columns,
        )
        if filename_column is not None and self.columns and filename_column in self.columns:
            raise ConfigError(f"filename_column {filename_column!r} is one of columns")

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The ``schema`` argument."""
        return self.schema

    @property
    def selects_columns(self) -> bool:
        """With ``columns`` or ``schema`` other columns of the files are skipped."""
        return self.columns is not None or self.schema is not None

    @property
    def wanted_columns(self) -> list[str] | None:
        """The ``columns`` argument."""
        return self.columns

    @property
    def schema_at_open(self) -> bool:
        """A Parquet file states its columns and types without any row."""
        return True

    def open_file(
        self, entry: Entry, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open the file and iterate its row groups (of the window) in bounded batches."""
        import pyarrow.parquet as pq

        # pre_buffer (meant for object stores) keeps every row group read so far in memory
        # until the file is closed: memory grew with the file; a buffered stream does not.
        parquet = stack.enter_context(
            pq.ParquetFile(
                str(local_file(entry, stack)), pre_buffer=False, buffer_size=PARQUET_BUFFER_SIZE
            )
        )
        schema = parquet.schema_arrow
        wanted = target.names if target is not None else self.columns
        if wanted is not None and self.missing_columns == "null":
            wanted = [name for name in wanted if name in schema.names]
        groups = list(range(parquet.num_row_groups))
        if self.time_filter is not None and self.time_column in schema.names:
            groups = self.time_filter.row_groups(parquet.metadata, ctx.window)
            ctx.log.info(
                "row groups outside the window skipped",
                path=entry.shown,
                skipped=parquet.num_row_groups - len(groups),
                read=len(groups),
            )
        # one decoding thread: the flow already decodes on its own thread while the
        # warehouse inserts on the other core (measured faster than pyarrow's thread pool)
        batches = parquet.iter_batches(
            batch_size=ctx.batch_rows, columns=wanted, row_groups=groups, use_threads=False
        )
        return schema, batches


def read_csv(
    paths: Paths,
    *,
    schema: pa.Schema | None = None,
    delimiter: str = ",",
    header: bool = True,
    column_types: Mapping[str, pa.DataType] | None = None,
    null_values: Sequence[str] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    filename_column: str | None = None,
    time_column: str | None = None,
    timezone: str | None = None,
    missing_files: MissingFiles = "fail",
    missing_columns: MissingColumns = "fail",
) -> CsvSource:
    r"""CSV files: ``paths`` are paths, globs or window templates (relative to the cwd).

    ``schema`` fixes the columns read and their types (other columns are skipped);
    ``column_types`` only overrides the types of some columns, the rest are inferred from
    the first block of the first file.  ``delimiter`` is one character (``,`` by
    default).  ``header=False`` names the columns after ``schema`` or ``f0, f1, ...``.
    ``null_values`` replaces the strings read as null (by default pandas' markers and
    ``\N`` in typed columns, only ``\N`` in text) and then applies to text columns too.
    ``block_size`` must exceed the longest row.  ``filename_column`` adds a column
    holding the file each row came from.

    ``time_column`` keeps only rows inside the run's window; ``timezone`` is the zone
    of a path template's periods (UTC by default); ``missing_files="skip"`` allows a
    pattern or period without files; ``missing_columns="null"`` reads columns of the
    schema a file lacks as null instead of failing.
    """
    return CsvSource(
        paths,
        schema=schema,
        delimiter=delimiter,
        header=header,
        column_types=column_types,
        null_values=null_values,
        block_size=block_size,
        filename_column=filename_column,
        time_column=time_column,
        timezone=timezone,
        missing_files=missing_files,
        missing_columns=missing_columns,
    )


def read_jsonl(
    paths: Paths,
    *,
    schema: pa.Schema | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    filename_column: str | None = None,
    time_column: str | None = None,
    timezone: str | None = None,
    missing_files: MissingFiles = "fail",
) -> JsonLinesSource:
    """JSON Lines files: ``paths`` are paths, globs or window templates (relative to the cwd).

    ``schema`` fixes the fields read and their types (other keys are ignored); without
    it the first block of the first file decides.  A line longer than ``block_size``
    bytes cannot be parsed: raise it for very wide records.  ``filename_column``,
    ``time_column``, ``timezone`` and ``missing_files`` as for :func:`read_csv`.
    """
    return JsonLinesSource(
        paths,
        schema=schema,
        block_size=block_size,
        filename_column=filename_column,
        time_column=time_column,
        timezone=timezone,
        missing_files=missing_files,
    )


def read_parquet(
    paths: Paths,
    *,
    columns: Sequence[str] | None = None,
    schema: pa.Schema | None = None,
    filename_column: str | None = None,
    time_column: str | None = None,
    timezone: str | None = None,
    missing_files: MissingFiles = "fail",
    missing_columns: MissingColumns = "fail",
) -> ParquetSource:
    """Parquet files: ``paths`` are paths, globs or window templates (relative to the cwd).

    ``columns`` reads only those columns; ``schema`` those columns cast to its types;
    without either, later files are cast to the first file's types.  A file lacking a
    column fails the run naming both, unless ``missing_columns="null"``.
    ``time_column`` keeps only rows inside the run's window and skips row groups whose
    statistics show none; ``filename_column``, ``timezone`` and ``missing_files`` as
    for :func:`read_csv`.
    """
    return ParquetSource(
        paths,
        columns=columns,
        schema=schema,
        filename_column=filename_column,
        time_column=time_column,
        timezone=timezone,
        missing_files=missing_files,
        missing_columns=missing_columns,
    )
