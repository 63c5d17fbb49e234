"""Tables the framework itself writes to, created before the project's migrations.

The quarantine lives beside the data it came from (the pipelines' database); run history
and pipeline state live in the state database, next to the migration history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.pipeline.context import QUARANTINE_TABLE
from runner.state.runs import runs_ddl
from runner.state.watermarks import state_ddl
from runner.warehouse.sql import on_cluster, quote_identifier

if TYPE_CHECKING:
    from runner.warehouse.client import Warehouse


def ensure_framework_tables(
    warehouse: Warehouse, state_database: str, cluster: str | None = None
) -> None:
    """Create the quarantine, runs and state tables if missing (idempotent)."""
    warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {warehouse.table(QUARANTINE_TABLE)}{on_cluster(cluster)} ("
        " pipeline LowCardinality(String), run_id String, step String,"
        " window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),"
        " reason String, record String, quarantined_at DateTime64(3, 'UTC')"
        ") ENGINE = MergeTree PARTITION BY toYYYYMM(quarantined_at)"
        " ORDER BY (pipeline, quarantined_at, run_id)"
    )
    warehouse.command(
        f"CREATE DATABASE IF NOT EXISTS {quote_identifier(state_database)}{on_cluster(cluster)}"
    )
    warehouse.command(runs_ddl(state_database, cluster))
    warehouse.command(state_ddl(state_database, cluster))
