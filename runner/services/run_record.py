"""What a run did: its result, its row in the run history, and earlier runs that died.

The row is written before the pipeline starts (after the run's liveness lock is taken, so
a run that dies is provably dead at once with file locks), re-written by the heartbeat
(runner.services.heartbeat), and written a last time with the outcome, whatever it is.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.errors import InterruptedRunError, RunnerError
from runner.log import get_logger

if TYPE_CHECKING:
    from runner.pipeline.context import StepStats
    from runner.pipeline.windows import Window
    from runner.settings import Settings
    from runner.state.run_locks import HeldLocks
    from runner.state.runs import RunHistory, RunRecord


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


class RunRecorder:
    """Writes one run's row: :meth:`start`, then :meth:`end` (or :meth:`fail`) once."""

    def __init__(
        self, settings: Settings, history: RunHistory, locks: HeldLocks, result: RunResult
    ) -> None:
        self._settings = settings
        self.history = history
        self._locks = locks
        self._result = result
        self._started = time.monotonic()
        self.record: RunRecord | None = None

    def start(self, window: Window) -> RunRecord:
        """Take the liveness lock, then record the run as running."""
        from runner.state.runs import new_record

        record = new_record(
            run_id=self._result.run_id,
            pipeline=self._result.pipeline,
            trigger=self._settings.trigger,
            window=window,
            image_version=self._settings.image_version or _package_version(),
        )
        self._locks.prove_alive(record.run_id)  # before the record says running
        self.history.write(record)
        self.record = record
        self._started = time.monotonic()
        return record

    def end(self, status: str, error: RunnerError | None = None) -> None:
        """Record the outcome (and set it on the result); the liveness file may go."""
        from runner.state.runs import apply_stats

        record = self.record
        if record is None:  # pragma: no cover - end() only follows start()
            return
        self._result.status = status
        self._result.duration_seconds = time.monotonic() - self._started
        record.status = status
        record.finished_at = datetime.now(UTC)
        apply_stats(record, self._result.steps)
        if error is not None:
            record.error_class = type(error).__name__
            record.error_message = str(error)
        self.history.write(record)
        self._locks.outcome_recorded()

    def fail(self, exc: RunnerError) -> None:
        """Log and record a failed or cancelled run; a failure to record is only logged."""
        log = get_logger()
        status = "cancelled" if isinstance(exc, InterruptedRunError) else "failed"
        log.error(
            "run failed" if status == "failed" else "run cancelled",
            error=str(exc),
            error_class=type(exc).__name__,
            exc_info=exc.__cause__ is not None,
        )
        try:
            self.end(status, exc)
        except RunnerError as record_error:
            log.error("run outcome not recorded", error=str(record_error))  # noqa: TRY400


def mark_dead_runs(settings: Settings, history: RunHistory, name: str) -> None:
    """Record earlier runs of ``name`` that died without finishing as failed."""
    from runner.state.liveness import discard_proof, run_liveness

    for lost in history.mark_stale(name, lambda record: run_liveness(settings, record)):
        get_logger().warning(
            "earlier run died without finishing; marked failed",
            lost_run_id=lost.run_id,
            reason=lost.error_message,
        )
        discard_proof(settings, lost.run_id)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipeline-runner")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
