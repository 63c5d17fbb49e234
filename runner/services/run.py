"""Running one pipeline once: gate, lock, window, record, run, commit, release.

Order matters for the guarantees:

1. the schema gate refuses a database behind the code (exit 4);
2. the lock (per pipeline, or per window) is taken before the window is read from the
   watermark, so two runs never compute overlapping windows (exit 5 when held);
3. the run log file is opened (a bad ``RUNNER_LOG_DIR`` fails here, before anything is
   recorded); the run takes its liveness lock (file locks) and is recorded as running,
   and a heartbeat keeps it alive; a run that dies without finishing is marked failed by
   the next run (see runner.state.liveness);
4. staged state (watermarks) is committed only after the run succeeded;
5. the lock is released whatever happened.  SIGTERM stops between batches; if the current
   batch does not finish within the grace period the process records the cancellation,
   releases the lock, says so on stderr and exits 130 anyway.

Any exception is recorded: a framework bug or a step's ``sys.exit`` becomes a FatalError
on the record and in the one-line error, never a traceback and never a run left
``running``.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import structlog

from runner.errors import (
    ExitCode,
    FatalError,
    InterruptedRunError,
    RunnerError,
    error_line,
)
from runner.log import get_logger
from runner.ops.retries import retries_so_far
from runner.pipeline.context import RunContext, RunResources, StepStats
from runner.pipeline.windows import Window, resolve_window
from runner.redaction import looks_secret, register_secret
from runner.services.data_checks import run_data_checks
from runner.services.run_outcome import report_run
from runner.services.session import PooledResources, RunSession
from runner.signals import SignalStop, stop_on_signals
from runner.state.watermarks import WINDOW_END_KEY, RunState, StateStore

if TYPE_CHECKING:
    from runner.log import RunLogFile
    from runner.pipeline.discovery import Registry
    from runner.pipeline.kinds import Pipeline
    from runner.settings import Settings
    from runner.state.liveness import LivenessLock
    from runner.state.locks import Lock
    from runner.state.runs import RunHistory, RunRecord
    from runner.warehouse.client import Warehouse


@dataclass
class RunResult:
    """What a run did; the CLI prints it as the run's last log line."""

    pipeline: str
    run_id: str
    window: Window | None
    status: str
    duration_seconds: float = 0.0
    steps: dict[str, StepStats] = field(default_factory=dict)
    plan: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs and JSON output."""
        out: dict[str, Any] = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "window_start": self.window.start.isoformat() if self.window else None,
            "window_end": self.window.end.isoformat() if self.window else None,
            "status": self.status,
            "duration_seconds": round(self.duration_seconds, 3),
            "steps": {k: v.as_dict() for k, v in self.steps.items()},
        }
        if self.plan is not None:
            out["plan"] = self.plan
        return out


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time and is unique across pods."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


class Heartbeat:
    """Re-records a running run every ``interval`` seconds; stops the run if its lock is lost."""

    def __init__(  # noqa: PLR0917 - all required, named at the one call site
        self,
        history: RunHistory,
        record: RunRecord,
        steps: dict[str, StepStats],
        interval: float,
        locks: HeldLocks,
        cancel: threading.Event,
    ) -> None:
        self._history = history
        self._record = record
        self._steps = steps
        self._interval = interval
        self._locks = locks
        self._cancel = cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._locks.on_lost(self._cancel.set)  # stop between batches as soon as a lock is lost
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        from runner.state.runs import apply_stats

        log = get_logger()
        while not self._stop.wait(self._interval):
            if self._locks.lost():
                log.error("run lock lost; stopping the run between batches")
                self._cancel.set()
            self._record.heartbeat_at = datetime.now(UTC)
            apply_stats(self._record, self._steps)
            try:
                self._history.write(self._record)
            except RunnerError as exc:
                log.warning("heartbeat not recorded", error=str(exc))


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
) -> RunResult:
    """Run pipeline ``name`` once; raises a RunnerError (already logged) on failure.

    ``window`` is the explicit window (default: the schedule's latest at or before ``at``,
    default now, or the watermark's; runner.services.window_source says which instant a
    scheduled run is for).  With ``once`` a window a succeeded run already covered is
    skipped, checked under the window's lock (scheduled and catch-up runs: each window
    lands once).  Runs that share a ``session`` (a local backfill, a scheduled run's
    catch-up) reuse its connections and checks.
    """
    for key, value in (params or {}).items():  # `--param api_token=...` is a secret
        if looks_secret(key):
            register_secret(value)
    pipeline = registry.load(name)
    run_id = new_run_id()
    if dry_run:
        planned = resolve_window(pipeline.spec, explicit=window, now=at)
        result = RunResult(name, run_id, planned, "planned", plan=pipeline.describe())
        with _bound(name, run_id, planned):
            get_logger().info("dry run: nothing read or written", plan=result.plan)
        return result
    own_session = session is None
    shared = session or RunSession(settings, connect)
    resources = shared.resources()
    try:
        return _run(
            settings,
            pipeline,
            run_id,
            window,
            params,
            resources,
            log_file,
            cancel,
            shared,
            at=at,
            once=once,
        )
    finally:
        resources.close()
        if own_session:
            shared.close()


def _run(  # noqa: PLR0917 - private; one call site
    settings: Settings,
    pipeline: Pipeline,
    run_id: str,
    explicit: Window | None,
    params: Mapping[str, str] | None,
    resources: PooledResources,
    log_file: RunLogFile | None,
    cancel: threading.Event | None,
    session: RunSession,
    *,
    at: datetime | None,
    once: bool,
) -> RunResult:
    from runner.state.runs import RunHistory

    name = pipeline.name
    spec = pipeline.spec
    locks = HeldLocks(settings)
    try:
        # Locks come first: "already running" must not depend on reaching the warehouse
        # (an embedded warehouse admits one process).  A run holds the pipeline lock (unless
        # windows may run concurrently, or it is a backfill or catch-up window) and its
        # window's lock, so a backfill never overlaps the scheduled run of the same window.
        if not (spec.concurrent_windows or settings.trigger in WINDOW_LOCK_ONLY):
            locks.take(f"run:{name}")
        early = None if spec.incremental else resolve_window(spec, explicit=explicit, now=at)
        if early is not None:
            locks.take(window_lock_name(name, early))
        warehouse = session.open_ready(settings, resources)
        store = StateStore(warehouse, settings.state_database)
        committed = store.load(name)
        window = early or resolve_window(
            spec, explicit=explicit, now=at, watermark=_watermark(committed)
        )
        if window is None:
            with _bound(name, run_id, None):
                get_logger().info("nothing to do: the watermark is up to date")
            return RunResult(name, run_id, None, "skipped")
        if early is None:
            locks.take(window_lock_name(name, window))
        history = RunHistory(warehouse, settings.state_database)
        if once and history.has_succeeded(name, window):  # under the window's lock
            with _bound(name, run_id, window):
                get_logger().info("nothing to do: a run of this window already succeeded")
            return RunResult(name, run_id, window, "skipped")
        with _bound(name, run_id, window), _run_log(settings, log_file, name, run_id):
            if session.first_look_for_stale(name):  # once per pipeline in a session
                _mark_dead_runs(settings, history, name)
            return _execute(
                settings,
                pipeline,
                run_id,
                window,
                params,
                resources,
                cancel,
                history=history,
                store=store,
                committed=committed,
                locks=locks,
            )
    finally:
        locks.release()


@contextmanager
def _run_log(
    settings: Settings, log_file: RunLogFile | None, name: str, run_id: str
) -> Iterator[None]:
    """Copy the run's log lines to ``RUNNER_LOG_DIR/<pipeline>/<run_id>.jsonl`` if set."""
    if log_file is None or settings.log_dir is None:
        yield
        return
    log_file.open(settings.resolve(settings.log_dir) / name / f"{run_id}.jsonl")
    try:
        yield
    finally:
        log_file.close()


