"""``runner query "SQL"`` (alias ``runner sql``): ad-hoc reads of the configured warehouse.

Rows are written as they arrive: CSV and JSON stream, a table shows the first
``TABLE_ROWS`` rows (aligned columns need them all in memory) and counts the rest.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli.output import print_table
from runner.cli.shared import ProjectOption, guarded, settings

if TYPE_CHECKING:
    from pathlib import Path

    from runner.services.query import Rows

TABLE_ROWS = 1000


class Format(StrEnum):
    """Output formats of ``runner query``."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@guarded
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement; '-' reads it from stdin.")],
    output: Annotated[
        Format, typer.Option("--output", "-o", help="table, json (an array of objects) or csv.")
    ] = Format.TABLE,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Allow statements that change data or schema (default: read-only)."
        ),
    ] = False,
    project_dir: ProjectOption = None,
) -> None:
    """Run one SQL statement on the configured warehouse and print its rows.

    Read-only unless --write: only statements that read (SELECT, WITH, SHOW, DESCRIBE,
    EXPLAIN, EXISTS), run with ClickHouse's readonly setting so the server refuses any
    write; a refused write exits 2. Bad SQL exits 1, an unreachable warehouse 4.
    """
    from runner.services.query import ReadOnlyError

    try:
        _run(sql, output, write=write, project_dir=project_dir)
    except ReadOnlyError as exc:
        raise ReadOnlyError(f"{exc}: pass --write to change data") from None


def _run(sql: str, output: Format, *, write: bool, project_dir: Path | None) -> None:
    from runner.services.query import check_read_only, parse_statement, query_rows, run_command

    statement = parse_statement(sys.stdin.read() if sql == "-" else sql)
    if not write:
        check_read_only(statement)
    current = settings(project_dir)
    if not statement.returns_rows:
        run_command(current, statement, write=write)
        typer.echo("ok", err=True)
        return
    with query_rows(current, statement, write=write) as rows:
        {Format.TABLE: _table, Format.JSON: _json, Format.CSV: _csv}[output](rows)


def _text(value: Any) -> str:
    """A value as text for tables and CSV: ISO times, JSON for arrays and maps."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _table(rows: Rows) -> None:
    from runner.services.query import python_rows

    shown: list[dict[str, str]] = []
    hidden = 0
    for batch in rows.batches():
        for row in python_rows(batch):
            if len(shown) < TABLE_ROWS:
                shown.append({str(i): "NULL" if v is None else _text(v) for i, v in enumerate(row)})
            else:
                hidden += 1
    names = rows.column_names()
    print_table(shown, [str(i) for i in range(len(names))], titles=names, empty="")
    if hidden:
        typer.echo(
            f"... {hidden} more rows not shown (-o csv or -o json prints them all)", err=True
        )


def _json(rows: Rows) -> None:
    from runner.services.query import python_rows

    out = sys.stdout
    out.write("[")
    first = True
    for batch in rows.batches():
        names = batch.schema.names
        for row in python_rows(batch):
            item = dict(zip(names, row, strict=True))
            text = json.dumps(item, default=_json_default, ensure_ascii=False)
            out.write(("\n  " if first else ",\n  ") + text)
            first = False
    out.write("]\n" if first else "\n]\n")
    out.flush()


def _csv(rows: Rows) -> None:
    from runner.services.query import python_rows

    writer = csv.writer(sys.stdout, lineterminator="\n")
    header = False
    for batch in rows.batches():
        if not header:
            writer.writerow(batch.schema.names)
            header = True
        writer.writerows(["" if v is None else _text(v) for v in row] for row in python_rows(batch))
    if not header:
        writer.writerow(rows.column_names())
    sys.stdout.flush()
