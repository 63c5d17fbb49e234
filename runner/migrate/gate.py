"""The schema gate: a run refuses a database whose schema is behind this code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import NotReadyError
from runner.migrate.files import head_version
from runner.migrate.history import History

if TYPE_CHECKING:
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse


def schema_gate(settings: Settings, warehouse: Warehouse) -> None:
    """Raise NotReadyError unless every migration of the code is applied."""
    head = head_version(settings.migrations_path)
    if head == 0:
        return
    current = History(warehouse, settings.state_database, settings.cluster).current_version()
    if current < head:
        raise NotReadyError(
            f"database schema is at migration {current}, this code needs {head}: "
            "run `runner migrate`"
        )
