"""Parquet files: column selection, row groups of the window, bounded batches.

Part of :mod:`runner.tools.extract.files` (``read_parquet``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.tools.extract._file_archives import Entry, local_file
from runner.tools.extract._file_options import ParquetOptions
from runner.tools.extract._file_paths import MissingFiles, Paths
from runner.tools.extract._file_source import (
    FileSource,
    MissingColumns,
)
from runner.tools.options import parse_options

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

__all__ = ["ParquetSource"]

#: Bytes read at a time from a Parquet column chunk (instead of whole row groups).
PARQUET_BUFFER_SIZE = 1 << 20


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
        options = parse_options(ParquetOptions, self.name, columns=columns, schema=schema)
        self.schema: pa.Schema | None = options.schema_
        self.columns = options.columns
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
