"""A running run's heartbeat: its record re-written while it runs, and its locks watched.

The next run judges a ``running`` record dead by its heartbeat when no liveness lock can
prove it (Leases, no locks; see :mod:`runner.state.liveness`).  A lock that loses its hold
(a Lease not renewed in time) cancels the run at once, so it stops between batches before
another run can take the window over.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runner.errors import RunnerError
from runner.log import get_logger

if TYPE_CHECKING:
    from runner.pipeline.context import StepStats
    from runner.state.run_locks import HeldLocks
    from runner.state.runs import RunHistory, RunRecord


class Heartbeat:
    """Re-records a running run every ``interval`` seconds; stops the run if a lock is lost."""

    def __init__(  # noqa: PLR0917 - all required, named at the one call site
        self,
        history: RunHistory,
        record: RunRecord,
        steps: dict[str, StepStats],
        interval: float,
        locks: HeldLocks,
        cancel: threading.Event,
    ) -> None:
        self._history = history
        self._record = record
        self._steps = steps
        self._interval = interval
        self._locks = locks
        self._cancel = cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._locks.on_lost(self._lost)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _lost(self) -> None:
        """A lock lost its hold: stop between batches (runs on the lock's watching thread)."""
        if not self._cancel.is_set():
            get_logger().error("run lock lost; stopping the run between batches")
        self._cancel.set()

    def _beat(self) -> None:
        from runner.state.runs import apply_stats

        log = get_logger()
        while not self._stop.wait(self._interval):
            self._record.heartbeat_at = datetime.now(UTC)
            apply_stats(self._record, self._steps)
            try:
                self._history.write(self._record)
            except RunnerError as exc:
                log.warning("heartbeat not recorded", error=str(exc))
