"""The options of the loaders, as pydantic models (see :mod:`runner.tools.options`).

Checked once, at declaration.  The table name and a file path template keep their own
parsers (:func:`runner.warehouse.sql.check_identifier`, ``files._check_template``): they
are grammars, not types.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from runner.tools.options import ToolOptions
from runner.warehouse.sql import check_identifier

__all__ = [
    "MAX_INSERT_THREADS",
    "PARQUET_COMPRESSIONS",
    "ClickHouseOptions",
    "ParquetOptions",
    "ReplaceWindowOptions",
]

MAX_INSERT_THREADS = 16
PARQUET_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


class ClickHouseOptions(ToolOptions):
    """What every ClickHouse loader takes."""

    deduplicate: bool = True
    insert_threads: Annotated[int, Field(ge=1, le=MAX_INSERT_THREADS)] | None = None
    on_invalid: Literal["fail", "quarantine"] = "fail"


def _fraction(value: float) -> float:
    if not 0 < value <= 1:
        raise ValueError(
            "must be a number above 0 and at most 1 (e.g. 0.5: refuse to replace a window "
            f"by less than half its rows), not {value!r}"
        )
    return value


def _time_column(name: str) -> str:
    return check_identifier(name, what="time column")


class ReplaceWindowOptions(ToolOptions):
    """What only ``clickhouse_replace_window`` takes."""

    time_column: Annotated[str, AfterValidator(_time_column)]
    allow_empty: bool = False
    min_fraction: Annotated[float, AfterValidator(_fraction)] | None = None


def _codec(name: str) -> str:
    if name.lower() not in PARQUET_COMPRESSIONS:
        raise ValueError(f"must be one of {', '.join(PARQUET_COMPRESSIONS)}, not {name!r}")
    return name.lower()


class ParquetOptions(ToolOptions):
    """What only ``write_parquet`` takes."""

    compression: Annotated[str, AfterValidator(_codec)] = "zstd"
