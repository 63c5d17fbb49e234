"""Tables the framework itself writes to, created before the project's migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.pipeline.context import QUARANTINE_TABLE

if TYPE_CHECKING:
    from runner.warehouse.client import Warehouse


def ensure_framework_tables(warehouse: Warehouse) -> None:
    """Create the quarantine table if missing (idempotent)."""
    warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {warehouse.table(QUARANTINE_TABLE)} ("
        " pipeline LowCardinality(String), run_id String, step String,"
        " window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),"
        " reason String, record String, quarantined_at DateTime64(3, 'UTC')"
        ") ENGINE = MergeTree PARTITION BY toYYYYMM(quarantined_at)"
        " ORDER BY (pipeline, quarantined_at, run_id)"
    )
