"""Extractors: where a pipeline's data comes from.

``from runner.extract import read_csv, http_json`` — every source a pipeline author
uses, by its short name.  The module behind a name is imported when the name is first
used.  Files (``read_csv``, ``read_jsonl``, ``read_parquet``), HTTP JSON APIs
(``http_json`` with ``PageNumber``, ``OffsetLimit``, ``Cursor`` or ``NextLink``
pagination), a ClickHouse query (``clickhouse_query``) and any Python iterable
(``from_iterable``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner._lazy import lazy_names

if TYPE_CHECKING:
    from runner.tools.extract.clickhouse import clickhouse_query
    from runner.tools.extract.files import read_csv, read_jsonl, read_parquet
    from runner.tools.extract.http import Cursor, NextLink, OffsetLimit, PageNumber, http_json
    from runner.tools.extract.python import from_iterable

_FILES = "runner.tools.extract.files"
_HTTP = "runner.tools.extract.http"
_WHERE = {
    "read_csv": _FILES,
    "read_jsonl": _FILES,
    "read_parquet": _FILES,
    "http_json": _HTTP,
    "PageNumber": _HTTP,
    "OffsetLimit": _HTTP,
    "Cursor": _HTTP,
    "NextLink": _HTTP,
    "clickhouse_query": "runner.tools.extract.clickhouse",
    "from_iterable": "runner.tools.extract.python",
}

__all__ = [
    "Cursor",
    "NextLink",
    "OffsetLimit",
    "PageNumber",
    "clickhouse_query",
    "from_iterable",
    "http_json",
    "read_csv",
    "read_jsonl",
    "read_parquet",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
