"""``runner migrate``: bring the warehouse to the schema of this code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.log import get_logger
from runner.migrate.apply import Applied, apply_pending
from runner.migrate.framework import ensure_framework_tables
from runner.warehouse.client import Warehouse

if TYPE_CHECKING:
    from runner.settings import Settings


def migrate(settings: Settings) -> list[Applied]:
    """Create the database if needed and apply pending migrations."""
    warehouse = Warehouse.connect(settings, ensure_database=True)
    log = get_logger(database=warehouse.database, warehouse=warehouse.target.describe())
    try:
        ensure_framework_tables(warehouse)
        applied = apply_pending(warehouse, settings.migrations_path)
    finally:
        warehouse.close()
    for item in applied:
        log.info(
            "migration applied",
            version=item.version,
            name=item.name,
            statements=item.statements,
            seconds=round(item.seconds, 3),
        )
    log.info("migrations up to date", applied=len(applied))
    return applied
