"""The locks one run holds: its pipeline and window locks, and its liveness lock.

They are taken one by one as the run learns what it needs (the pipeline lock first, the
window's once the window is known) and released together, in reverse order, whatever
happened.  The liveness lock (file locks only, see :mod:`runner.state.liveness`) is
released first and its file removed only once the run's outcome is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.settings import Settings
    from runner.state.liveness import LivenessLock
    from runner.state.locks import Lock


class HeldLocks:
    """The locks one run holds, released together in reverse order."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.held: list[Lock] = []
        self._alive: LivenessLock | None = None
        self._outcome_recorded = False
        self._on_lost: list[Callable[[], None]] = []

    def take(self, name: str) -> None:
        """Acquire ``name`` without waiting (AlreadyRunningError names the holder)."""
        from runner.state.locks import make_lock

        lock = make_lock(self._settings, name)
        lock.acquire()
        self.held.append(lock)
        for callback in self._on_lost:
            lock.on_lost(callback)

    def prove_alive(self, run_id: str) -> None:
        """With file locks, hold the run's liveness lock until the locks are released."""
        from runner.state.liveness import LivenessLock, liveness_path

        path = liveness_path(self._settings, run_id)
        if path is not None:
            alive = LivenessLock(path, self._settings.holder_identity)
            alive.acquire()
            self._alive = alive

    def outcome_recorded(self) -> None:
        """The run's final record is written: its liveness file is no longer needed."""
        self._outcome_recorded = True

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a held lock (or one taken later) loses its hold."""
        self._on_lost.append(callback)
        for lock in self.held:
            lock.on_lost(callback)

    def release(self) -> None:
        """Release every held lock (the liveness lock first)."""
        if self._alive is not None:
            self._alive.release(outcome_recorded=self._outcome_recorded)
            self._alive = None
        while self.held:
            self.held.pop().release()
