r"""CSV specifics: null markers, and rows that do not fit (which column, which value, why).

Null markers: in typed columns (numbers, dates, timestamps, booleans) the strings that
pandas and pyarrow read as missing (``""``, ``NA``, ``N/A``, ``NULL``, ``null``,
``NaN``, ``#N/A`` ...) and ClickHouse's ``\N`` are nulls.  In text columns only
``\N`` is: an empty field stays an empty string and ``NA`` stays ``NA`` (Namibia's
country code), because text cannot tell a marker from a value.  ``null_values=`` replaces
the list, and then applies to text columns as well.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.tools.extract._file_lines import Why, short

if TYPE_CHECKING:
    import pyarrow as pa

#: ClickHouse's (and MySQL's, PostgreSQL COPY's) marker of a missing value.
CLICKHOUSE_NULL = "\\N"

_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (.+?): invalid value '(.*)'$",
    re.DOTALL,
)
_UTF8 = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid UTF8"
)
_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")


def default_null_markers() -> list[str]:
    r"""Pyarrow's list of missing-value strings (pandas' list, near enough) plus ``\N``."""
    import pyarrow.csv as pcsv

    return [*pcsv.ConvertOptions().null_values, CLICKHOUSE_NULL]


def is_row_error(exc: Exception) -> bool:
    """Whether pyarrow failed on a row (not on the stream, nor on the block size)."""
    text = str(exc)
    return "straddl" not in text and (
        "CSV conversion error" in text or _COLUMNS.search(text) is not None
    )


def text_markers_to_null(batch: pa.RecordBatch) -> pa.RecordBatch:
    r"""``\N`` in text columns as null (the one marker text cannot mean literally)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(batch.columns)
    changed = False
    for index, column in enumerate(columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        marked = pc.equal(column, CLICKHOUSE_NULL)  # measured: ~3 ns a value
        if not marked.true_count:
            continue
        columns[index] = pc.if_else(marked, None, column)
        changed = True
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema) if changed else batch


def column_reason(
    exc: Exception, names: Sequence[str] | None
) -> tuple[str, str | None, str | None]:
    """Pyarrow's message about one row, as ``(reason, column, value)`` in plain words."""
    text = str(exc)

    def name(index: str) -> str:
        position = int(index)
        return names[position] if names and position < len(names) else f"f{position}"

    found = _CONVERSION.search(text)
    if found:
        column, value = name(found.group(1)), found.group(3)
        return f"column {column!r}: cannot read {short(value)} as {found.group(2)}", column, value
    found = _UTF8.search(text)
    if found:
        column = name(found.group(1))
        return f"column {column!r}: the value is not valid UTF-8", column, None
    found = _COLUMNS.search(text)
    if found:
        return f"expected {found.group(1)} columns, got {found.group(2)}", None, None
    return " ".join(text.split()), None, None


def _looks_like_a_marker(value: str) -> bool:
    """Short or without letters and digits (``-``, ``n.a.``, ``None``, ``?``)."""
    text = value.strip()
    return len(text) <= 4 or not any(ch.isalnum() for ch in text)


def conversion_hint(
    column: str,
    value: str,
    *,
    schema_given: bool,
    column_types: Mapping[str, pa.DataType],
    null_values_given: bool,
) -> str:
    """What to change when a value does not convert; never an option already given."""
    if schema_given or column in column_types:
        option = "schema=" if schema_given else "column_types="
        hint = f" ({option} sets the type of {column!r}"
        if _looks_like_a_marker(value):
            markers = "add it to null_values=" if null_values_given else "pass null_values="
            hint += f"; if {short(value)} marks a missing value, {markers}"
        return hint + ")"
    if column_types:
        return (
            f" (the type of {column!r} was inferred from the first block; add {column!r} to "
            "column_types= to choose it)"
        )
    return (
        f" (the type of {column!r} was inferred from the first block; pass "
        f"column_types={{{column!r}: pa.string()}} or schema= to choose it)"
    )


