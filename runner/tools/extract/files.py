"""Reading CSV, JSON Lines and Parquet files, streamed as bounded Arrow batches.

Which files: paths and glob patterns (``data/*.csv``, ``data/**/*.jsonl.gz``) and window
templates (``data/{window_start:%Y/%m/%d}/*.csv``), resolved when the run starts,
relative to the working directory of the process (see ``_file_paths``).  Each pattern's
matches are read in sorted order, patterns in the order given; a file matched twice is
read once.  Compression and zip archives are recognised by their first bytes (see
``_file_archives``).

Every batch of one run has the same schema: the given one, or the one of the first file
that has rows (for Parquet, which states its schema, simply the first file).  Later
files are converted to it while they are parsed (CSV, JSON) or cast (Parquet); a file
whose columns do not fit fails the run with its name in the message, because silently
mixing shapes would load wrong data.

A row that does not fit (a value of the wrong type, a broken line) makes the text
readers re-read the rest of that file line by line (see ``_file_lines``): the rows that
fit go on, the others are rejected through ``ctx.reject`` (quarantined when the flow has
a ``validate(on_error="skip")`` step, otherwise the run fails naming file, line and
field).  ``time_column=`` keeps only the rows of the run's window (see ``_file_window``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.tools.extract._csv_source import CsvSource
from runner.tools.extract._file_options import DEFAULT_BLOCK_SIZE
from runner.tools.extract._file_paths import MissingFiles, Paths
from runner.tools.extract._file_source import (
    FileSource,
    MissingColumns,
)
from runner.tools.extract._jsonl_source import JsonLinesSource
from runner.tools.extract._parquet_source import ParquetSource

if TYPE_CHECKING:
    import pyarrow as pa


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


def compression_of(path: Path | str) -> str | None:
    """The pyarrow codec implied by the file name, or None for plain files."""
    return COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower())


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
