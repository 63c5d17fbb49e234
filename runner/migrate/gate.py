"""The schema gate: a run refuses a database whose schema is behind this code.

With the chart's migration hook the schema is at head before any CronJob changes.  A
GitOps tool that applies the migration Job as a plain Job (``migrations.hook=false``)
starts it alongside the new CronJobs, so a run may come first: it then waits, up to
``RUNNER_SCHEMA_WAIT_SECONDS``, re-reading the history with growing pauses, instead of
failing its window at once.  The wait is bounded, and 0 (the default outside the chart)
refuses at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runner.errors import NotReadyError
from runner.log import get_logger
from runner.migrate.files import head_version
from runner.migrate.history import History

if TYPE_CHECKING:
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 15.0


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
    head = head_version(settings.migrations_path)
    if head == 0:
        return
    history = History(warehouse, settings.state_database, settings.cluster)
    budget = settings.schema_wait_seconds if wait_seconds is None else wait_seconds
    deadline = clock() + budget
    pause = FIRST_PAUSE_SECONDS
    current = history.current_version()
    if current < head and budget > 0:
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
        sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        current = history.current_version()
