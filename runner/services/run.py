"""Running one pipeline once: lock, gate, window, record, run, check, commit, release.

:class:`PipelineRun` holds one run's parts and goes through its steps in an order the
guarantees depend on:

1. the locks (per pipeline, or per window) are taken before the warehouse is touched and
   before the window is read from the watermark, so two runs never compute overlapping
   windows (exit 5 when held);
2. the schema gate refuses a database behind the code (exit 4);
3. the run log file is opened (a bad ``RUNNER_LOG_DIR`` fails here, before anything is
   recorded); the run takes its liveness lock (file locks) and is recorded as running,
   and a heartbeat keeps it alive; a run that dies without finishing is marked failed by
   the next run (see runner.state.liveness);
4. after the load, the after-load hooks may still fail the run; staged state (watermarks)
   is committed only after that, then the run is recorded succeeded;
5. the locks are released whatever happened, then the on-finish hooks hear the outcome
   (runner.services.run_hooks).  SIGTERM stops between batches; if the current batch
   does not finish within the grace period the process records the cancellation,
   releases the locks, says so on stderr and exits 130 anyway.

Any exception is recorded: a framework bug or a step's ``sys.exit`` becomes a FatalError
on the record and in the one-line error, never a traceback and never a run left
``running``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from runner.errors import ExitCode, InterruptedRunError
from runner.log import get_logger
from runner.pipeline.context import RunContext, RunResources
from runner.pipeline.windows import Window, resolve_window
from runner.redaction import looks_secret, register_secret
from runner.services.data_checks import run_data_checks
from runner.services.heartbeat import Heartbeat
from runner.services.run_errors import announce_hard_stop, framework_error
from runner.services.run_hooks import (
    RunHook,
    RunOutcome,
    check_after_load,
    exit_code_of,
    notify_finished,
)
from runner.services.run_outcome import ops_hooks
from runner.services.run_record import RunRecorder, RunResult, mark_dead_runs, new_run_id
from runner.services.session import PooledResources, RunSession
from runner.signals import SignalStop, stop_on_signals
from runner.state.run_locks import HeldLocks
from runner.state.watermarks import WINDOW_END_KEY, RunState, StateStore

if TYPE_CHECKING:
    from runner.log import RunLogFile
    from runner.pipeline.discovery import Registry
    from runner.pipeline.kinds import Pipeline
    from runner.settings import Settings
    from runner.state.runs import RunHistory
    from runner.warehouse.client import Warehouse


#: Triggers whose runs hold only their window's lock, not the pipeline's: backfill windows
#: and the windows a scheduled run catches up (runner.services.catchup).
WINDOW_LOCK_ONLY = frozenset({"backfill", "catchup"})


def window_lock_name(pipeline: str, window: Window) -> str:
    """The lock a run of ``window`` holds (keyed by the window's start)."""
    return f"run:{pipeline}:{window.start.isoformat()}"


def run_pipeline(
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    window: Window | None = None,
    dry_run: bool = False,
    params: Mapping[str, str] | None = None,
    connect: Callable[[], Warehouse] | None = None,
    log_file: RunLogFile | None = None,
    cancel: threading.Event | None = None,
    session: RunSession | None = None,
    at: datetime | None = None,
    once: bool = False,
    hooks: Sequence[RunHook] = (),
) -> RunResult:
    """Run pipeline ``name`` once; raises a RunnerError (already logged) on failure.

    ``window`` is the explicit window (default: the schedule's latest at or before ``at``,
    default now, or the watermark's; runner.services.window_source says which instant a
    scheduled run is for).  With ``once`` a window a succeeded run already covered is
    skipped, checked under the window's lock (scheduled and catch-up runs: each window
    lands once).  Runs that share a ``session`` (a local backfill, a scheduled run's
    catch-up) reuse its connections and checks.  ``hooks`` plug into the run
    (runner.services.run_hooks).
    """
    pipeline = registry.load(name)
    if dry_run:
        return plan_run(pipeline, window, at)
    shared = session or RunSession(settings, connect)
    try:
        return PipelineRun(
            settings,
            pipeline,
            shared,
            window=window,
            at=at,
            once=once,
            params=params,
            log_file=log_file,
            cancel=cancel,
            hooks=hooks,
        ).run()
    finally:
        if session is None:
            shared.close()


def plan_run(pipeline: Pipeline, window: Window | None, at: datetime | None) -> RunResult:
    """A dry run: the window a run would take and the pipeline's plan; nothing touched."""
    planned = resolve_window(pipeline.spec, explicit=window, now=at)
    result = RunResult(pipeline.name, new_run_id(), planned, "planned", plan=pipeline.describe())
    with bound_run(pipeline.name, result.run_id, planned):
        get_logger().info("dry run: nothing read or written", plan=result.plan)
    return result


@dataclass
class RunRecords:
    """Where a run reads and writes its history and state, and the state it started from."""

    history: RunHistory
    store: StateStore
    committed: dict[str, Any]


class PipelineRun:
    """One run of one pipeline: the parts it holds, and its steps in order.

    :meth:`run` calls :meth:`take_locks`, :meth:`open_records`, :meth:`resolve_window`,
    :meth:`execute` and :meth:`finish`; the locks and connections are released whatever
    happened, before :meth:`finish`.  Hooks (runner.services.run_hooks) plug in at two
    points: after the load, inside :meth:`execute`, and in :meth:`finish`.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        session: RunSession,
        *,
        window: Window | None = None,
        at: datetime | None = None,
        once: bool = False,
        params: Mapping[str, str] | None = None,
        log_file: RunLogFile | None = None,
        cancel: threading.Event | None = None,
        hooks: Sequence[RunHook] = (),
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.session = session
        self.explicit = window
        self.at = at
        self.once = once
        self.params: dict[str, str] = dict(params or {})
        for key, value in self.params.items():  # `--param api_token=...` is a secret
            if looks_secret(key):
                register_secret(value)
        self.log_file = log_file
        self.cancel = cancel
        self.hooks = (*hooks, *ops_hooks(settings, pipeline.spec))
        self.run_id = new_run_id()
        self.result = RunResult(pipeline.name, self.run_id, None, "running")
        self.locks = HeldLocks(settings)
        self.recorder: RunRecorder | None = None
        self._started = time.monotonic()

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name

    def run(self) -> RunResult:
        """Run once; raises a RunnerError (already logged and recorded) on failure."""
        self._started = time.monotonic()
        resources = self.session.resources()
        try:
            try:
                early = self.take_locks()
                records = self.open_records(resources)
                window = self.resolve_window(early, records)
                if window is not None:
                    with bound_run(self.name, self.run_id, window), self._run_log():
                        if self.session.first_look_for_stale(self.name):  # once per session
                            mark_dead_runs(self.settings, records.history, self.name)
                        self.execute(window, resources, records)
            finally:
                self.locks.release()
                resources.close()
        except BaseException as caught:
            self.finish(caught)
            raise
        self.finish(None)
        return self.result

    def take_locks(self) -> Window | None:
        """Take the locks that need no warehouse; returns the window when already known.

        Locks come first: "already running" must not depend on reaching the warehouse (an
        embedded warehouse admits one process).  A run holds the pipeline lock (unless
        windows may run concurrently, or it is a backfill or catch-up window) and its
        window's lock, so a backfill never overlaps the scheduled run of the same window.
        An incremental window is known only from the watermark (:meth:`resolve_window`).
        """
        spec = self.pipeline.spec
        if not (spec.concurrent_windows or self.settings.trigger in WINDOW_LOCK_ONLY):
            self.locks.take(f"run:{self.name}")
        if spec.incremental:
            return None
        early = resolve_window(spec, explicit=self.explicit, now=self.at)
        if early is not None:
            self.locks.take(window_lock_name(self.name, early))
        return early

    def open_records(self, resources: PooledResources) -> RunRecords:
        """Connect with the schema gate passed; the run history and the committed state."""
        from runner.state.runs import RunHistory

        warehouse = self.session.open_ready(self.settings, resources)
        store = StateStore(warehouse, self.settings.state_database)
        history = RunHistory(warehouse, self.settings.state_database)
        return RunRecords(history, store, store.load(self.name))

    def resolve_window(self, early: Window | None, records: RunRecords) -> Window | None:
        """The run's window, under its lock; None (result ``skipped``) when nothing is to do."""
        window = early or resolve_window(
            self.pipeline.spec,
            explicit=self.explicit,
            now=self.at,
            watermark=_watermark(records.committed),
        )
        if window is None:
            self._skip(None, "nothing to do: the watermark is up to date")
            return None
        if early is None:
            self.locks.take(window_lock_name(self.name, window))
        if self.once and records.history.has_succeeded(self.name, window):  # under its lock
            self._skip(window, "nothing to do: a run of this window already succeeded")
            return None
        return window

    def execute(self, window: Window, resources: RunResources, records: RunRecords) -> None:
        """Record the run, run the pipeline and the after-load hooks, commit, record the end.

        Any exception is recorded: a framework bug or a step's ``sys.exit`` becomes a
        FatalError, a signal an InterruptedRunError; never a run left ``running``.
        """
        log = get_logger()
        self.result.window = window
        recorder = self.recorder = RunRecorder(
            self.settings, records.history, self.locks, self.result
        )
        record = recorder.start(window)
        ctx = self._context(window, resources, records.committed)
        trigger = self.settings.trigger
        log.info("run started", kind=self.pipeline.kind, trigger=trigger, params=self.params)
        try:
            with (
                stop_on_signals(
                    ctx.cancel,
                    log,
                    grace_seconds=self.settings.stop_grace_seconds,
                    on_deadline=lambda: self._hard_stop(recorder),
                ),
                Heartbeat(
                    records.history,
                    record,
                    self.result.steps,
                    self.settings.heartbeat_seconds,
                    self.locks,
                    ctx.cancel,
                ),
            ):
                self.pipeline.run(ctx)
                run_data_checks(self.pipeline, ctx)  # the declared checks, then the hooks'
                check_after_load(self.hooks, self.pipeline, ctx)
            self._commit_state(records, ctx.state.staged, window)
            recorder.end("succeeded")
        except (Exception, KeyboardInterrupt, SystemExit, SignalStop) as caught:
            exc = framework_error(caught)
            recorder.fail(exc)
            if exc is caught:
                raise
            raise exc from caught
        finally:
            summary = self.result.as_dict()
            log.info(
                "run finished",
                status=self.result.status,
                duration_seconds=summary["duration_seconds"],
                steps=summary["steps"],
            )

    def finish(self, caught: BaseException | None) -> None:
        """The outcome is known and the locks are released: tell the on-finish hooks."""
        if not self.hooks:
            return
        error = None if caught is None else framework_error(caught)
        status = self.result.status
        if error is not None and status in {"running", "succeeded"}:  # refused, or not recorded
            status = "cancelled" if isinstance(error, InterruptedRunError) else "failed"
        outcome = RunOutcome(
            pipeline=self.name,
            run_id=self.run_id,
            trigger=self.settings.trigger,
            window=self.result.window,
            status=status,
            exit_code=exit_code_of(error),
            duration_seconds=self.result.duration_seconds or time.monotonic() - self._started,
            finished_at=datetime.now(UTC),
            recorded=self.recorder is not None and self.recorder.record is not None,
            error=error,
            steps=dict(self.result.steps),
        )
        with bound_run(self.name, self.run_id, self.result.window):
            notify_finished(self.hooks, outcome)

    def _skip(self, window: Window | None, reason: str) -> None:
        self.result.window, self.result.status = window, "skipped"
        with bound_run(self.name, self.run_id, window):
            get_logger().info(reason)

    def _context(
        self, window: Window, resources: RunResources, committed: dict[str, Any]
    ) -> RunContext:
        return RunContext(
            pipeline=self.name,
            run_id=self.run_id,
            window=window,
            settings=self.settings,
            resources=resources,
            log=get_logger(),
            params=self.params,
            cancel=self.cancel,
            stats=self.result.steps,
            state=RunState(committed),
        )

    def _commit_state(self, records: RunRecords, staged: Mapping[str, Any], window: Window) -> None:
        """Commit staged state; the watermark only moves forward (backfills run old windows)."""
        mark = _watermark(records.committed)
        moved = mark is None or window.end > mark
        forward = {WINDOW_END_KEY: window.end.isoformat()} if moved else {}
        records.store.save(self.name, {**staged, **forward}, self.run_id)

    def _hard_stop(self, recorder: RunRecorder) -> None:
        """The grace period is over (on a timer thread): record, release, tell, exit 130."""
        stopped = announce_hard_stop(self.settings, self.run_id)  # before anything may hang
        try:
            recorder.end("cancelled", stopped)
        finally:
            self.locks.release()
            self.finish(stopped)
            os._exit(int(ExitCode.INTERRUPTED))

    @contextmanager
    def _run_log(self) -> Iterator[None]:
        """Copy the run's log lines to ``RUNNER_LOG_DIR/<pipeline>/<run_id>.jsonl`` if set."""
        settings, log_file = self.settings, self.log_file
        if log_file is None or settings.log_dir is None:
            yield
            return
        log_file.open(settings.resolve(settings.log_dir) / self.name / f"{self.run_id}.jsonl")
        try:
            yield
        finally:
            log_file.close()


def _watermark(committed: Mapping[str, Any]) -> datetime | None:
    mark = committed.get(WINDOW_END_KEY)
    return datetime.fromisoformat(mark) if isinstance(mark, str) else None


@contextmanager
def bound_run(name: str, run_id: str, window: Window | None) -> Iterator[None]:
    """Bind the run's identity and window into every log line of the block."""
    with structlog.contextvars.bound_contextvars(
        pipeline=name,
        run_id=run_id,
        window_start=window.start.isoformat() if window else None,
        window_end=window.end.isoformat() if window else None,
    ):
        yield
