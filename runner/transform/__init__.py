"""Transforms: what happens to each batch between extract and load.

``from runner.transform import rename, with_columns, validate`` — every transform a
pipeline author uses, by its short name; the module behind a name is imported when the
name is first used.  Columns (``rename``, ``select``, ``drop``, ``cast``), Arrow compute
(``with_columns``, ``where``), rows in Python (``map_rows``, ``filter_rows``), validation
against a pydantic model (``validate``) and de-duplication (``dedupe``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner._lazy import lazy_names

if TYPE_CHECKING:
    from runner.tools.transform.columns import cast, drop, rename, select
    from runner.tools.transform.compute import where, with_columns
    from runner.tools.transform.dedupe import dedupe
    from runner.tools.transform.rows import filter_rows, map_rows
    from runner.tools.transform.validate import validate

_COLUMNS = "runner.tools.transform.columns"
_COMPUTE = "runner.tools.transform.compute"
_ROWS = "runner.tools.transform.rows"
_WHERE = {
    "rename": _COLUMNS,
    "select": _COLUMNS,
    "drop": _COLUMNS,
    "cast": _COLUMNS,
    "with_columns": _COMPUTE,
    "where": _COMPUTE,
    "map_rows": _ROWS,
    "filter_rows": _ROWS,
    "validate": "runner.tools.transform.validate",
    "dedupe": "runner.tools.transform.dedupe",
}

__all__ = [
    "cast",
    "dedupe",
    "drop",
    "filter_rows",
    "map_rows",
    "rename",
    "select",
    "validate",
    "where",
    "with_columns",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
