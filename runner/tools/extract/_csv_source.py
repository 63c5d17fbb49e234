"""CSV files as a text source: header, delimiter, types, nulls, and row checks.

Part of :mod:`runner.tools.extract.files` (``read_csv``), which says how files are found
and read; this module is what is particular to CSV.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from runner.tools.extract import _file_csv
from runner.tools.extract._file_archives import Entry
from runner.tools.extract._file_blocks import (
    Count,
    csv_layout,
    split_header,
    unbalanced_line,
)
from runner.tools.extract._file_lines import LineParser, Rejected, is_empty_line
from runner.tools.extract._file_options import DEFAULT_BLOCK_SIZE, CsvOptions
from runner.tools.extract._file_paths import MissingFiles, Paths
from runner.tools.extract._file_source import (
    MissingColumns,
)
from runner.tools.extract._file_text import Place, Start, TextSource
from runner.tools.options import parse_options

if TYPE_CHECKING:
    import pyarrow as pa


__all__ = ["CsvSource"]


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
        options = parse_options(
            CsvOptions,
            self.name,
            schema=schema,
            delimiter=delimiter,
            header=header,
            column_types=column_types,
            null_values=null_values,
            block_size=block_size,
        )
        self.schema: pa.Schema | None = options.schema_
        super().__init__(
            paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
            missing_columns=missing_columns,
        )
        self.delimiter = options.delimiter
        self.header = options.header
        self.column_types: dict[str, pa.DataType] = dict(options.column_types or {})
        self.null_values = options.null_values
        self.block_size = options.block_size

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
        """The null markers, and whether they apply to text columns (see ``_file_csv``)."""
        if self.null_values is None:
            return _file_csv.default_null_markers(), False
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
            names = _file_csv.read_header(
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
        parser = _file_csv.CsvLineParser(
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
                rows = cast("_file_csv.CsvLineParser", parser).rows_as_text(data)
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
        return _file_csv.text_markers_to_null(batch) if self.null_values is None else batch

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
        return _file_csv.is_row_error(exc)

    def row_hint(self, rejected: Rejected) -> str:
        """For a value that does not convert: the option to change (never one given)."""
        why = rejected.why
        if why.column is None or why.value is None:
            return ""
        return _file_csv.conversion_hint(
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
