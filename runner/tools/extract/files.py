"""Reading CSV, JSON Lines and Parquet files, streamed as bounded Arrow batches.

Paths and glob patterns (``data/*.csv``, ``data/**/*.jsonl.gz``) are resolved when the
run starts, relative to the current working directory of the process (not to the
pipeline module), so the same pipeline reads the same files wherever it is declared.
Each pattern's matches are read in sorted order, patterns in the order given; a file
matched by two patterns is read once.

Every batch of one run has the same schema: the given one, or the one of the first file
that has rows.  Later files are converted to it while they are parsed (CSV, JSON) or
cast (Parquet); a file whose columns do not fit fails the run with its name in the
message, because silently mixing shapes would load wrong data.

``.gz``, ``.bz2`` and ``.zst`` CSV and JSON Lines files are decompressed on the fly.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from runner.batches import split
from runner.errors import ConfigError, FatalError, printable
from runner.pipeline.steps import Extractor
from runner.tools.extract.source_records import Segment, json_records

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

PathLike: TypeAlias = "str | os.PathLike[str]"
Paths: TypeAlias = "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]"

#: Compression codecs recognised by file suffix (pyarrow codec names).
COMPRESSION_BY_SUFFIX: Mapping[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}

#: Bytes parsed at a time by the CSV and JSON readers; bounds memory per file.
DEFAULT_BLOCK_SIZE = 4 << 20

#: Bytes read at a time from a Parquet column chunk (instead of whole row groups).
PARQUET_BUFFER_SIZE = 1 << 20

_GLOB_CHARS = frozenset("*?[")
# pyarrow reports an empty input with these messages; such a file just has no rows.
_EMPTY_INPUT = ("Empty CSV file", "Empty JSON stream")
_JSON_ROW = re.compile(r" in row (\d+)$")
_STRING_INDEX = re.compile(r"Invalid UTF8 sequence at string index (\d+)")


def compression_of(path: Path | str) -> str | None:
    """The pyarrow codec implied by the file name, or None for plain files."""
    return COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower())


def _is_glob(pattern: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in pattern)


def _check_patterns(paths: Paths) -> tuple[str, ...]:
    """Validate ``paths`` at declaration: non-empty strings, ``**`` only as a whole part."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ConfigError("paths: give at least one file path or glob pattern")
    patterns: list[str] = []
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise ConfigError(f"paths: {item!r} is not a path or glob pattern")
        pattern = os.fspath(item)
        if not pattern.strip():
            raise ConfigError("paths: an empty string is not a path")
        for part in Path(pattern).parts:
            if "**" in part and part != "**":
                raise ConfigError(
                    f"paths: {pattern!r}: '**' must be a whole path part, as in 'data/**/*.csv'"
                )
        patterns.append(pattern)
    return tuple(patterns)


def _shown(path: Path, cwd: Path, relative: bool) -> str:
    """How a file is named in logs, errors and the file-name column."""
    if relative:
        try:
            return str(path.relative_to(cwd))
        except ValueError:  # a pattern with '..' leaves the working directory
            pass
    return str(path)


def resolve_paths(patterns: Sequence[str], cwd: Path) -> list[tuple[Path, str]]:
    """Expand patterns into existing files, each with the name shown for it.

    Relative patterns are taken from ``cwd``; a glob matching no file and a missing
    explicit file are errors, since reading nothing is rarely what was meant.
    """
    seen: set[Path] = set()
    files: list[tuple[Path, str]] = []
    for pattern in patterns:
        given = Path(pattern).expanduser()
        relative = not given.is_absolute()
        full = cwd / given if relative else given
        where = f" (relative to {cwd})" if relative else ""
        if _is_glob(pattern):
            # split the pattern itself (not cwd, which may hold '[' or '*') at its first wildcard
            parts = given.parts
            first = next(i for i, part in enumerate(parts) if _is_glob(part))
            base = (cwd if relative else Path()) / Path(*parts[:first])
            matches = sorted(p for p in base.glob(str(Path(*parts[first:]))) if p.is_file())
            if not matches:
                raise FatalError(f"no file matches {pattern!r}{where}")
        else:
            if not full.exists():
                raise FatalError(f"file {pattern} does not exist{where}")
            if not full.is_file():
                raise FatalError(f"{pattern} is not a file")
            matches = [full]
        for match in matches:
            if match not in seen:
                seen.add(match)
                files.append((match, _shown(match, cwd, relative)))
    return files


