"""Running one pipeline once: window, identity, signals, logging, and the outcome.

The CLI calls :func:`run_pipeline` with everything it needs passed in; tests call it the
same way with their own settings, registry and warehouse factory.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from runner.errors import InterruptedRunError, RunnerError
from runner.log import get_logger
from runner.pipeline.context import RunContext, RunResources, StepStats
from runner.pipeline.windows import Window, resolve_window

if TYPE_CHECKING:
    from types import FrameType

    from runner.log import RunLogFile
    from runner.pipeline.discovery import Registry
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse


@dataclass
class RunResult:
    """What a run did; the CLI prints it as the run's last log line."""

    pipeline: str
    run_id: str
    window: Window
    status: str
    duration_seconds: float = 0.0
    steps: dict[str, StepStats] = field(default_factory=dict)
    plan: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs and JSON output."""
        out: dict[str, Any] = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
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


@contextmanager
def stop_on_signals(cancel: threading.Event, log: Any) -> Iterator[None]:
    """First SIGTERM/SIGINT asks the run to stop between batches; a second one is not caught.

    Only the main thread may install handlers; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.warning(
            "stop requested; finishing the current batch", signal=signal.Signals(signum).name
        )
        cancel.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        previous[stop_signal] = signal.signal(stop_signal, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_pipeline(
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    start: str | None = None,
    end: str | None = None,
    dry_run: bool = False,
    params: Mapping[str, str] | None = None,
    connect: Callable[[], Warehouse] | None = None,
    log_file: RunLogFile | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run pipeline ``name`` once; raises a RunnerError (already logged) on failure."""
    pipeline = registry.load(name)
    window = resolve_window(pipeline.spec, start=start, end=end)
    run_id = new_run_id()
    started = time.monotonic()
    result = RunResult(pipeline=name, run_id=run_id, window=window, status="running")
    with structlog.contextvars.bound_contextvars(
        pipeline=name,
        run_id=run_id,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
    ):
        log = get_logger()
        if dry_run:
            result.status = "planned"
            result.plan = pipeline.describe()
            log.info("dry run: nothing read or written", plan=result.plan)
            return result
        if connect is None:
            from runner.warehouse.client import Warehouse

            def connect() -> Warehouse:
                return Warehouse.connect(settings)

        resources = RunResources(connect=connect)
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
        )
        if log_file is not None and settings.log_dir is not None:
            log_file.open(settings.resolve(settings.log_dir) / name / f"{run_id}.jsonl")
        log.info("run started", kind=pipeline.kind, params=dict(params or {}))
        try:
            with stop_on_signals(ctx.cancel, log):
                pipeline.run(ctx)
            result.status = "succeeded"
        except RunnerError as exc:
            result.status = "cancelled" if isinstance(exc, InterruptedRunError) else "failed"
            log.error(  # noqa: TRY400 - the traceback goes to the log only when there is a cause
                "run failed" if result.status == "failed" else "run cancelled",
                error=str(exc),
                error_class=type(exc).__name__,
                exc_info=exc.__cause__ is not None,
            )
            raise
        finally:
            result.duration_seconds = time.monotonic() - started
            resources.close()
            summary = result.as_dict()
            log.info(
                "run finished",
                status=result.status,
                duration_seconds=summary["duration_seconds"],
                steps=summary["steps"],
            )
            if log_file is not None:
                log_file.close()
        return result
