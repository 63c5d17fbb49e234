"""The one call a run makes when it has ended: push its metrics, alert on its failure.

``on_run_finished`` never raises (a run's outcome and exit code are the run's, whatever
the Pushgateway or the chat server do) and never takes much longer than the larger of
the two budgets (``RUNNER_PUSHGATEWAY_TIMEOUT_SECONDS``, ``RUNNER_ALERT_TIMEOUT_SECONDS``):
each delivery runs on a daemon thread, and the caller stops waiting at the deadline even
if a receiver trickles bytes slowly enough to defeat socket timeouts.  A thread still
sending then dies with the process.  With neither URL set it returns at once and imports
nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import copy_context
from typing import TYPE_CHECKING

from runner.log import get_logger

if TYPE_CHECKING:
    from runner.ops.outcome import RunOutcome
    from runner.settings import Settings

#: Added to the budget before the caller gives up waiting (thread start, the last read).
JOIN_MARGIN_SECONDS = 0.5


def on_run_finished(settings: Settings, outcome: RunOutcome) -> None:
    """Push the run's metrics and send its failure alert, concurrently and bounded."""
    try:
        deliveries = _deliveries(settings, outcome)
        if not deliveries:
            return
        started = time.monotonic()
        threads = [  # each with the run's bound log context (pipeline, run_id, window)
            (
                name,
                budget,
                threading.Thread(target=copy_context().run, args=(_send, name, send), daemon=True),
            )
            for name, budget, send in deliveries
        ]
        for _, _, thread in threads:
            thread.start()
        for name, budget, thread in threads:
            thread.join(max(0.0, started + budget + JOIN_MARGIN_SECONDS - time.monotonic()))
            if thread.is_alive():
                get_logger().warning(
                    f"{name} not sent within {budget:g} s; not waiting for it", delivery=name
                )
    except Exception as exc:  # noqa: BLE001 - reporting must never change the run's outcome
        get_logger().warning("run outcome not reported", error=f"{type(exc).__name__}: {exc}")


def _deliveries(
    settings: Settings, outcome: RunOutcome
) -> list[tuple[str, float, Callable[[], int]]]:
    """What this outcome needs sent, each with its time budget."""
    out: list[tuple[str, float, Callable[[], int]]] = []
    if settings.pushgateway_url:
        from runner.ops.metrics import push_run_metrics

        out.append(
            (
                "metrics",
                settings.pushgateway_timeout_seconds,
                lambda: push_run_metrics(settings, outcome),
            )
        )
    if settings.alert_webhook_url is not None and outcome.failed:
        from runner.ops.alerts import send_failure_alert

        out.append(
            ("alert", settings.alert_timeout_seconds, lambda: send_failure_alert(settings, outcome))
        )
    return out


def _send(name: str, send: Callable[[], int]) -> None:
    """Run one delivery on its thread; its failure is a warning in the log."""
    log = get_logger()
    try:
        attempts = send()
    except Exception as exc:  # noqa: BLE001 - DeliveryError, or a bug: logged either way
        log.warning(f"{name} not sent", delivery=name, error=str(exc))
    else:
        log.info(f"{name} sent", delivery=name, attempts=attempts)
