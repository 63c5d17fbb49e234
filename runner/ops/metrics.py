"""Prometheus metrics of runs, pushed to a Pushgateway at the end of each run.

A run is a short-lived process, so it pushes (the conventional batch-job way) rather
than being scraped.  Each push goes to the group ``job="pipeline-runner"``,
``pipeline=<name>``, ``trigger=<schedule|manual|backfill>``: the trigger keeps a manual run
or a backfill from overwriting what the schedule's runs said (a manual success must not
hide a CronJob that stopped firing), and catch-up windows count as the schedule's.

Push semantics are chosen per outcome:

* a **succeeded** run PUTs (``push_to_gateway``): the whole group is replaced, so every
  series in it describes this run, and the series of steps that no longer exist go away;
* a **failed or cancelled** run POSTs (``pushadd_to_gateway``) everything except
  ``last_success_timestamp_seconds``: the Pushgateway replaces only the metric names a POST
  carries, so the time of the last success stays as the last successful run pushed it, and
  an alert on its age keeps counting from there.  (A PUT would delete it; a failed run
  cannot re-send it, since it does not know it.)  Per-step series are replaced when the
  failed run reported at least one step; one that failed before its first step leaves
  the earlier run's step series in place (its status and totals are still its own).

``runner metrics`` builds the same families from the run history (one process for the
whole warehouse, for a textfile collector or a scrape sidecar) plus table freshness.
prometheus_client is imported only here, when metrics are wanted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.ops.outcome import RunOutcome, metric_trigger

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from runner.settings import Settings

#: The Pushgateway ``job`` label of every push.
JOB = "pipeline-runner"
PREFIX = "pipeline_runner_"
#: Statuses ``last_run_status`` has a series for (1 for the last run's, 0 for the others).
STATUSES = ("succeeded", "failed", "cancelled")
_RUN = ("pipeline", "trigger")
_STEP = ("pipeline", "trigger", "step")

#: name (without the prefix) -> (help, label names).  The README lists the same.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "last_run_timestamp_seconds": ("When the last run finished (Unix time).", _RUN),
    "last_success_timestamp_seconds": ("When the last succeeded run finished (Unix time).", _RUN),
    "last_run_status": (
        "1 for the status of the last run (succeeded, failed, cancelled), 0 for the others.",
        (*_RUN, "status"),
    ),
    "last_run_exit_code": ("Exit code of the last run (0: succeeded).", _RUN),
    "last_run_duration_seconds": ("Wall time of the last run.", _RUN),
    "last_run_window_end_timestamp_seconds": ("End of the window the last run covered.", _RUN),
    "last_run_rows_extracted": ("Rows the last run read, per step.", _STEP),
    "last_run_rows_loaded": ("Rows the last run's loaders confirmed written, per step.", _STEP),
    "last_run_rows_quarantined": ("Rows the last run set aside as invalid, per step.", _STEP),
    "last_run_bytes_loaded": (
        "Bytes (Arrow, uncompressed) the last run handed to its loaders, per step.",
        _STEP,
    ),
    "last_run_retries": ("Transient errors the last run retried (warehouse, HTTP sources).", _RUN),
    "schedule_interval_seconds": (
        "Longest gap between two fires of the pipeline's schedule.",
        ("pipeline",),
    ),
}
#: What only ``runner metrics`` exports (read from the warehouse, not known to one run).
HISTORY_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "history_runs": ("Finished runs in the run history, per status.", (*_RUN, "status")),
    "freshness_newest_timestamp_seconds": (
        "Newest value of a table's declared freshness column (Unix time).",
        ("pipeline", "table"),
    ),
    "freshness_max_age_seconds": (
        "Declared maximum age of a table's newest row.",
        ("pipeline", "table"),
    ),
    "freshness_rows": (
        "Rows in a table with a declared freshness expectation.",
        ("pipeline", "table"),
    ),
    "freshness_up": ("1 when the table's freshness could be read, else 0.", ("pipeline", "table")),
}


@dataclass
class RunMetrics:
    """The metric families in one registry, filled from outcomes."""

    registry: CollectorRegistry
    gauges: dict[str, Any]

    @classmethod
    def new(cls, *, history: bool = False) -> RunMetrics:
        """A fresh registry with every family (and the history ones with ``history``)."""
        from prometheus_client import CollectorRegistry, Gauge

        registry = CollectorRegistry(auto_describe=True)
        families = {**METRICS, **(HISTORY_METRICS if history else {})}
        gauges = {
            name: Gauge(PREFIX + name, doc, labels, registry=registry)
            for name, (doc, labels) in families.items()
        }
        return cls(registry, gauges)

    def set(self, name: str, value: float, *labels: str) -> None:
        """Set one series."""
        self.gauges[name].labels(*labels).set(value)

    def add_run(self, outcome: RunOutcome, *, success: bool) -> None:
        """The last-run series of ``outcome``; with ``success`` also its success time."""
        run = (outcome.pipeline, metric_trigger(outcome.trigger))
        finished = outcome.finished_at.timestamp()
        self.set("last_run_timestamp_seconds", finished, *run)
        if success:
            self.set("last_success_timestamp_seconds", finished, *run)
        for status in STATUSES:
            self.set("last_run_status", float(status == outcome.status), *run, status)
        self.set("last_run_exit_code", outcome.exit_code, *run)
        self.set("last_run_duration_seconds", outcome.duration_seconds, *run)
        if outcome.window_end is not None:
            self.set("last_run_window_end_timestamp_seconds", outcome.window_end.timestamp(), *run)
        if outcome.retries is not None:
            self.set("last_run_retries", outcome.retries, *run)
        for step, counts in outcome.steps.items():
            self.set("last_run_rows_extracted", counts.rows_extracted, *run, step)
            self.set("last_run_rows_loaded", counts.rows_loaded, *run, step)
            self.set("last_run_rows_quarantined", counts.rows_quarantined, *run, step)
            self.set("last_run_bytes_loaded", counts.bytes_loaded, *run, step)
        if outcome.schedule_interval_seconds is not None:
            self.set(
                "schedule_interval_seconds", outcome.schedule_interval_seconds, outcome.pipeline
            )

    def exposition(self) -> str:
        """The Prometheus text format of every series."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")


def grouping_key(outcome: RunOutcome) -> dict[str, str]:
    """The Pushgateway group of a run's push (besides ``job``)."""
    return {"pipeline": outcome.pipeline, "trigger": metric_trigger(outcome.trigger)}


def push_run_metrics(settings: Settings, outcome: RunOutcome) -> int:
    """Push ``outcome`` to ``RUNNER_PUSHGATEWAY_URL``: PUT on success, POST otherwise.

    Returns the attempts it took; raises :class:`runner.ops.delivery.DeliveryError`.
    """
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    from runner.ops.delivery import deliver

    url = settings.pushgateway_url
    if not url:
        return 0
    succeeded = outcome.status == "succeeded"
    metrics = RunMetrics.new()
    metrics.add_run(outcome, success=succeeded)
    push = push_to_gateway if succeeded else pushadd_to_gateway

    def send(timeout: float) -> None:
        push(
            url,
            job=JOB,
            registry=metrics.registry,
            grouping_key=grouping_key(outcome),
            timeout=timeout,
        )

    return deliver(
        send, attempts=settings.pushgateway_attempts, budget=settings.pushgateway_timeout_seconds
    )


def metric_names(*, history: bool = True) -> Iterable[str]:
    """Every metric name this module exports (with the prefix)."""
    names = [*METRICS, *(HISTORY_METRICS if history else {})]
    return [PREFIX + name for name in names]
