"""The options of ``read_csv``, ``read_jsonl`` and ``read_parquet``, as pydantic models.

Checked once, at declaration (see :mod:`runner.tools.options` for how a problem reads).
What depends on the class of source (a time column among the columns read, a file-name
column clashing with the schema) stays in :class:`~runner.tools.extract._file_source.FileSource`.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from runner.tools.extract._file_paths import Paths, check_patterns
from runner.tools.options import ToolOptions

__all__ = ["CsvOptions", "FileOptions", "JsonLinesOptions", "ParquetOptions", "zone_of"]

#: Bytes parsed at a time by the CSV and JSON readers; bounds memory per file.
DEFAULT_BLOCK_SIZE = 4 << 20

ColumnName = Annotated[str, Field(min_length=1)]


def _patterns(paths: Paths) -> tuple[str, ...]:
    return check_patterns(paths)  # raises ConfigError itself, with its own wording


def _known_zone(timezone: str | None) -> str | None:
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{timezone!r} is not a known IANA zone (e.g. 'Europe/Berlin')"
            ) from None
    return timezone


def zone_of(timezone: str | None) -> tzinfo:
    """The zone a path template's periods are taken in: UTC unless named."""
    return UTC if timezone is None else ZoneInfo(timezone)


def _arrow_schema(schema: Any) -> Any:
    import pyarrow as pa

    if schema is not None and not isinstance(schema, pa.Schema):
        raise ValueError(f"must be a pyarrow.Schema, not {type(schema).__name__}")
    return schema


def _arrow_type(dtype: Any) -> Any:
    import pyarrow as pa

    if not isinstance(dtype, pa.DataType):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueErrors, not TypeErrors
            f"must be a pyarrow type such as pa.int64(), not {dtype!r}"
        )
    return dtype


def _one_character(delimiter: str) -> str:
    if len(delimiter) != 1 or delimiter in "\r\n":
        raise ValueError(f"must be one character, not {delimiter!r}")
    return delimiter


def _distinct_names(columns: list[str] | None) -> list[str] | None:
    if columns is not None:
        if not columns:
            raise ValueError("must be a non-empty list of column names")
        if len(set(columns)) != len(columns):
            raise ValueError(f"lists a column twice: {columns}")
    return columns


Schema = Annotated[Any, AfterValidator(_arrow_schema)]
BlockSize = Annotated[int, Field(gt=0)]


class FileOptions(ToolOptions):
    """What every file source takes: which files, and how to read their rows."""

    paths: Annotated[tuple[str, ...], BeforeValidator(_patterns)]
    filename_column: ColumnName | None = None
    time_column: ColumnName | None = None
    timezone: Annotated[str | None, AfterValidator(_known_zone)] = None
    missing_files: Literal["fail", "skip"] = "fail"
    missing_columns: Literal["fail", "null"] = "fail"


class CsvOptions(ToolOptions):
    """What only ``read_csv`` takes."""

    schema_: Schema = Field(default=None, alias="schema")
    delimiter: Annotated[str, AfterValidator(_one_character)] = ","
    header: bool = True
    column_types: dict[str, Annotated[Any, AfterValidator(_arrow_type)]] | None = Field(
        default=None, strict=False
    )
    null_values: list[str] | None = Field(default=None, strict=False)
    block_size: BlockSize = DEFAULT_BLOCK_SIZE

    @model_validator(mode="after")
    def _schema_or_types(self) -> CsvOptions:
        if self.schema_ is not None and self.column_types:
            raise ValueError("give either schema= or column_types=, not both")
        return self


class JsonLinesOptions(ToolOptions):
    """What only ``read_jsonl`` takes."""

    schema_: Schema = Field(default=None, alias="schema")
    block_size: BlockSize = DEFAULT_BLOCK_SIZE


class ParquetOptions(ToolOptions):
    """What only ``read_parquet`` takes."""

    columns: Annotated[list[ColumnName] | None, AfterValidator(_distinct_names)] = Field(
        default=None, strict=False
    )
    schema_: Schema = Field(default=None, alias="schema")

    @model_validator(mode="after")
    def _schema_or_columns(self) -> ParquetOptions:
        if self.schema_ is not None and self.columns is not None:
            raise ValueError("give either schema= or columns=, not both")
        return self
