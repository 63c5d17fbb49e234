"""Loaders: where a pipeline's batches end up.

``from runner.load import clickhouse_upsert, write_parquet`` — every loader a pipeline
author uses, by its short name; the module behind a name is imported when the name is
first used.  ClickHouse tables (``clickhouse_append``, ``clickhouse_upsert``,
``clickhouse_replace_window``) and files (``write_jsonl``, ``write_parquet``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner._lazy import lazy_names

if TYPE_CHECKING:
    from runner.tools.load.clickhouse import clickhouse_append, clickhouse_upsert
    from runner.tools.load.files import write_jsonl, write_parquet
    from runner.tools.load.replace_window import clickhouse_replace_window

_CLICKHOUSE = "runner.tools.load.clickhouse"
_FILES = "runner.tools.load.files"
_WHERE = {
    "clickhouse_append": _CLICKHOUSE,
    "clickhouse_upsert": _CLICKHOUSE,
    "clickhouse_replace_window": "runner.tools.load.replace_window",
    "write_jsonl": _FILES,
    "write_parquet": _FILES,
}

__all__ = [
    "clickhouse_append",
    "clickhouse_replace_window",
    "clickhouse_upsert",
    "write_jsonl",
    "write_parquet",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
