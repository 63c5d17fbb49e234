"""The schema gate: a run refuses a database whose schema is behind this code.

With the chart's migration hook the schema is at head before any CronJob changes.  A
GitOps tool that applies the migration Job as a plain Job (``migrations.hook=false``)
starts it alongside the new CronJobs, so a run may come first: on a first install before
the database even exists, on an upgrade before the new migrations are in.  The run then
waits, up to ``RUNNER_SCHEMA_WAIT_SECONDS`` in all, for the database to appear and for its
history to reach the code's head, re-checking with growing pauses, instead of failing its
window at once.  The wait is bounded, a SIGTERM ends it (``runner.signals``), and 0 (the
default outside the chart) refuses at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from runner.errors import DatabaseMissingError, NotReadyError
from runner.log import get_logger
from runner.migrate.files import head_version
from runner.migrate.history import History

if TYPE_CHECKING:
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 15.0


def open_when_ready(
    settings: Settings,
    connect: Callable[[], Warehouse],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Warehouse:
    """Connect and pass the schema gate, waiting for a missing database and for migrations.

    One budget (``settings.schema_wait_seconds``) covers both waits.  Anything else that
    stops ``connect`` (an unreachable server, bad credentials) fails at once as before.
    """
    budget = settings.schema_wait_seconds
    deadline = clock() + budget
    pauses = _pauses()
    logged = False
    while True:
        try:
            warehouse = connect()
            break
        except DatabaseMissingError as exc:
            left = deadline - clock()
            if left <= 0:
                if budget > 0:
                    raise DatabaseMissingError(f"{exc} (waited {budget:g}s)") from None
                raise
            if not logged:
                get_logger().info("waiting for the database", error=str(exc), wait_seconds=budget)
                logged = True
            sleep(min(next(pauses), left))
    try:
        _gate(settings, warehouse, budget, deadline, sleep, clock)
    except BaseException:
        warehouse.close()
        raise
    return warehouse


def schema_gate(
    settings: Settings,
    warehouse: Warehouse,
    *,
    wait_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Raise NotReadyError unless every migration of the code is applied.

    Waits up to ``wait_seconds`` (default ``settings.schema_wait_seconds``) for a
    migration that is still running elsewhere.
    """
    budget = settings.schema_wait_seconds if wait_seconds is None else wait_seconds
    _gate(settings, warehouse, budget, clock() + budget, sleep, clock)


def _pauses() -> Iterator[float]:
    """1, 2, 4, ... seconds, at most LONGEST_PAUSE_SECONDS."""
    pause = FIRST_PAUSE_SECONDS
    while True:
        yield pause
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)


def _gate(  # noqa: PLR0917 - private; the two entry points above
    settings: Settings,
    warehouse: Warehouse,
    budget: float,
    deadline: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    head = head_version(settings.migrations_path)
    if head == 0:
        return
    history = History(warehouse, settings.state_database, settings.cluster)
    pauses = _pauses()
    current = history.current_version()
    if current < head and deadline > clock():
        get_logger().info(
            "waiting for migrations", schema_version=current, needed=head, wait_seconds=budget
        )
    while current < head:
        left = deadline - clock()
        if left <= 0:
            waited = f" after waiting {budget:g}s" if budget > 0 else ""
            raise NotReadyError(
                f"database schema is at migration {current}, this code needs {head}{waited}: "
                "run `runner migrate`"
            )
        sleep(min(next(pauses), left))
        current = history.current_version()
