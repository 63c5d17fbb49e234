"""``runner metrics``: the run history of the whole warehouse as Prometheus metrics.

The same families a run pushes (runner.ops.metrics), built for every pipeline and
trigger from the runs table, plus what only the warehouse knows: runs per status and the
freshness of the tables pipelines declare.  Meant for a node-exporter textfile collector
or a scrape sidecar, so one process answers for every pipeline, including one whose
CronJob stopped firing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runner.ops.outcome import RunOutcome, StepCounts, metric_trigger
from runner.services.run_outcome import schedule_interval_seconds

if TYPE_CHECKING:
    from runner.ops.metrics import RunMetrics
    from runner.pipeline.discovery import LoadFailure, Registry
    from runner.pipeline.spec import Freshness
    from runner.settings import Settings
    from runner.state.runs import RunRecord
    from runner.warehouse.client import Warehouse


@dataclass
class WarehouseMetrics:
    """The metrics, and the pipelines whose files did not load (left out of them)."""

    metrics: RunMetrics
    failures: list[LoadFailure] = field(default_factory=list)


def warehouse_metrics(settings: Settings, registry: Registry) -> WarehouseMetrics:
    """Every pipeline's last run, last success, run counts, schedule and table freshness."""
    from runner.ops.metrics import RunMetrics
    from runner.state.runs import RunHistory
    from runner.warehouse.client import Warehouse

    pipelines, failures = registry.load_all()
    metrics = RunMetrics.new(history=True)
    warehouse = Warehouse.connect(settings)
    try:
        history = RunHistory(warehouse, settings.state_database)
        for record in _newest_per_trigger(history.latest_finished()):
            metrics.add_run(record_outcome(record), success=False)
        for record in _newest_per_trigger(history.latest_finished(succeeded=True)):
            finished = (record.finished_at or record.started_at).timestamp()
            labels = (record.pipeline, metric_trigger(record.trigger))
            metrics.set("last_success_timestamp_seconds", finished, *labels)
        for name, trigger, status, runs in history.finished_counts():
            counted = (name, metric_trigger(trigger), status)
            metrics.gauges["history_runs"].labels(*counted).inc(runs)  # catch-up adds up
        for pipeline in pipelines:
            interval = schedule_interval_seconds(pipeline.spec)
            if interval is not None:
                metrics.set("schedule_interval_seconds", interval, pipeline.name)
            for expectation in pipeline.spec.freshness:
                _freshness(metrics, warehouse, pipeline.name, expectation)
    finally:
        warehouse.close()
    return WarehouseMetrics(metrics, list(failures))


def _newest_per_trigger(records: list[RunRecord]) -> list[RunRecord]:
    """One record per pipeline and metric trigger (catch-up folds into schedule)."""
    newest: dict[tuple[str, str], RunRecord] = {}
    for record in records:
        key = (record.pipeline, metric_trigger(record.trigger))
        known = newest.get(key)
        if known is None or _finished(record) > _finished(known):
            newest[key] = record
    return list(newest.values())


def _finished(record: RunRecord) -> datetime:
    return record.finished_at or record.started_at


def record_outcome(record: RunRecord) -> RunOutcome:
    """A recorded run as an outcome (retries are not recorded: left unknown)."""
    from runner.errors import ExitCode

    counts = {f.name for f in fields(StepCounts)}
    steps = {
        name: StepCounts(**{k: int(v) for k, v in stats.items() if k in counts})
        for name, stats in record.steps.items()
        if isinstance(stats, dict)
    }
    exit_code = {
        "succeeded": ExitCode.OK,
        "cancelled": ExitCode.INTERRUPTED,
    }.get(record.status, _exit_code_of(record.error_class))
    return RunOutcome(
        pipeline=record.pipeline,
        run_id=record.run_id,
        trigger=record.trigger,
        status=record.status,
        finished_at=_finished(record).astimezone(UTC),
        duration_seconds=record.duration_seconds or 0.0,
        window_start=record.window_start,
        window_end=record.window_end,
        exit_code=int(exit_code),
        error_class=record.error_class,
        error=record.error_message,
        steps=steps,
    )


def _exit_code_of(error_class: str) -> int:
    """The exit code a failed run's error class documents (1 for anything else)."""
    from runner import errors

    found = getattr(errors, error_class, None)
    if isinstance(found, type) and issubclass(found, errors.RunnerError):
        return int(found.exit_code)
    return int(errors.ExitCode.FAILED)


def _freshness(
    metrics: RunMetrics, warehouse: Warehouse, pipeline: str, expectation: Freshness
) -> None:
    """Rows and newest value of one declared table; ``freshness_up`` 0 when unreadable."""
    from runner.errors import RunnerError

    labels = (pipeline, expectation.table)
    if expectation.max_age_seconds is not None:
        metrics.set("freshness_max_age_seconds", expectation.max_age_seconds, *labels)
    try:
        rows, newest = warehouse.query_rows(
            f"SELECT count(), toUnixTimestamp64Milli(toDateTime64(max(`{expectation.column}`), "
            f"3, 'UTC')) FROM {warehouse.table(expectation.table)}"  # nosec B608
        )[0]
    except RunnerError:
        metrics.set("freshness_up", 0, *labels)
        return
    metrics.set("freshness_up", 1, *labels)
    metrics.set("freshness_rows", rows, *labels)
    if rows and newest is not None:
        metrics.set("freshness_newest_timestamp_seconds", newest / 1000, *labels)
