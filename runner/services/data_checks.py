"""Running a pipeline's data checks after its load, inside ClickHouse, on the window's rows.

One entry point, :func:`run_data_checks`, called by the run service once the pipeline
has loaded and before the run is recorded as succeeded (the watermark has not moved
yet).  Each check is one aggregate query over the rows of its table whose time column
lies in the window (:mod:`runner.tools.load.window_rows`, the replace-window loader's
reading), the whole table without a time column.  ReplacingMergeTree-family tables are
read with ``FINAL``, so versions not merged yet are neither duplicates nor extra rows.
``custom_sql`` runs as ``runner query`` does: a reading statement only, ``readonly = 2``,
on a connection of its own (one that ran read-only stays so on the embedded engine).

Results are recorded in ``check_results`` with the run id and logged.  A check whose
query fails (an unknown column, bad SQL) counts as failed with ClickHouse's message; a
warehouse that stops answering fails the run as retriable, as anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runner.errors import CheckFailedError, ConfigError, FatalError
from runner.pipeline.checks import (
    AcceptedValues,
    CustomSql,
    DataCheck,
    NotNull,
    RowCountBetween,
    Unique,
)
from runner.state.check_results import CheckResult, CheckResults
from runner.tools.load.window_rows import time_column_is_date, window_condition
from runner.warehouse.sql import quote_identifier

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext
    from runner.pipeline.kinds import Pipeline
    from runner.warehouse.client import Warehouse

#: Engines whose rows are only final after a merge: read with FINAL.
_FINAL_ENGINES = re.compile(
    r"(Replacing|Collapsing|VersionedCollapsing|Summing|Aggregating)MergeTree$"
)
_EXAMPLES = 3


def run_data_checks(pipeline: Pipeline, ctx: RunContext) -> list[CheckResult]:
    """Run the checks of ``pipeline`` (and of its children) on ``ctx``'s window; record them.

    Returns every result; raises CheckFailedError naming the failed checks when one
    declared ``on_fail="fail"`` failed (after all of them ran and were recorded).
    """
    declared = list(_declared(pipeline, pipeline.name))
    if not declared:
        return []
    results = [_run(ctx, label, check) for label, check in declared]
    CheckResults(ctx.warehouse, ctx.settings.state_database).write(
        ctx.pipeline, ctx.run_id, ctx.window, results
    )
    for result in results:
        level = ctx.log.info if result.outcome == "passed" else ctx.log.warning
        level("data check", **result.as_dict())
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        shown = "; ".join(f"{r.check}: {r.detail}" for r in failed)
        raise CheckFailedError(
            f"{len(failed)} of {len(results)} data checks failed: {shown}", step="checks"
        )
    return results


def _declared(node: Pipeline, root: str) -> Iterator[tuple[str, DataCheck]]:
    """Checks of the tree, a child's named ``<child>/<check>``."""
    for check in node.spec.checks:
        yield (check.label if node.name == root else f"{node.name}/{check.label}"), check
    for child in node.children():
        yield from _declared(child, root)


def _run(ctx: RunContext, label: str, check: DataCheck) -> CheckResult:
    target = check.table if not isinstance(check, CustomSql) else "sql"
    try:
        if isinstance(check, CustomSql):
            rows, detail = _custom_sql(ctx, check)
        else:
            rows, detail = _table_check(ctx, check)
    except (FatalError, ConfigError) as exc:  # bad SQL, a missing table or column
        rows, detail = 0, f"could not run: {getattr(exc, 'message', str(exc))}"
        passed = False
    else:
        passed = detail is None
    return CheckResult(
        check=label,
        kind=check.kind,
        target=target,
        outcome="passed" if passed else ("failed" if check.on_fail == "fail" else "warned"),
        on_fail=check.on_fail,
        rows=rows,
        detail=detail or _passed(check, rows),
    )


def _passed(check: DataCheck, rows: int) -> str:
    if isinstance(check, RowCountBetween):
        return f"{rows} rows"
    return "ok"


