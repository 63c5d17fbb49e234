"""What consecutive runs in one process share: connections, the schema gate, stale-run checks.

``runner run`` makes one run per process; a local backfill makes hundreds.  Each run
needs a connected warehouse whose schema is at the code's head, and marks dead earlier
runs of its pipeline failed.  Done once per run, that was most of a backfill window's
time (two connects, a migration-history read and a run-history scan per window).  A
session does each once per process: connections come from a pool and go back to it, the
schema gate is passed once, and dead runs of a pipeline are looked for once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.pipeline.context import RunResources
from runner.warehouse.pool import WarehousePool

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.settings import Settings
    from runner.warehouse.client import Warehouse


@dataclass
class PooledResources(RunResources):
    """A run's connections, borrowed from a pool and handed back (not closed) at its end."""

    pool: WarehousePool | None = None
    borrowed: list[Warehouse] = field(default_factory=list)

    def open_warehouse(self) -> Warehouse:
        """Borrow a connection for this run."""
        if self.pool is None:  # pragma: no cover - always built with a pool
            return super().open_warehouse()
        warehouse = self.pool.acquire()
        with self.lock:
            self.borrowed.append(warehouse)
        return warehouse

    def discard(self, warehouse: Warehouse) -> None:
        """Close a borrowed connection and take it out of the pool for good."""
        with self.lock:
            if warehouse in self.borrowed:
                self.borrowed.remove(warehouse)
        if self.pool is not None:
            self.pool.discard(warehouse)
        else:  # pragma: no cover - always built with a pool
            warehouse.close()

    def close(self) -> None:
        """Hand every borrowed connection back to the pool."""
        with self.lock:
            borrowed, self.borrowed = self.borrowed, []
        for warehouse in borrowed:
            if self.pool is not None:
                self.pool.release(warehouse)
        super().close()


class RunSession:
    """Shared by the runs of one process; close it when the last run is done."""

    def __init__(self, settings: Settings, connect: Callable[[], Warehouse] | None = None) -> None:
        if connect is None:
            from runner.warehouse.client import Warehouse

            def connect() -> Warehouse:
                return Warehouse.connect(settings)

        self.pool = WarehousePool(connect)
        self._lock = threading.Lock()
        self._schema_checked = False
        self._stale_checked: set[str] = set()

    def resources(self) -> PooledResources:
        """Connections for one run, from the session's pool."""
        return PooledResources(connect=self.pool.acquire, pool=self.pool)

    def open_ready(self, settings: Settings, resources: PooledResources) -> Warehouse:
        """A connection for a run, with the schema gate passed.

        The session's first run (and each one after it until the gate passes) waits, up to
        ``RUNNER_SCHEMA_WAIT_SECONDS`` in all, for a database that does not exist yet and
        for migrations still running (runner.migrate.gate.open_when_ready).
        """
        from runner.migrate.gate import open_when_ready

        with self._lock:
            checked = self._schema_checked
        if checked:
            return resources.open_warehouse()
        tried: list[Warehouse] = []

        def connect() -> Warehouse:
            warehouse = resources.open_warehouse()
            tried.append(warehouse)
            return warehouse

        try:
            warehouse = open_when_ready(settings, connect)
        except BaseException:
            for closed in tried:  # the gate closed it: never hand it out again
                resources.discard(closed)
            raise
        with self._lock:
            self._schema_checked = True
        return warehouse

    def first_look_for_stale(self, pipeline: str) -> bool:
        """True once per pipeline: whether this run should look for dead earlier runs.

        Runs that died before the session began are found by its first scan; one that
        dies later is found by the pipeline's next run outside the session.
        """
        with self._lock:
            if pipeline in self._stale_checked:
                return False
            self._stale_checked.add(pipeline)
            return True

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
