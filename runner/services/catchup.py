"""A scheduled run: first the earlier windows that never succeeded, then its own window.

A CronJob whose Jobs were not created (controller down, ``suspend``, a failed deploy) or
failed leaves windows unloaded; nothing else would ever load them.  So a scheduled run
(``RUNNER_TRIGGER=schedule``, no ``--start/--end``) first looks at the ``catchup``
scheduled windows right before its own (a declaration option, default 3) and loads, oldest
first, each one no succeeded run covers: each as its own run (trigger ``catchup``) with
that window's lock and deduplication tokens, exactly as a backfill of it, all through one
run session (one connection, one schema gate).  Then it runs its own window.

- A window still running elsewhere (its lock is held) is left to that run; one that
  succeeded meanwhile (a backfill) is skipped: the check is repeated under its lock.
- Nothing before the pipeline's first recorded run is caught up (so a first run loads its
  own window only), and never more than ``catchup`` windows: older windows that never
  succeeded are a backfill's job, and the log names the exact ``runner backfill run``
  command.
- A failed catch-up window does not stop the others nor the run's own window (windows
  are independent), and the next scheduled runs try it again while it is within the
  bound; the process then exits with that window's error (the run's own window's error
  first, if it failed too), so the Job shows the failure.  A stop signal stops all.
- Incremental pipelines catch up through their watermark: no catch-up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING

import structlog

from runner.errors import AlreadyRunningError, InterruptedRunError, RunnerError
from runner.log import get_logger
from runner.pipeline.windows import Window, is_fire_time, previous_fires, schedule_window
from runner.services.window_source import RunTime, run_time

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from runner.log import RunLogFile
    from runner.pipeline.discovery import Registry
    from runner.pipeline.spec import PipelineSpec
    from runner.services.run_hooks import RunHook
    from runner.services.run_record import RunResult
    from runner.services.session import RunSession
    from runner.settings import Settings
    from runner.state.runs import RunHistory
    from runner.warehouse.client import Warehouse

CATCHUP_TRIGGER = "catchup"


@dataclass(frozen=True)
class CatchupPlan:
    """The windows a scheduled run loads before its own, and the gap it leaves."""

    windows: tuple[Window, ...] = ()
    older_gap: Window | None = None  # never succeeded, older than the bound
    reason: str = ""  # why there is nothing to look at, when there is not


def plan_catchup(spec: PipelineSpec, history: RunHistory, current: Window) -> CatchupPlan:
    """What a scheduled run of ``current`` catches up first, oldest first."""
    if spec.schedule is None or spec.incremental:
        return CatchupPlan(reason="not a scheduled window pipeline")
    if spec.catchup == 0:
        return CatchupPlan(reason="catchup is 0")
    first = history.first_window_start(spec.name)
    if first is None:
        return CatchupPlan(reason="first run of the pipeline")
    fires = previous_fires(spec.schedule, spec.zone, current.start, spec.catchup + 1)
    bound = fires[0]
    succeeded = history.succeeded_windows(spec.name, bound, current.start)
    windows = tuple(
        window
        for window in (Window(start, end) for start, end in pairwise(fires))
        if window.start >= first and not _covered(window, succeeded)
    )
    older_gap = None
    if first < bound:
        gap_start = history.latest_success_end(spec.name, before=bound) or first
        older_gap = Window(gap_start, bound) if gap_start < bound else None
    return CatchupPlan(windows, older_gap)


def _covered(window: Window, succeeded: list[tuple[datetime, datetime]]) -> bool:
    return any(start <= window.start and end >= window.end for start, end in succeeded)


def backfill_command(name: str, gap: Window) -> str:
    """The command that loads ``gap``'s windows that never succeeded."""
    return f"runner backfill run {name} --start {gap.start.isoformat()} --end {gap.end.isoformat()}"


