"""A run's outcome as its metrics and alert are made of (runner.ops), sent by an on-finish hook."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING

from runner.ops.outcome import RunOutcome, StepCounts
from runner.services.run_hooks import RunHook

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.pipeline.context import StepStats
    from runner.pipeline.spec import PipelineSpec
    from runner.services.run_hooks import RunOutcome as HookOutcome
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


def ops_outcome(outcome: HookOutcome, *, spec: PipelineSpec, retries: int) -> RunOutcome:
    """What a finished run (as its on-finish hooks see it) tells the outside world."""
    error = outcome.error
    window = outcome.window
    return RunOutcome(
        pipeline=outcome.pipeline,
        run_id=outcome.run_id,
        trigger=outcome.trigger,
        status=outcome.status,
        finished_at=outcome.finished_at,
        duration_seconds=outcome.duration_seconds,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        exit_code=outcome.exit_code,
        error_class=type(error).__name__ if error is not None else "",
        error=str(error) if error is not None else "",
        steps=step_counts(outcome.steps),
        retries=retries,
        schedule_interval_seconds=schedule_interval_seconds(spec),
    )


class OpsReport(RunHook):
    """The on-finish hook that pushes a run's metrics and alerts on its failure.

    Built when the run starts (:func:`ops_hooks`), so the retries it reports are the ones
    counted during this run.  Runs the history does not hold (refused, skipped) are not
    reported: the missing-run alert covers a pipeline that never gets to run.
    """

    def __init__(self, settings: Settings, spec: PipelineSpec) -> None:
        from runner.ops.retries import retries_so_far

        self._settings = settings
        self._spec = spec
        self._retries_at_start = retries_so_far()

    def on_finish(self, outcome: HookOutcome) -> None:
        """Push and alert (bounded by runner.ops.run_finished); never raises."""
        if not outcome.recorded or outcome.status not in _REPORTED:
            return
        from runner.ops.retries import retries_so_far
        from runner.ops.run_finished import on_run_finished

        try:
            report = ops_outcome(
                outcome, spec=self._spec, retries=retries_so_far() - self._retries_at_start
            )
        except Exception as exc:  # noqa: BLE001 - reporting must never change the run's outcome
            from runner.log import get_logger

            get_logger().warning("run outcome not reported", error=f"{type(exc).__name__}: {exc}")
            return
        on_run_finished(self._settings, report)


#: Statuses a run's metrics and alert speak of.
_REPORTED = frozenset({"succeeded", "failed", "cancelled"})


def ops_hooks(settings: Settings, spec: PipelineSpec) -> tuple[RunHook, ...]:
    """The hooks every run gets from the settings: the ops report when a sink is set."""
    if settings.pushgateway_url or settings.alert_webhook_url:
        return (OpsReport(settings, spec),)
    return ()
