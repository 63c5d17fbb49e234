"""Tables the framework itself writes to, created before the project's migrations.

The quarantine lives beside the data it came from (the pipelines' database); run history,
check results and pipeline state live in the state database, next to the migration
history.  Only ``runner migrate`` (and the testing kit) runs this: a run issues no DDL on
the framework's tables, it relies on the schema gate.

Run history, check results and the quarantine are kept ``RUNNER_RUNS_TTL_DAYS`` /
``RUNNER_QUARANTINE_TTL_DAYS`` days (0: forever) by a TTL on their time column.  Tables
created by an earlier version (no TTL) or with another number of days get the TTL changed
in place (``ALTER TABLE ... MODIFY TTL`` / ``REMOVE TTL``, metadata plus a rewrite of
expired rows); their ORDER BY keys are the ones they always had.  New tables are created
with ``ttl_only_drop_parts = 1``, so expiry drops whole monthly parts instead of rewriting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.pipeline.context import QUARANTINE_TABLE
from runner.state.check_results import TABLE as CHECK_RESULTS_TABLE
from runner.state.check_results import check_results_ddl
from runner.state.runs import TABLE as RUNS_TABLE
from runner.state.runs import runs_ddl
from runner.state.watermarks import state_ddl
from runner.warehouse.sql import on_cluster, qualified_table, quote_identifier

if TYPE_CHECKING:
    from runner.warehouse.client import Warehouse

#: Days kept when nothing else is said (the settings' defaults).
RUNS_TTL_DAYS = 365
QUARANTINE_TTL_DAYS = 90
_TTL_DAYS = re.compile(r"\bTTL toDateTime\((\w+)\) \+ toIntervalDay\((\d+)\)")


@dataclass(frozen=True)
class Retention:
    """Days rows of the expiring framework tables are kept; 0 keeps them forever."""

    runs_days: int = RUNS_TTL_DAYS
    quarantine_days: int = QUARANTINE_TTL_DAYS


def ensure_framework_tables(
    warehouse: Warehouse,
    state_database: str,
    cluster: str | None = None,
    retention: Retention | None = None,
) -> None:
    """Create the framework's tables if missing and set their retention.

    Idempotent; an ALTER only where a table's TTL differs from ``retention``.
    """
    keep = retention or Retention()
    expiring = (
        (warehouse.table(QUARANTINE_TABLE), "quarantined_at", keep.quarantine_days),
        (qualified_table(RUNS_TABLE, state_database), "started_at", keep.runs_days),
        (qualified_table(CHECK_RESULTS_TABLE, state_database), "checked_at", keep.runs_days),
    )
    suffix = {table: _suffix(column, days) for table, column, days in expiring}
    quarantine, runs, results = (table for table, _, _ in expiring)
    warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {quarantine}{on_cluster(cluster)} ("
        " pipeline LowCardinality(String), run_id String, step String,"
        " window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),"
        " reason String, record String, quarantined_at DateTime64(3, 'UTC')"
        ") ENGINE = MergeTree PARTITION BY toYYYYMM(quarantined_at)"
        f" ORDER BY (pipeline, quarantined_at, run_id){suffix[quarantine]}"
    )
    warehouse.command(
        f"CREATE DATABASE IF NOT EXISTS {quote_identifier(state_database)}{on_cluster(cluster)}"
    )
    warehouse.command(runs_ddl(state_database, cluster, suffix[runs]))
    warehouse.command(check_results_ddl(state_database, cluster, suffix[results]))
    warehouse.command(state_ddl(state_database, cluster))
    for table, column, days in expiring:
        _keep_days(warehouse, table, column, days, cluster)


def _suffix(column: str, days: int) -> str:
    if not days:
        return ""
    return f" TTL {_ttl(column, days)} SETTINGS ttl_only_drop_parts = 1"


def _ttl(column: str, days: int) -> str:
    return f"toDateTime({quote_identifier(column)}) + INTERVAL {int(days)} DAY"


def table_ttl_days(warehouse: Warehouse, table: str) -> int | None:
    """The days of a framework table's TTL as the server reports it (None: no TTL)."""
    database, name = (part.strip("`") for part in table.split(".", 1))
    rows = warehouse.query_rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": database, "t": name},
    )
    match = _TTL_DAYS.search(str(rows[0][0])) if rows else None
    return int(match.group(2)) if match else None


def _keep_days(
    warehouse: Warehouse, table: str, column: str, days: int, cluster: str | None
) -> None:
    """Change an existing table's TTL when it is not ``days`` (an older or other setting)."""
    current = table_ttl_days(warehouse, table)
    if current == (days or None):
        return
    change = f"MODIFY TTL {_ttl(column, days)}" if days else "REMOVE TTL"
    warehouse.command(f"ALTER TABLE {table}{on_cluster(cluster)} {change}")
