"""Backfills: plan a range, run its windows here, or hand them to an Indexed Job.

Re-running a backfill is always safe: each window load is idempotent, windows that
already succeeded are skipped by default, and each window takes the same per-window lock
as the scheduled run of that window.  A local backfill runs its windows in this process
through one run session: the pipeline is imported once, connections are reused and the
schema gate is passed once, so a window costs little more than its own work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, InterruptedRunError, RunnerError, UsageError, printable
from runner.log import get_logger
from runner.pipeline.backfill import SCHEDULE, BackfillPlan, Step, make_plan, plan_windows
from runner.pipeline.windows import Window
from runner.signals import stop_on_signals

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.pipeline.discovery import Registry
    from runner.services.run_hooks import RunHook
    from runner.settings import Settings
    from runner.state.runs import RunRecord


@dataclass(frozen=True)
class Range:
    """What the operator asked for: a window of time, split by a step."""

    window: Window
    step: Step = field(default_factory=lambda: Step(SCHEDULE))
    only_missing: bool = True
    reverse: bool = False


def plan(
    settings: Settings,
    registry: Registry,
    name: str,
    wanted: Range,
    *,
    offline: bool = False,
    now: datetime | None = None,
) -> BackfillPlan:
    """The windows of the range and which of them already succeeded.

    ``offline`` plans without the run history (every window is to do).
    """
    spec = registry.load(name).spec
    windows = plan_windows(spec, wanted.window.start, wanted.window.end, wanted.step)
    moment = now or datetime.now(UTC)
    if offline:
        return make_plan(wanted.window, windows, set(), reverse=wanted.reverse, now=moment)
    runs = _runs_of(settings, name, windows)
    succeeded = {(r.window_start, r.window_end) for r in runs if r.status == "succeeded"}
    return make_plan(
        wanted.window,
        windows,
        succeeded,
        only_missing=wanted.only_missing,
        reverse=wanted.reverse,
        now=moment,
    )


def _runs_of(settings: Settings, name: str, windows: list[Window]) -> list[RunRecord]:
    """Every recorded run of ``name`` whose window lies inside the planned windows."""
    from runner.state.runs import RunHistory
    from runner.warehouse.client import Warehouse

    warehouse = Warehouse.connect(settings)
    try:
        history = RunHistory(warehouse, settings.state_database)
        return history.in_range(name, windows[0].start, windows[-1].end)
    finally:
        warehouse.close()


@dataclass
class LocalOutcome:
    """How a local backfill ended."""

    succeeded: list[Window] = field(default_factory=list)
    failed: dict[Window, str] = field(default_factory=dict)
    interrupted: bool = False


def run_local(
    settings: Settings,
    registry: Registry,
    name: str,
    windows: list[Window],
    *,
    parallelism: int = 1,
    on_window: Callable[[Window, str, dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
    hooks: Sequence[RunHook] = (),
) -> LocalOutcome:
    """Run ``windows`` of ``name`` in this process, ``parallelism`` at a time.

    Every window is an ordinary run (lock, history, state, ``hooks``), sharing one run
    session.
    """
    from runner.services.run import run_pipeline
    from runner.services.session import RunSession

    if parallelism < 1:
        raise UsageError(f"parallelism must be at least 1, not {parallelism}")
    backfill_settings = settings.model_copy(update={"trigger": "backfill"})
    stop = cancel or threading.Event()
    outcome = LocalOutcome()
    registry.load(name)  # import once, before any thread does
    session = RunSession(backfill_settings)

    def one(window: Window) -> tuple[str, dict[str, Any]]:
        if stop.is_set():
            return "skipped", {}
        result = run_pipeline(
            backfill_settings,
            registry,
            name,
            window=window,
            cancel=stop,
            session=session,
            hooks=hooks,
        )
        return result.status, {k: v.as_dict() for k, v in result.steps.items()}

    with (
        session,
        # first Ctrl-C/SIGTERM: no new window, running ones stop between batches; a second
        # one stops at once (SignalStop, from the CLI's handler)
        stop_on_signals(stop, get_logger(), event="stopping the backfill between batches"),
        ThreadPoolExecutor(max_workers=parallelism) as pool,
    ):
        for window, status, steps in _as_they_end(pool, one, windows, parallelism, stop):
            if status == "succeeded":
                outcome.succeeded.append(window)
            elif status not in {"skipped", "cancelled"}:
                outcome.failed[window] = status
            if on_window is not None:
                on_window(window, status, steps)
    outcome.interrupted = stop.is_set()
    return outcome


WindowRun = Callable[[Window], tuple[str, dict[str, Any]]]


def _as_they_end(
    pool: ThreadPoolExecutor,
    one: WindowRun,
    windows: list[Window],
    parallelism: int,
    stop: threading.Event,
) -> Iterator[tuple[Window, str, dict[str, Any]]]:
    """Each window's status and step stats as its run ends, ``parallelism`` at a time.

    No window is started once ``stop`` is set; the ones running finish (between batches).
    """
    pending: dict[Future[tuple[str, dict[str, Any]]], Window] = {}
    queue = list(windows)
    while queue or pending:
        while queue and len(pending) < parallelism and not stop.is_set():
            window = queue.pop(0)
            pending[pool.submit(one, window)] = window
        if not pending:
            break
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield (pending.pop(future), *_outcome_of(future))


def _outcome_of(future: Future[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    try:
        return future.result()
    except InterruptedRunError:
        return "cancelled", {}
    except RunnerError as exc:
        return f"failed: {printable(str(exc))}", {}


def window_status(
    settings: Settings, registry: Registry, name: str, wanted: Range
) -> list[dict[str, Any]]:
    """Each window of the range with the state of its latest run.

    A window without a run is ``pending``, or ``not ended`` while its end is in the future.
    """
    spec = registry.load(name).spec
    windows = plan_windows(spec, wanted.window.start, wanted.window.end, wanted.step)
    runs = _runs_of(settings, name, windows)
    latest: dict[tuple[Any, Any], RunRecord] = {}
    for record in runs:  # oldest first: the last one wins
        latest[record.window_start, record.window_end] = record
    now = datetime.now(UTC)
    return [_status_row(settings, w, latest.get((w.start, w.end)), now) for w in windows]


def _status_row(
    settings: Settings, window: Window, record: RunRecord | None, now: datetime
) -> dict[str, Any]:
    from runner.services.status import shown_status

    row: dict[str, Any] = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "status": "pending" if window.end <= now else "not ended",
    }
    if record is not None:
        row |= {
            "status": shown_status(settings, record),
            "run_id": record.run_id,
            "trigger": record.trigger,
            "rows_loaded": record.rows_loaded,
            "error": record.error_message,
        }
    return row


def find_cronjob(namespace: str, pipeline: str, release: str | None) -> dict[str, Any]:
    """The live CronJob of ``pipeline`` (by its labels), as a plain dict."""
    from kubernetes import client

    from runner.kube.client import build_api_client

    api = client.BatchV1Api(build_api_client("runner backfill job"))
    selector = f"pipeline-runner/pipeline={pipeline}"
    if release:
        selector += f",app.kubernetes.io/instance={release}"
    try:
        listed = api.list_namespaced_cron_job(namespace, label_selector=selector)
    except Exception as exc:  # noqa: BLE001 - any API failure becomes one clear line
        raise ConfigError(
            f"cannot list CronJobs in {namespace}: {getattr(exc, 'status', '')} "
            f"{getattr(exc, 'reason', type(exc).__name__)}; or use --from-manifest"
        ) from None
    items = [api.api_client.sanitize_for_serialization(i) for i in listed.items]
    if len(items) != 1:
        found = "no CronJob" if not items else f"{len(items)} CronJobs"
        raise ConfigError(
            f"{found} labelled {selector} in {namespace}: is the release installed? "
            "(set RUNNER_RELEASE to pick one release, or use --from-manifest)"
        )
    return dict(items[0])


def job_for_range(
    settings: Settings,
    registry: Registry,
    name: str,
    windows: list[Window],
    *,
    namespace: str | None,
    manifest: Path | None,
    parallelism: int,
    retries_per_window: int,
) -> dict[str, Any]:
    """An Indexed Job running ``windows``, its pod template copied from the CronJob."""
    import secrets

    from runner.deploy.backfill_job import build_backfill_job, cronjob_from_manifest
    from runner.kube.client import pod_namespace

    registry.load(name)
    if not windows:
        raise ConfigError(f"nothing to backfill for {name!r}: every window already succeeded")
    if manifest is not None:
        cronjob = cronjob_from_manifest(manifest, name)
    else:
        where = namespace or settings.lease_namespace or pod_namespace()
        if not where:
            raise ConfigError("give --namespace (or RUNNER_LEASE_NAMESPACE) to find the CronJob")
        cronjob = find_cronjob(where, name, settings.release)
    job = build_backfill_job(
        cronjob,
        pipeline=name,
        windows=windows,
        parallelism=parallelism,
        backfill_id=secrets.token_hex(4),
        backoff_limit_per_index=retries_per_window,
    )
    if namespace:
        job["metadata"]["namespace"] = namespace
    return job
