"""How whatever ends a run becomes one framework error, and the end of a run's grace period.

A run records every way it can end (runner.services.run): a step's exception arrives as a
:class:`~runner.errors.RunnerError` already, but a framework bug, a step's ``sys.exit``, a
second Ctrl-C or a stop signal do not; they are recorded, logged and shown as one line
like any other error, never as a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from runner.errors import FatalError, InterruptedRunError, RunnerError, error_line
from runner.log import get_logger
from runner.signals import SignalStop

if TYPE_CHECKING:
    from runner.settings import Settings


def framework_error(caught: BaseException) -> RunnerError:
    """A framework error for an exception that is not one (a bug, sys.exit, a second Ctrl-C)."""
    error: RunnerError
    if isinstance(caught, RunnerError):
        return caught
    if isinstance(caught, SignalStop):
        error = InterruptedRunError(f"run {caught}; stopped at once")
    elif isinstance(caught, KeyboardInterrupt):
        error = InterruptedRunError("interrupted again while stopping; stopped at once")
    else:
        error = FatalError(f"unexpected {type(caught).__name__}: {caught}")
    error.__cause__ = caught
    return error


def announce_hard_stop(settings: Settings, run_id: str) -> InterruptedRunError:
    """The grace period is over: say so in the log and on stderr, as the run's error."""
    stopped = InterruptedRunError(
        f"run {run_id} did not stop within the {settings.stop_grace_seconds:g}s grace "
        "period (RUNNER_STOP_GRACE_SECONDS) after the stop signal; recording it as "
        "cancelled, releasing its locks and exiting"
    )
    get_logger().error(
        "run did not stop within the grace period; exiting",
        grace_seconds=settings.stop_grace_seconds,
    )
    sys.stderr.write(error_line(stopped) + "\n")
    sys.stderr.flush()
    return stopped
