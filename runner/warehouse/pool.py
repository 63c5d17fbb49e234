"""Warehouse connections kept open and handed out again, for many runs in one process.

Opening a connection costs far more than a small query: on the embedded engine about
65 ms (an engine handle and a probe of the server's settings), over HTTP a TLS handshake
and the same probe.  A local backfill of hundreds of windows would spend most of its time
connecting, so its runs borrow connections from one pool.  The pool grows to the number
of connections in use at once (one per running window, plus a loader's concurrent
inserts) and never beyond; each connection is used by one borrower at a time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.warehouse.client import Warehouse


class WarehousePool:
    """Idle connections, reused before a new one is opened; closed together at the end."""

    def __init__(self, connect: Callable[[], Warehouse]) -> None:
        self._connect = connect
        self._idle: list[Warehouse] = []
        self._all: list[Warehouse] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Warehouse:
        """An idle connection, or a new one when every open one is in use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the warehouse pool is closed")
            if self._idle:
                return self._idle.pop()
        warehouse = self._connect()  # outside the lock: connecting may wait on the network
        with self._lock:
            self._all.append(warehouse)
        return warehouse

    def release(self, warehouse: Warehouse) -> None:
        """Hand a borrowed connection back for the next borrower."""
        with self._lock:
            if not self._closed:
                self._idle.append(warehouse)
                return
            if warehouse in self._all:
                self._all.remove(warehouse)
        warehouse.close()

    def discard(self, warehouse: Warehouse) -> None:
        """Close a borrowed connection instead of handing it back (it failed its checks)."""
        with self._lock:
            if warehouse in self._all:
                self._all.remove(warehouse)
        warehouse.close()

    @property
    def size(self) -> int:
        """How many connections the pool has opened and not closed."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """Close every connection; borrowed ones are closed when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for warehouse in idle:
                self._all.remove(warehouse)
        for warehouse in idle:
            warehouse.close()