#: Triggers whose runs hold only their window's lock, not the pipeline's: backfill windows
#: and the windows a scheduled run catches up (runner.services.catchup).
WINDOW_LOCK_ONLY = frozenset({"backfill", "catchup"})


def window_lock_name(pipeline: str, window: Window) -> str:
    """The lock a run of ``window`` holds (keyed by the window's start)."""
    return f"run:{pipeline}:{window.start.isoformat()}"


def _commit_state(  # noqa: PLR0917 - private helper
    store: StateStore,
    name: str,
    committed: Mapping[str, Any],
    staged: Mapping[str, Any],
    window: Window,
    run_id: str,
) -> None:
    """Commit staged state; the watermark only moves forward (backfills may run old windows)."""
    mark = _watermark(committed)
    forward = mark is None or window.end > mark
    store.save(
        name, {**staged, **({WINDOW_END_KEY: window.end.isoformat()} if forward else {})}, run_id
    )


def _watermark(committed: Mapping[str, Any]) -> datetime | None:
    mark = committed.get(WINDOW_END_KEY)
    return datetime.fromisoformat(mark) if isinstance(mark, str) else None


class HeldLocks:
    """The locks one run holds, released together in reverse order."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.held: list[Lock] = []
        self._alive: LivenessLock | None = None
        self._outcome_recorded = False

    def take(self, name: str) -> None:
        """Acquire ``name`` without waiting (AlreadyRunningError names the holder)."""
        from runner.state.locks import make_lock

        lock = make_lock(self._settings, name)
        lock.acquire()
        self.held.append(lock)

    def prove_alive(self, run_id: str) -> None:
        """With file locks, hold the run's liveness lock until the locks are released."""
        from runner.state.liveness import LivenessLock, liveness_path

        path = liveness_path(self._settings, run_id)
        if path is not None:
            alive = LivenessLock(path, self._settings.holder_identity)
            alive.acquire()
            self._alive = alive

    def outcome_recorded(self) -> None:
        """The run's final record is written: its liveness file is no longer needed."""
        self._outcome_recorded = True

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a held lock is lost (Leases only; at once if already lost)."""
        for lock in self.held:
            watch = getattr(lock, "on_lost", None)
            if callable(watch):
                watch(callback)

    def lost(self) -> bool:
        """Whether any held lock was taken over (Leases only)."""
        return any(
            isinstance(flag, threading.Event) and flag.is_set()
            for flag in (getattr(lock, "lost", None) for lock in self.held)
        )

    def release(self) -> None:
        """Release every held lock (the liveness lock first)."""
        if self._alive is not None:
            self._alive.release(outcome_recorded=self._outcome_recorded)
            self._alive = None
        while self.held:
            self.held.pop().release()


def _execute(  # noqa: PLR0915, PLR0917 - private; one call site passes the run's parts
    settings: Settings,
    pipeline: Pipeline,
    run_id: str,
    window: Window,
    params: Mapping[str, str] | None,
    resources: RunResources,
    cancel: threading.Event | None,
    *,
    history: RunHistory,
    store: StateStore,
    committed: dict[str, Any],
    locks: HeldLocks,
) -> RunResult:
    from runner.state.runs import apply_stats, new_record

    name = pipeline.name
    log = get_logger()
    result = RunResult(pipeline=name, run_id=run_id, window=window, status="running")
    started = time.monotonic()
    record = new_record(
        run_id=run_id,
        pipeline=name,
        trigger=settings.trigger,
        window=window,
        image_version=settings.image_version or _package_version(),
    )
    locks.prove_alive(run_id)  # before the record says running: a dead run is provably dead
    history.write(record)
    ctx = RunContext(
        pipeline=name,
        run_id=run_id,
        window=window,
        settings=settings,
        resources=resources,
        log=log,
        params=params,
        cancel=cancel,
        stats=result.steps,
        state=RunState(committed),
    )

    def finish(status: str, error: RunnerError | None = None) -> None:
        result.status = status
        result.duration_seconds = time.monotonic() - started
        record.status = status
        record.finished_at = datetime.now(UTC)
        apply_stats(record, result.steps)
        if error is not None:
            record.error_class = type(error).__name__
            record.error_message = str(error)
        history.write(record)
        locks.outcome_recorded()

    def hard_stop() -> None:
        stopped = _announce_hard_stop(settings, run_id)  # said before anything that may hang
        try:
            finish("cancelled", stopped)
        finally:
            locks.release()
            os._exit(int(ExitCode.INTERRUPTED))

    log.info("run started", kind=pipeline.kind, trigger=settings.trigger, params=dict(params or {}))
    retries_at_start, failure = retries_so_far(), cast("RunnerError | None", None)
    try:
        with (
            stop_on_signals(
                ctx.cancel, log, grace_seconds=settings.stop_grace_seconds, on_deadline=hard_stop
            ),
            Heartbeat(history, record, result.steps, settings.heartbeat_seconds, locks, ctx.cancel),
        ):
            pipeline.run(ctx)
            run_data_checks(pipeline, ctx)  # after the load, before the run counts as succeeded
        _commit_state(store, name, committed, ctx.state.staged, window, run_id)
        finish("succeeded")
    except (Exception, KeyboardInterrupt, SystemExit, SignalStop) as caught:
        exc = caught if isinstance(caught, RunnerError) else _not_ours(caught)
        status = "cancelled" if isinstance(exc, InterruptedRunError) else "failed"
        failure = exc
        log.error(  # noqa: TRY400 - the traceback goes to the log only when there is a cause
            "run failed" if status == "failed" else "run cancelled",
            error=str(exc),
            error_class=type(exc).__name__,
            exc_info=exc.__cause__ is not None,
        )
        try:
            finish(status, exc)
        except RunnerError as record_error:
            log.error("run outcome not recorded", error=str(record_error))  # noqa: TRY400
        if exc is caught:
            raise
        raise exc from caught
    finally:
        summary = result.as_dict()
        log.info(
            "run finished",
            status=result.status,
            duration_seconds=summary["duration_seconds"],
            steps=summary["steps"],
        )
        report_run(  # metrics and failure alert; bounded, never raises
            settings, result, failure, spec=pipeline.spec, retries_at_start=retries_at_start
        )
    return result


def _mark_dead_runs(settings: Settings, history: RunHistory, name: str) -> None:
    """Record earlier runs of ``name`` that died without finishing as failed."""
    from runner.state.liveness import discard_proof, run_liveness

    for lost in history.mark_stale(name, lambda record: run_liveness(settings, record)):
        get_logger().warning(
            "earlier run died without finishing; marked failed",
            lost_run_id=lost.run_id,
            reason=lost.error_message,
        )
        discard_proof(settings, lost.run_id)


def _announce_hard_stop(settings: Settings, run_id: str) -> InterruptedRunError:
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


def _not_ours(caught: BaseException) -> RunnerError:
    """A framework error for an exception that is not one (a bug, sys.exit, a second Ctrl-C)."""
    error: RunnerError
    if isinstance(caught, SignalStop):
        error = InterruptedRunError(f"run {caught}; stopped at once")
    elif isinstance(caught, KeyboardInterrupt):
        error = InterruptedRunError("interrupted again while stopping; stopped at once")
    else:
        error = FatalError(f"unexpected {type(caught).__name__}: {caught}")
    error.__cause__ = caught
    return error


@contextmanager
def _bound(name: str, run_id: str, window: Window | None) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(
        pipeline=name,
        run_id=run_id,
        window_start=window.start.isoformat() if window else None,
        window_end=window.end.isoformat() if window else None,
    ):
        yield


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipeline-runner")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