def _table_check(
    ctx: RunContext, check: NotNull | Unique | AcceptedValues | RowCountBetween
) -> tuple[int, str | None]:
    """What the check counted, and what is wrong (None: it passed)."""
    wh = ctx.warehouse
    source, where, params = _window_rows(ctx, wh, check.table, check.time_column)
    if isinstance(check, NotNull):
        column = quote_identifier(check.column, what="column")
        sql = f"SELECT countIf(isNull({column})) FROM {source} WHERE {where}"  # nosec B608
        found = int(wh.query_rows(sql, params)[0][0])
        return found, f"{found} rows with {check.column} NULL" if found else None
    if isinstance(check, Unique):
        key = ", ".join(quote_identifier(c, what="column") for c in check.columns)
        sql = (
            "SELECT count(), sum(n) FROM (SELECT count() AS n "  # nosec B608
            f"FROM {source} WHERE {where} GROUP BY {key} HAVING n > 1)"
        )
        keys, found = (int(v or 0) for v in wh.query_rows(sql, params)[0])
        named = ", ".join(check.columns)
        return (
            found,
            f"{keys} values of ({named}) occur more than once ({found} rows)" if keys else None,
        )
    if isinstance(check, AcceptedValues):
        column = quote_identifier(check.column, what="column")
        sql = (
            f"SELECT count(), groupUniqArray({_EXAMPLES})(toString({column})) "  # nosec B608
            f"FROM {source} WHERE ({where}) "
            f"AND toString({column}) NOT IN {{accepted:Array(String)}}"
        )
        count, examples = wh.query_rows(sql, {**params, "accepted": check.texts})[0]
        found = int(count)
        shown = ", ".join(repr(e) for e in sorted(examples))
        return (
            found,
            f"{found} rows with {check.column} not accepted, e.g. {shown}" if found else None,
        )
    sql = f"SELECT count() FROM {source} WHERE {where}"  # nosec B608
    found = int(wh.query_rows(sql, params)[0][0])
    low, high = check.min, check.max
    if (low is not None and found < low) or (high is not None and found > high):
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        return found, f"{found} rows, expected between {bounds}"
    return found, None


def _window_rows(
    ctx: RunContext, wh: Warehouse, table: str, time_column: str | None
) -> tuple[str, str, dict[str, Any]]:
    """``FROM`` source (with FINAL where merges decide), the window condition, parameters."""
    database, _, name = table.rpartition(".")
    database = database or wh.database
    engines = wh.query_rows(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": database, "t": name},
    )
    if not engines:
        raise ConfigError(f"table {database}.{name} does not exist")
    final = " FINAL" if _FINAL_ENGINES.search(str(engines[0][0])) else ""
    source = f"{wh.table(table)}{final}"
    if time_column is None:
        return source, "1", {}
    is_date = time_column_is_date(wh, database, name, time_column, what="data check")
    where, params = window_condition(time_column, ctx.window, date_column=is_date)
    return source, where, params


def _custom_sql(ctx: RunContext, check: CustomSql) -> tuple[int, str | None]:
    """Rows the check's query returns, counted on a read-only connection of its own."""
    from runner.warehouse.client import Warehouse
    from runner.warehouse.read_only import READ_ONLY, check_read_only, parse_statement

    statement = parse_statement(check.sql)
    check_read_only(statement, refused_by="a custom_sql check")  # declared so; never sent else
    known: dict[str, Any] = {
        "window_start": ctx.window.start,
        "window_end": ctx.window.end,
        "pipeline": ctx.pipeline,
        "run_id": ctx.run_id,
    }
    params = {k: known[k] for k in check.parameters} or None
    warehouse = Warehouse.connect(ctx.settings)
    try:
        table = warehouse.query_arrow(
            # the check's own SELECT, parsed as one read when it was declared
            f"SELECT count() FROM ({statement.sql})",  # nosec B608
            params,
            settings=READ_ONLY,
        )
    finally:
        warehouse.close()
    found = int(table.column(0)[0].as_py())
    return found, f"the query returned {found} rows" if found else None
