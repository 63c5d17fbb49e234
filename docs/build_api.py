"""Build the API reference for pipeline authors: HTML pages from the docstrings (pdoc).

``make docs`` writes it to ``docs/api/`` (open ``docs/api/index.html``); CI builds it, and
``tests/test_api_reference.py`` checks that every option of every public entry point is
explained in its docstring.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: What a pipeline author uses, module by module: the entry points whose options must be
#: documented.  The modules are the reference's pages.
PUBLIC_API: dict[str, list[str]] = {
    "runner": [],
    "runner.pipeline.factory": ["etl", "el", "sequential", "parallel", "conditional"],
    "runner.pipeline.context": [],
    "runner.pipeline.checks": [
        "NotNull",
        "Unique",
        "AcceptedValues",
        "RowCountBetween",
        "CustomSql",
    ],
    "runner.pipeline.windows": [],
    "runner.extract": [
        "read_csv",
        "read_jsonl",
        "read_parquet",
        "http_json",
        "PageNumber",
        "OffsetLimit",
        "Cursor",
        "NextLink",
        "clickhouse_query",
        "from_iterable",
    ],
    "runner.transform": [
        "map_rows",
        "filter_rows",
        "rename",
        "select",
        "drop",
        "cast",
        "with_columns",
        "where",
        "validate",
        "dedupe",
    ],
    "runner.load": [
        "clickhouse_append",
        "clickhouse_upsert",
        "clickhouse_replace_window",
        "write_jsonl",
        "write_parquet",
    ],
    "runner.testing": [],
}


def build(output: Path) -> None:
    """Render every public module's page into ``output``."""
    import warnings

    import pdoc
    import pdoc.render

    # type aliases written as strings (TYPE_CHECKING imports) are shown as written
    warnings.filterwarnings("ignore", message="Error parsing type annotation")
    pdoc.render.configure(docformat="restructuredtext", show_source=False, search=True)
    pdoc.pdoc(*PUBLIC_API, output_directory=output)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "api"
    build(target)
    print(f"API reference written to {target / 'index.html'}")  # noqa: T201
