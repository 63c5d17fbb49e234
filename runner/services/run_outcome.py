"""A run's result as the outcome its metrics and alert are made of (runner.ops)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING

from runner.ops.outcome import RunOutcome, StepCounts

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.errors import RunnerError
    from runner.pipeline.context import StepStats
    from runner.pipeline.spec import PipelineSpec
    from runner.services.run import RunResult
    from runner.settings import Settings

#: Fires looked at for the schedule's interval: enough to see a weekend or a month's end.
INTERVAL_FIRES = 32


def schedule_interval_seconds(spec: PipelineSpec, at: datetime | None = None) -> float | None:
    """The longest gap between consecutive recent fires of the schedule (None: unscheduled).

    The longest, not the latest: a weekday schedule must not look late on Monday morning.
    """
    from runner.pipeline.windows import previous_fires

    if spec.schedule is None:
        return None
    fires = previous_fires(spec.schedule, spec.zone, at or datetime.now(UTC), INTERVAL_FIRES)
    gaps = [(b - a).total_seconds() for a, b in pairwise(fires)]
    return max(gaps) if gaps else None


def step_counts(steps: Mapping[str, StepStats]) -> dict[str, StepCounts]:
    """Per-step counts of a run's statistics."""
    return {
        name: StepCounts(s.rows_extracted, s.rows_loaded, s.rows_quarantined, s.bytes_loaded)
        for name, s in steps.items()
    }


def run_outcome(
    result: RunResult,
    error: RunnerError | None,
    *,
    spec: PipelineSpec,
    trigger: str,
    retries: int,
) -> RunOutcome:
    """What ``result`` (and the error that ended it, if any) tells the outside world."""
    return RunOutcome(
        pipeline=result.pipeline,
        run_id=result.run_id,
        trigger=trigger,
        status=result.status,
        finished_at=datetime.now(UTC),
        duration_seconds=result.duration_seconds,
        window_start=result.window.start if result.window else None,
        window_end=result.window.end if result.window else None,
        exit_code=int(error.exit_code) if error is not None else 0,
        error_class=type(error).__name__ if error is not None else "",
        error=str(error) if error is not None else "",
        steps=step_counts(result.steps),
        retries=retries,
        schedule_interval_seconds=schedule_interval_seconds(spec),
    )


def report_run(
    settings: Settings,
    result: RunResult,
    error: RunnerError | None,
    *,
    spec: PipelineSpec,
    retries_at_start: int,
) -> None:
    """Push the run's metrics and alert on its failure, if configured; never raises.

    The one call the run service makes when a recorded run has ended (bounded in time:
    see runner.ops.run_finished).
    """
    if not (settings.pushgateway_url or settings.alert_webhook_url):
        return
    from runner.ops.retries import retries_so_far
    from runner.ops.run_finished import on_run_finished

    try:
        outcome = run_outcome(
            result,
            error,
            spec=spec,
            trigger=settings.trigger,
            retries=retries_so_far() - retries_at_start,
        )
    except Exception as exc:  # noqa: BLE001 - reporting must never change the run's outcome
        from runner.log import get_logger

        get_logger().warning("run outcome not reported", error=f"{type(exc).__name__}: {exc}")
        return
    on_run_finished(settings, outcome)
