"""A run's two extension points: checks after the load, and word of how the run ended.

A run (:class:`runner.services.run.PipelineRun`) calls each of its hooks at two moments:

* :meth:`RunHook.after_load` - the pipeline has loaded its window; nothing is recorded as
  succeeded yet and its staged state (the watermark) is not committed.  Checks of what
  was loaded belong here: a hook may query ``ctx.warehouse``, read ``ctx.stats`` and
  fail the run by raising.  A :class:`~runner.errors.RunnerError` keeps its class (and
  exit code); anything else becomes a :class:`~runner.errors.FatalError` naming the hook.
  The run's stop signals and heartbeat stay in place meanwhile.
* :meth:`RunHook.on_finish` - the outcome is known, recorded, and the locks are released:
  status, rows, error, exit code, duration (:class:`RunOutcome`).  Metrics pushes and
  failure alerts belong here.  It never changes the run: an exception is logged and
  dropped, and the hooks together get at most :data:`FINISH_HOOK_SECONDS` (on a helper
  thread) before the run goes on without them.

Both are no-ops on the base class, and a run without hooks does exactly what it did
before they existed.  Hooks are objects, not settings: whoever builds the run passes them
(``run_pipeline(..., hooks=[...])``, and the scheduled and backfill services pass theirs
on to every run they make).
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import ExitCode, FatalError, RunnerError
from runner.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from runner.pipeline.context import RunContext, StepStats
    from runner.pipeline.kinds import Pipeline
    from runner.pipeline.windows import Window

#: How long a run waits for its on-finish hooks in all; a hook that needs the network
#: should bound its own calls well below this.
FINISH_HOOK_SECONDS = 10.0


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended, as on-finish hooks see it.

    ``recorded`` says whether the run history holds the run: a run refused before it
    started (its lock held, the schema behind) or skipped (nothing to do) is not recorded.
    """

    pipeline: str
    run_id: str
    trigger: str
    window: Window | None
    status: str  # succeeded, skipped, failed or cancelled
    exit_code: int
    duration_seconds: float
    finished_at: datetime
    recorded: bool
    error: RunnerError | None = None
    steps: Mapping[str, StepStats] = field(default_factory=dict)

    @property
    def rows_loaded(self) -> int:
        """Rows the run's loaders confirmed, over all its steps."""
        return sum(stats.rows_loaded for stats in self.steps.values())

    @property
    def rows_extracted(self) -> int:
        """Rows the run's extractors produced, over all its steps."""
        return sum(stats.rows_extracted for stats in self.steps.values())


def exit_code_of(error: RunnerError | None) -> int:
    """The process exit code a run ending with ``error`` (or without one) gives."""
    return int(ExitCode.OK if error is None else error.exit_code)


class RunHook:
    """Something that plugs into every run it is given to; override either method."""

    def after_load(self, pipeline: Pipeline, ctx: RunContext) -> None:
        """Check the loaded window; raise to fail the run (nothing is committed then)."""

    def on_finish(self, outcome: RunOutcome) -> None:
        """Hear how the run ended; must not block for long (see FINISH_HOOK_SECONDS)."""


def _name(hook: RunHook) -> str:
    return type(hook).__qualname__


def check_after_load(hooks: Sequence[RunHook], pipeline: Pipeline, ctx: RunContext) -> None:
    """Call every hook's ``after_load`` in order; the first failure fails the run."""
    for hook in hooks:
        ctx.check_cancelled()
        try:
            hook.after_load(pipeline, ctx)
        except RunnerError:
            raise
        except Exception as exc:
            raise FatalError(
                f"after-load hook {_name(hook)}: {type(exc).__name__}: {exc}",
                pipeline=pipeline.name,
                window=str(ctx.window),
            ) from exc


def notify_finished(
    hooks: Sequence[RunHook], outcome: RunOutcome, *, timeout: float = FINISH_HOOK_SECONDS
) -> None:
    """Call every hook's ``on_finish``; never raises their errors, never waits past ``timeout``.

    The hooks run one after another on a daemon thread with the run's log context, so a
    hook stuck on the network cannot hold the process (or the next run) for longer.
    """
    if not hooks:
        return
    log = get_logger()

    def call_all() -> None:
        for hook in hooks:
            try:
                hook.on_finish(outcome)
            except BaseException as exc:  # noqa: BLE001 - a hook never changes the outcome
                log.warning(
                    "on-finish hook failed; the run's outcome stands",
                    hook=_name(hook),
                    error=f"{type(exc).__name__}: {exc}",
                )

    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(call_all,), name="run-finish-hooks", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.warning("on-finish hooks still running; not waited for", timeout_seconds=timeout)
