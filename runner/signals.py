"""SIGTERM and SIGINT in every phase of a command, not only while a run moves batches.

Kubernetes stops a pod with SIGTERM and kills it after the grace period (30 s by default);
an operator presses Ctrl-C.  Either may come while a command waits: for ClickHouse
(``runner migrate --wait-ready``), for the database or its schema
(``RUNNER_SCHEMA_WAIT_SECONDS``), for a lock (``--lock-timeout``), or for an API.  Two modes
answer it:

* :func:`interrupt_on_signals`, installed once by the CLI's entry point: the first signal
  raises :class:`SignalStop` in the main thread, wherever it waits (a sleep, a socket read,
  a lock poll), so ``finally`` blocks release what is held and the CLI exits 130.
  ``SignalStop`` is a ``BaseException`` (like ``KeyboardInterrupt``), so no ``except
  Exception`` on its way turns it into another error.  Later signals are ignored: the
  cleanup they would cut short is bounded by request timeouts.
* :func:`stop_on_signals`, around work that can stop between batches (a run's execution, a
  local backfill's windows): the first signal only sets a cancel event.  With a deadline
  (a run) it also arms a grace timer, and a second signal ends the grace at once; without
  one (a backfill, whose windows are runs with their own deadlines) the handlers from
  before the block come back, so a second signal stops at once as in any other phase.

:func:`shielded` marks a block that a signal must not cut in half (deleting a Lease; one
migration statement and its history row): a signal arriving inside is raised as the block
ends.  Handlers run in the main thread only, so every helper here is a no-op elsewhere.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalStop(BaseException):
    """Raised in the main thread by the first SIGTERM/SIGINT (the CLI exits 130)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@dataclass
class _Interrupts:
    """What the process-wide handler has seen; touched from the main thread only."""

    fired: bool = False  # SignalStop was raised: later signals are ignored
    shield_depth: int = 0  # inside shielded() blocks
    pending: int | None = None  # a signal that arrived inside a shielded block


_interrupts = _Interrupts()


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt_on_signals() -> None:
    """Make the first SIGTERM/SIGINT raise :class:`SignalStop` in the main thread."""
    if not _on_main_thread():
        return
    global _interrupts  # noqa: PLW0603 - one handler per process, reset on install
    _interrupts = _Interrupts()
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _raise_stop)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    state = _interrupts
    if state.fired or state.pending is not None:
        return  # already stopping
    if state.shield_depth:
        state.pending = signum
        return
    state.fired = True
    raise SignalStop(signum)


def _log_soon(log: Any, event: str, **fields: Any) -> None:
    """Log from a signal handler without writing in it.

    The handler runs between two bytecodes of the main thread, possibly inside a write to
    the same buffered stream, which Python refuses as a reentrant call; another thread
    simply waits for the stream's lock.
    """
    threading.Thread(target=log.warning, args=(event,), kwargs=fields, daemon=True).start()


@contextmanager
def shielded() -> Iterator[None]:
    """Hold back a stop signal until the block ends, then raise it."""
    if not _on_main_thread():
        yield
        return
    state = _interrupts
    state.shield_depth += 1
    try:
        yield
    finally:
        state.shield_depth -= 1
        if state.shield_depth == 0 and state.pending is not None:
            signum, state.pending = state.pending, None
            state.fired = True
            raise SignalStop(signum)


STOP_REQUESTED = "stop requested; finishing the current batch"


@contextmanager
def stop_on_signals(
    cancel: threading.Event,
    log: Any,
    *,
    event: str = STOP_REQUESTED,
    grace_seconds: float = 0.0,
    on_deadline: Callable[[], None] | None = None,
) -> Iterator[None]:
    """The first SIGTERM/SIGINT asks the work to stop between batches (sets ``cancel``).

    ``event`` is logged (from a helper thread, see :func:`_log_soon`) with the signal's
    name.  With ``on_deadline``: if the work has not stopped ``grace_seconds`` later, or a
    second signal comes, ``on_deadline`` runs on a timer thread (it records, releases and
    exits).  Without it, the first signal puts back the handlers from before the block.
    """
    if not _on_main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    timers: list[threading.Timer] = []

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def start_deadline(seconds: float, action: Callable[[], None]) -> None:
        for timer in timers:
            timer.cancel()
        deadline = threading.Timer(seconds, action)
        deadline.daemon = True
        deadline.start()
        timers.append(deadline)

    def handle(signum: int, _frame: FrameType | None) -> None:
        if on_deadline is None:
            _log_soon(log, event, signal=signal.Signals(signum).name)
            cancel.set()
            restore()
        elif cancel.is_set() and timers:
            _log_soon(log, "second stop request; ending the grace period now")
            start_deadline(0, on_deadline)
        else:
            _log_soon(log, event, signal=signal.Signals(signum).name, grace_seconds=grace_seconds)
            cancel.set()
            start_deadline(grace_seconds, on_deadline)

    for stop_signal in STOP_SIGNALS:
        previous[stop_signal] = signal.signal(stop_signal, handle)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        restore()