class CsvLineParser:
    """Parses CSV lines with the file's column names and the run's types."""

    def __init__(
        self,
        *,
        names: list[str] | None,
        types: dict[str, pa.DataType],
        include: list[str] | None,
        delimiter: str,
        null_values: list[str],
        strings_can_be_null: bool,
        missing_as_null: bool,
    ) -> None:
        self.names = names
        self.types = types
        self.include = include
        self.delimiter = delimiter
        self.null_values = null_values
        self.strings_can_be_null = strings_can_be_null
        self.missing_as_null = missing_as_null

    def rows_as_text(self, data: bytes) -> int:
        """How many rows pyarrow finds in a block, every value read as text.

        Rows with another number of columns count too: only quoted line breaks can make
        fewer rows than non-empty lines.
        """
        import pyarrow as pa
        import pyarrow.csv as pcsv

        skipped = 0

        def skip(row: object) -> str:
            nonlocal skipped
            del row
            skipped += 1
            return "skip"

        names = self.names
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                use_threads=False,
                block_size=len(data) + 1,
                column_names=names,
                autogenerate_column_names=names is None,
            ),
            parse_options=pcsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=skip),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names or [], pa.string()),
                null_values=[],
                strings_can_be_null=False,
            ),
        )
        return int(table.num_rows) + skipped

    @property
    def fixed(self) -> object | None:
        """Never offered for parsing ahead: CSV blocks are parsed on the reader's thread."""
        return None

    def parse(self, lines: Sequence[bytes]) -> pa.Table:
        """Parse non-empty lines (one row each, else fail) with the file's names and types."""
        table = self.parse_block(b"\n".join(lines) + b"\n", first=False)
        if table.num_rows != len(lines):
            raise ValueError("a quoted value holds a line break")
        return table

    def parse_block(self, data: bytes, *, first: bool) -> pa.Table:
        """Parse a block of whole lines (without the header) as pyarrow's reader would."""
        del first  # every block is read alike: the header was taken off the first
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            return pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(
                    use_threads=False,
                    block_size=len(data) + 1,
                    column_names=self.names,
                    autogenerate_column_names=self.names is None,
                ),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter),
                convert_options=pcsv.ConvertOptions(
                    column_types=self.types,
                    include_columns=self.include,
                    include_missing_columns=self.missing_as_null,
                    null_values=self.null_values,
                    strings_can_be_null=self.strings_can_be_null,
                ),
            )
        except pa.ArrowInvalid as exc:
            if self.names is None and "Empty CSV file" in str(exc):  # only empty lines
                return pa.table({})
            raise

    def fix(self, table: pa.Table) -> None:
        """The first block parsed with inferred types fixes them for the rest."""
        for field in table.schema:
            self.types.setdefault(field.name, field.type)

    def settle(self, lines: Sequence[bytes]) -> None:
        """Nothing to settle: CSV types never conflict between lines read with fixed types."""
        del lines

    def reject(self, line: bytes, error: Exception) -> Why:
        """The reason a line does not fit, and the record to quarantine."""
        reason, column, value = column_reason(error, self.names)
        text = line.decode("utf-8", "replace")
        values = header_names(text, self.delimiter)
        if self.names and len(values) == len(self.names):
            record: dict[str, Any] = dict(zip(self.names, values, strict=True))
        else:
            record = {"text": text}
        return Why(reason, record, column, value)


def read_header(
    line: bytes, delimiter: str, *, include: list[str] | None, missing_as_null: bool
) -> list[str]:
    """The column names of a header line, as pyarrow's CSV reader reads them.

    With ``include`` (a given schema) a column of it the header lacks fails here, as it
    does in pyarrow's reader, and names that are not UTF-8 only matter if selected.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def read(convert: pcsv.ConvertOptions) -> pa.Table:
        return pcsv.read_csv(
            pa.BufferReader(line + b"\n"),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=convert,
        )

    if include is not None:
        read(pcsv.ConvertOptions(include_columns=include, include_missing_columns=missing_as_null))
    try:
        return [str(name) for name in read(pcsv.ConvertOptions()).column_names]
    except UnicodeDecodeError:
        if include is None:
            raise
        return header_names(line.decode("utf-8", "replace"), delimiter)


def header_names(text: str, delimiter: str) -> list[str]:
    """The fields of one CSV line (a header, or a rejected row for the quarantine)."""
    return next(csv.reader([text], delimiter=delimiter), [])
