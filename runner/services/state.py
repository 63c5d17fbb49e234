"""``runner state``: operators read, set and reset a pipeline's committed state.

Changes take the pipeline's run lock, so they never race a run that would commit over them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from runner.state.locks import make_lock
from runner.state.watermarks import StateStore
from runner.warehouse.client import Warehouse

if TYPE_CHECKING:
    from runner.pipeline.discovery import Registry
    from runner.settings import Settings


def show_state(settings: Settings, registry: Registry, name: str) -> dict[str, Any]:
    """The committed state of pipeline ``name``."""
    registry.load(name)
    warehouse = Warehouse.connect(settings)
    try:
        return StateStore(warehouse, settings.state_database).load(name)
    finally:
        warehouse.close()


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true, null, objects), otherwise the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def change_state(
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    set_values: dict[str, Any] | None = None,
    reset_keys: list[str] | None = None,
    reset_all: bool = False,
) -> dict[str, Any]:
    """Set keys or reset keys (or everything) under the run lock; returns the new state."""
    registry.load(name)
    warehouse = Warehouse.connect(settings)
    lock = make_lock(settings, f"run:{name}")
    lock.acquire()
    try:
        store = StateStore(warehouse, settings.state_database)
        if set_values:
            store.save(name, set_values, run_id=f"operator:{settings.holder_identity}")
        if reset_all or reset_keys:
            store.reset(name, None if reset_all else reset_keys)
        return store.load(name)
    finally:
        lock.release()
        warehouse.close()