class FileSource(Extractor):
    """Shared behaviour: resolve files, keep one schema, name the file in every error."""

    label: ClassVar[str] = "file"

    def __init__(self, paths: Paths, *, filename_column: str | None = None) -> None:
        self.patterns = _check_patterns(paths)
        if filename_column is not None and not (
            isinstance(filename_column, str) and filename_column
        ):
            raise ConfigError("filename_column must be a non-empty column name or None")
        self.filename_column = filename_column
        fixed = self.fixed_schema
        if filename_column is not None and fixed is not None and filename_column in fixed.names:
            raise ConfigError(
                f"filename_column {filename_column!r} is already a column of the schema"
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

    def describe(self) -> str:
        """E.g. ``read_csv(data/*.csv)``."""
        return f"{self.step_name}({', '.join(self.patterns)})"

    @abstractmethod
    def open_file(
        self, path: Path, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open one file (closing it through ``stack``); return its schema and batches.

        With a ``target`` the reader should already produce its types where it can.
        """

    def explain(self, exc: Exception, path: Path, rows_before: int) -> str:
        """Turn a reader error into the message's tail."""
        del path, rows_before
        return str(exc)

    def check_batch(self, batch: pa.RecordBatch, path: Path, rows_before: int) -> str | None:
        """What the reader let through in ``batch`` that must not be loaded, or None."""
        del batch, path, rows_before
        return None

    def extract(self, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Yield every file's rows in bounded batches of one schema."""
        import pyarrow as pa

        target = self.fixed_schema
        origin = "the given schema" if target is not None else "the given columns"
        gather = _Gather(ctx.batch_rows)
        segments: list[Segment] = ctx.step_state(self).setdefault("segments", [])
        for path, shown in resolve_paths(self.patterns, Path.cwd()):
            rows = 0
            last = segments[-1] if segments else None
            segment = Segment(path, shown, first_row=last.first_row + last.rows if last else 0)
            segments.append(segment)
            try:
                with ExitStack() as stack:
                    try:
                        size = path.stat().st_size
                        ctx.log.info("reading file", path=shown, format=self.label, bytes=size)
                        schema, batches = self.open_file(path, target, ctx, stack)
                    except (pa.ArrowException, OSError) as exc:
                        if str(exc).startswith(_EMPTY_INPUT):
                            ctx.log.info("file is empty", path=shown)
                            continue
                        raise self._error(shown, self.explain(exc, path, 0)) from exc
                    wanted = target.names if target is not None else self.wanted_columns
                    self._check_columns(schema, wanted, shown, origin)
                    while True:
                        try:
                            batch = next(batches)
                        except StopIteration:
                            break
                        except (pa.ArrowException, OSError) as exc:
                            raise self._error(shown, self.explain(exc, path, rows)) from exc
                        if target is None:
                            target, origin = batch.schema, f"the first file ({shown})"
                            self._check_filename_column(target)
                        batch = self._conform(batch, target, shown, origin)
                        problem = self.check_batch(batch, path, rows)
                        if problem is not None:
                            raise self._error(shown, problem)
                        rows += batch.num_rows
                        segment.rows = rows
                        if self.filename_column is not None:
                            batch = batch.append_column(
                                self.filename_column, pa.repeat(shown, batch.num_rows)
                            )
                        yield from gather.add(batch)
            except UnicodeDecodeError as exc:  # pyarrow hands on undecodable names as is
                raise self._error(shown, _not_utf8(exc)) from None
            ctx.log.debug("file read", path=shown, rows=rows)
        yield from gather.flush()

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
        """Fail on duplicate names, and on missing or (unless selecting) extra columns."""
        names = schema.names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self._error(shown, f"duplicate columns {', '.join(duplicates)}")
        if wanted is None:
            return
        missing = [n for n in wanted if n not in names]
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
            raise self._error(shown, f"columns do not match {origin}: {detail}")

    def _conform(
        self, batch: pa.RecordBatch, target: pa.Schema, shown: str, origin: str
    ) -> pa.RecordBatch:
        import pyarrow as pa

        if batch.schema.equals(target):
            return batch
        try:
            if batch.schema.names != target.names:
                batch = batch.select(target.names)
            return batch.cast(target)
        except (pa.ArrowException, KeyError) as exc:
            raise self._error(shown, f"does not fit {origin}: {exc}") from exc


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


def _not_utf8(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return f"holds text that is not valid UTF-8 (byte 0x{byte}: {exc.reason})"


def _check_schema(schema: object) -> pa.Schema | None:
    import pyarrow as pa

    if schema is not None and not isinstance(schema, pa.Schema):
        raise ConfigError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
    return schema


def _check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"block_size must be a positive number of bytes, not {block_size!r}")
    return block_size


def _input(path: Path, stack: ExitStack) -> pa.NativeFile:
    """A (decompressing) input stream, closed with ``stack``."""
    import pyarrow as pa

    return stack.enter_context(pa.input_stream(str(path), compression=compression_of(path)))


class CsvSource(FileSource):
    """CSV files, parsed block by block; types inferred from the first block unless given."""

    name = "read_csv"
    label = "CSV"

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
    ) -> None:
        import pyarrow as pa

        self.schema = _check_schema(schema)
        super().__init__(paths, filename_column=filename_column)
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
        self.block_size = _check_block_size(block_size)

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The ``schema`` argument."""
        return self.schema

    @property
    def selects_columns(self) -> bool:
        """A given schema names the columns to read; other columns are skipped."""
        return self.schema is not None

    def open_file(
        self, path: Path, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open a streaming CSV reader that converts straight to the target's types."""
        del ctx  # batches are bounded by block_size, then split by the caller
        import pyarrow.csv as pcsv

        read = pcsv.ReadOptions(
            block_size=self.block_size,
            # single-threaded parsing is what makes pyarrow report row numbers; it is also
            # faster in a flow, which parses on its own thread while the warehouse inserts
            # (pyarrow's thread pool only competes with the insert for the cores)
            use_threads=False,
            autogenerate_column_names=not self.header and self.schema is None,
            column_names=None if self.header or self.schema is None else self.schema.names,
        )
        types = dict(self.column_types)
        if target is not None:
            types.update(zip(target.names, target.types, strict=True))
        convert = pcsv.ConvertOptions(
            column_types=types,
            include_columns=self.schema.names if self.schema is not None else None,
        )
        if self.null_values is not None:
            convert.null_values = self.null_values
            convert.strings_can_be_null = True
        parse = pcsv.ParseOptions(delimiter=self.delimiter)
        reader = pcsv.open_csv(
            _input(path, stack), read_options=read, parse_options=parse, convert_options=convert
        )
        return reader.schema, iter(reader)

    def check_batch(self, batch: pa.RecordBatch, path: Path, rows_before: int) -> str | None:
        """Refuse a value holding a line break (an unbalanced quote).

        pyarrow lets an unbalanced quote swallow the lines after it into one value, up to
        the next quote or the end of the file, silently dropping rows.
        """
        del path
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
            line = rows_before + pc.index(broken, True).as_py() + 1 + int(self.header)
            return (
                f"the {name!r} value of the row at line {line} holds a line break "
                "(an unbalanced quote?); quoted line breaks are not supported"
            )
        return None

    def explain(self, exc: Exception, path: Path, rows_before: int) -> str:
        """Add a hint where the streaming type inference is the likely cause."""
        del path, rows_before
        text = str(exc)
        missing = re.match(r"Column '(.*)' in include_columns does not exist", text)
        if missing:
            return f"has no column {missing.group(1)!r} of the given schema"
        if "conversion error" in text and self.schema is None:
            text += " (types are inferred from the first block; pass column_types= or schema=)"
        return text


def _record_line(path: Path, record: int) -> int | None:
    """The line number of the ``record``-th non-blank line (1-based), found by re-reading.

    Only used on the error path: pyarrow counts records without blank lines.
    """
    import pyarrow as pa

    line = seen = 0
    carry = b""
    try:
        with pa.input_stream(str(path), compression=compression_of(path)) as stream:
            while chunk := stream.read(1 << 20):
                *lines, carry = (carry + chunk).split(b"\n")
                for text in lines:
                    line += 1
                    seen += bool(text.strip())
                    if seen == record:
                        return line
    except (pa.ArrowException, OSError):
        return None
    return line + 1 if carry.strip() and seen + 1 == record else None


class JsonLinesSource(FileSource):
    """JSON Lines files (one object per line); a missing key reads as null."""

    name = "read_jsonl"
    label = "JSONL"

    def __init__(
        self,
        paths: Paths,
        *,
        schema: pa.Schema | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        filename_column: str | None = None,
    ) -> None:
        self.schema = _check_schema(schema)
        super().__init__(paths, filename_column=filename_column)
        self.block_size = _check_block_size(block_size)

    @property
    def fixed_schema(self) -> pa.Schema | None:
        """The ``schema`` argument."""
        return self.schema

    @property
    def selects_columns(self) -> bool:
        """A given schema names the fields to read; other keys are ignored."""
        return self.schema is not None

    def open_file(
        self, path: Path, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open a streaming JSON reader parsing straight into the target's types."""
        del ctx  # batches are bounded by block_size, then split by the caller
        import pyarrow.json as pjson

        parse = pjson.ParseOptions(
            explicit_schema=target,
            # keys beyond a given schema are dropped; beyond the first file's, reported
            unexpected_field_behavior="ignore" if self.schema is not None else "infer",
        )
        reader = pjson.open_json(
            _input(path, stack),
            read_options=pjson.ReadOptions(block_size=self.block_size),
            parse_options=parse,
        )
        return reader.schema, iter(reader)

    def check_batch(self, batch: pa.RecordBatch, path: Path, rows_before: int) -> str | None:
        """Refuse strings that are not UTF-8: pyarrow's JSON reader does not check them."""
        import pyarrow as pa

        try:
            batch.validate(full=True)
        except pa.ArrowInvalid as exc:
            found = _STRING_INDEX.search(str(exc))
            if found is None:
                return f"invalid data: {exc}"
            record = rows_before + int(found.group(1)) + 1
            line = _record_line(path, record)
            where = f"line {line}" if line is not None else f"record {record}"
            return f"a string at {where} is not valid UTF-8"
        return None

    def source_records(self, ctx: RunContext, rows: Sequence[int]) -> Mapping[int, Any]:
        """The JSON objects of run rows ``rows``, read again (only to quarantine them)."""
        state = ctx.step_state(self)
        cursors = state.setdefault("cursors", {})
        return json_records(state.get("segments", []), rows, cursors, self.filename_column)

    def explain(self, exc: Exception, path: Path, rows_before: int) -> str:
        """Name the line: pyarrow counts rows within the current block only."""
        text = str(exc)
        found = _JSON_ROW.search(text)
        if found:
            record = rows_before + int(found.group(1)) + 1
            line = _record_line(path, record)
            where = f"line {line}" if line is not None else f"record {record}"
            text = f"{text[: found.start()]} at {where}"
        if "unexpected field" in text:
            text += (
                " (a key first seen after the first block of a file, or absent from the first "
                "file; pass schema= to name the fields)"
            )
        return text


class ParquetSource(FileSource):
    """Parquet files, read in batches of at most ``ctx.batch_rows`` rows."""

    name = "read_parquet"
    label = "Parquet"

    def __init__(
        self,
        paths: Paths,
        *,
        columns: Sequence[str] | None = None,
        filename_column: str | None = None,
    ) -> None:
        if columns is not None:
            if isinstance(columns, str) or not columns:
                raise ConfigError("columns must be a non-empty list of column names")
            if not all(isinstance(c, str) and c for c in columns):
                raise ConfigError("columns must be column names (non-empty strings)")
            if len(set(columns)) != len(columns):
                raise ConfigError(f"columns lists a column twice: {list(columns)}")
        self.columns = None if columns is None else list(columns)
        super().__init__(paths, filename_column=filename_column)
        if filename_column is not None and self.columns and filename_column in self.columns:
            raise ConfigError(f"filename_column {filename_column!r} is one of columns")

    @property
    def selects_columns(self) -> bool:
        """With ``columns`` other columns of the files are skipped."""
        return self.columns is not None

    @property
    def wanted_columns(self) -> list[str] | None:
        """The ``columns`` argument."""
        return self.columns

    def open_file(
        self, path: Path, target: pa.Schema | None, ctx: RunContext, stack: ExitStack
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open the file and iterate its row groups in bounded batches."""
        import pyarrow.parquet as pq

        # pre_buffer (meant for object stores) keeps every row group read so far in memory
        # until the file is closed: memory grew with the file; a buffered stream does not.
        parquet = stack.enter_context(
            pq.ParquetFile(str(path), pre_buffer=False, buffer_size=PARQUET_BUFFER_SIZE)
        )
        wanted = target.names if target is not None else self.columns
        # one decoding thread: the flow already decodes on its own thread while the
        # warehouse inserts on the other core (measured faster than pyarrow's thread pool)
        batches = parquet.iter_batches(batch_size=ctx.batch_rows, columns=wanted, use_threads=False)
        return parquet.schema_arrow, batches


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
) -> CsvSource:
    """CSV files (paths or globs, relative to the working directory at run time).

    ``schema`` fixes the columns read and their types (other columns are skipped);
    ``column_types`` only overrides the types of some columns, the rest are inferred
    from the first block of the first file.  ``header=False`` names the columns after
    ``schema`` or ``f0, f1, ...``.  ``null_values`` replaces pyarrow's list of strings
    read as null, and then also applies to text columns.  ``filename_column`` adds a
    column holding the file each row came from.
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
    )


def read_jsonl(
    paths: Paths,
    *,
    schema: pa.Schema | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    filename_column: str | None = None,
) -> JsonLinesSource:
    """JSON Lines files (paths or globs, relative to the working directory at run time).

    ``schema`` fixes the fields read and their types (other keys are ignored); without
    it the first block of the first file decides.  A line longer than ``block_size``
    bytes cannot be parsed: raise it for very wide records.
    """
    return JsonLinesSource(
        paths, schema=schema, block_size=block_size, filename_column=filename_column
    )


def read_parquet(
    paths: Paths,
    *,
    columns: Sequence[str] | None = None,
    filename_column: str | None = None,
) -> ParquetSource:
    """Parquet files (paths or globs, relative to the working directory at run time).

    ``columns`` reads only those columns; later files are cast to the first file's types.
    """
    return ParquetSource(paths, columns=columns, filename_column=filename_column)