def run_scheduled(
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    params: Mapping[str, str] | None = None,
    dry_run: bool = False,
    log_file: RunLogFile | None = None,
    now: datetime | None = None,
    connect: Callable[[], Warehouse] | None = None,
    cancel: threading.Event | None = None,
    hooks: Sequence[RunHook] = (),
) -> RunResult:
    """Run ``name`` without an explicit window: catch up (scheduled runs), then its own.

    ``now`` is the clock (tests pass one).  Raises the run's own error, else the first
    catch-up window's error, after both were tried.  ``hooks`` plug into every run made
    (runner.services.run_hooks).
    """
    from runner.services.run import run_pipeline
    from runner.services.session import RunSession

    spec = registry.load(name).spec
    when = run_time(settings, now or datetime.now(UTC))
    if when.manual_job is not None:  # a Job created by hand is not a scheduled run
        settings = settings.model_copy(update={"trigger": "manual"})
    _log_run_time(name, spec, when)
    if dry_run:
        return run_pipeline(settings, registry, name, dry_run=True, params=params, at=when.at)
    # a scheduled run of a pipeline whose windows are cut from its schedule catches up
    own = _own_window(spec, when.at) if settings.trigger == "schedule" else None
    stop = cancel or threading.Event()
    failures: list[tuple[Window, RunnerError]] = []
    with (
        structlog.contextvars.bound_contextvars(**when.log_fields()),  # on every run's lines
        RunSession(settings, connect) as session,
    ):
        run = partial(
            run_pipeline,
            registry=registry,
            name=name,
            params=params,
            log_file=log_file,
            cancel=stop,
            session=session,
            once=True,
            hooks=hooks,
        )
        if own is not None:
            todo = _plan(settings, session, spec, own)
            catchup_settings = settings.model_copy(update={"trigger": CATCHUP_TRIGGER})
            failures = _catch_up(name, todo, stop, partial(run, catchup_settings))
        if stop.is_set():
            raise InterruptedRunError("stopped between catch-up windows; the run's own not run")
        result = run(settings, at=when.at, once=own is not None)
    if failures:  # the run's own window is done: exit as the first failed window did
        raise failures[0][1]
    return result


def _own_window(spec: PipelineSpec, at: datetime) -> Window | None:
    """The scheduled window ending at the latest fire at or before ``at``.

    None when the pipeline has no schedule, or its windows start at its watermark.
    """
    if spec.schedule is None or spec.incremental:
        return None
    return schedule_window(spec.schedule, spec.timezone, at)


def _log_run_time(name: str, spec: PipelineSpec, when: RunTime) -> None:
    log = get_logger().bind(pipeline=name, **when.log_fields())
    if when.manual_job is not None:
        log.info(
            "window from the wall clock: a Job created by hand (its name is not "
            "<cronjob>-<minutes>), recorded as a manual run"
        )
    elif not when.scheduled:  # the usual case outside Kubernetes: no line of its own
        log.debug("window from the wall clock")
    elif spec.schedule and not is_fire_time(spec.schedule, spec.zone, when.at):
        log.warning(
            "the scheduled time is not a fire time of the pipeline's schedule; running the "
            "window that ends at the latest fire time before it",
            schedule=spec.schedule,
            timezone=spec.timezone,
        )
    else:
        log.info("window from the scheduled time")


def _plan(
    settings: Settings, session: RunSession, spec: PipelineSpec, current: Window
) -> tuple[Window, ...]:
    """Read the run history (through the session) and log what will be caught up."""
    from runner.state.runs import RunHistory

    resources = session.resources()
    try:
        history = RunHistory(session.open_ready(settings, resources), settings.state_database)
        plan = plan_catchup(spec, history, current)
    finally:
        resources.close()
    log = get_logger().bind(pipeline=spec.name, catchup=spec.catchup)
    if plan.older_gap is not None:
        log.warning(
            "windows older than the catch-up bound never succeeded; backfill them",
            gap_start=plan.older_gap.start.isoformat(),
            gap_end=plan.older_gap.end.isoformat(),
            command=backfill_command(spec.name, plan.older_gap),
        )
    if plan.windows:
        log.info("catching up earlier windows first", windows=[str(w) for w in plan.windows])
    else:
        log.info("nothing to catch up", reason=plan.reason or "every earlier window succeeded")
    return plan.windows


def _catch_up(
    name: str,
    windows: tuple[Window, ...],
    stop: threading.Event,
    run: Callable[..., RunResult],
) -> list[tuple[Window, RunnerError]]:
    """Run each window as a catch-up run (``run(window=...)``); the failures, in order."""
    failures: list[tuple[Window, RunnerError]] = []
    for window in windows:
        if stop.is_set():
            break
        try:
            run(window=window)
        except InterruptedRunError:
            raise
        except AlreadyRunningError as exc:  # loading now elsewhere: that run finishes it
            get_logger().info(
                "catch-up window left to the run holding its lock",
                pipeline=name,
                window=str(window),
                error=str(exc),
            )
        except RunnerError as exc:  # recorded and logged by the run; go on with the rest
            failures.append((window, exc))
    if failures:
        get_logger().error(
            "catch-up incomplete: earlier windows failed; the run's own window runs next, "
            "and later scheduled runs try them again while within the bound",
            pipeline=name,
            failed_windows=[str(window) for window, _ in failures],
        )
    return failures
