"""JSON Lines files as a text source: one object per line, fields as columns.

Part of :mod:`runner.tools.extract.files` (``read_jsonl``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.tools.extract import _file_jsonl
from runner.tools.extract._file_blocks import (
    Count,
    json_layout,
)
from runner.tools.extract._file_lines import Rejected
from runner.tools.extract._file_options import DEFAULT_BLOCK_SIZE, JsonLinesOptions
from runner.tools.extract._file_paths import MissingFiles, Paths
from runner.tools.extract._file_text import Start, TextSource
from runner.tools.options import parse_options

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

__all__ = ["JsonLinesSource"]


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
        options = parse_options(JsonLinesOptions, self.name, schema=schema, block_size=block_size)
        self.schema: pa.Schema | None = options.schema_
        super().__init__(
            paths,
            filename_column=filename_column,
            time_column=time_column,
            timezone=timezone,
            missing_files=missing_files,
        )
        self.block_size = options.block_size

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
        parser = _file_jsonl.JsonLineParser(target, ignore_unexpected=self.schema is not None)
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
        return _file_jsonl.is_row_error(exc)

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
