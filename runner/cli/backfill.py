"""``runner backfill plan|run|job|index|status``: reprocess a range of windows."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from runner.cli.output import Progress, print_table, span
from runner.cli.shared import (
    NameArgument,
    Output,
    OutputOption,
    ProjectOption,
    guarded,
    registry,
    settings,
)
from runner.cli.values import range_option, step_option, window_from_pair
from runner.errors import ConfigError, ExitCode, UsageError

if TYPE_CHECKING:
    from runner.pipeline.backfill import BackfillPlan
    from runner.services.backfill import Range
    from runner.settings import Settings

backfill_app = typer.Typer(
    help="Reprocess a date range: plan it, run it here, or create an Indexed Job.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

StartOption = Annotated[
    str, typer.Option("--start", help="Range start, ISO 8601 (UTC if no offset).")
]
EndOption = Annotated[str, typer.Option("--end", help="Range end (exclusive), ISO 8601.")]
StepOption = Annotated[
    str,
    typer.Option(
        "--step",
        help="'schedule' (the pipeline's own windows) or 15m, 6h, 1d, 1w, 1mo, 1y.",
    ),
]
MissingOption = Annotated[
    bool,
    typer.Option(
        "--only-missing/--all", help="Skip windows that already succeeded (default), or redo all."
    ),
]
ReverseOption = Annotated[bool, typer.Option("--reverse", help="Newest window first.")]
YesOption = Annotated[
    bool, typer.Option("--yes", help="Allow more windows than RUNNER_BACKFILL_MAX_WINDOWS.")
]


def _wanted(start: str, end: str, step: str, only_missing: bool, reverse: bool) -> Range:
    from runner.services.backfill import Range

    return Range(range_option(start, end), step_option(step), only_missing, reverse)


def _check_size(current: Settings, count: int, *, confirmed: bool) -> None:
    """A range larger than ``backfill_max_windows`` needs an explicit ``--yes``."""
    if count > current.backfill_max_windows and not confirmed:
        raise UsageError(
            f"{count} windows is more than RUNNER_BACKFILL_MAX_WINDOWS="
            f"{current.backfill_max_windows}: pass --yes to go ahead, or use a coarser --step"
        )


def _notes(result: BackfillPlan) -> list[str]:
    """What the plan does beyond the range asked for, in words."""
    notes: list[str] = []
    covered = result.covered
    if result.widened and covered is not None:
        notes.append(
            f"range widened to whole scheduled windows: {span(covered)} "
            f"(asked for {span(result.requested)})"
        )
    if result.unfinished:
        first, count = result.unfinished[0], len(result.unfinished)
        if count == 1:
            notes.append(
                f"left out 1 window that has not ended yet ({span(first)}): its scheduled "
                "run covers it"
            )
        else:
            notes.append(
                f"left out {count} windows that have not ended yet (from {span(first)}): "
                "their scheduled runs cover them"
            )
    return notes


@backfill_app.command("plan")
@guarded
def backfill_plan(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    output: OutputOption = Output.TEXT,
    project_dir: ProjectOption = None,
) -> None:
    """Show the windows of a range, how many already succeeded, and what would run.

    With the schedule's windows, a range whose edges fall inside scheduled windows is
    widened to those whole windows, and the plan says so.
    """
    from runner.services.backfill import plan

    wanted = _wanted(start, end, step, only_missing, reverse)
    current = settings(project_dir)
    result = plan(current, registry(current), name, wanted)
    if output is Output.JSON:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(
        f"{len(result.windows)} windows, {len(result.done)} already succeeded, "
        f"{len(result.todo)} to run"
    )
    for note in _notes(result):
        typer.echo(note)
    for window in result.todo:
        typer.echo(f"  {window.start.isoformat()}  ->  {window.end.isoformat()}")


@backfill_app.command("run")
@guarded
def backfill_run(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    parallelism: Annotated[int, typer.Option(min=1, max=64, help="Windows at once.")] = 1,
    yes: YesOption = False,
    project_dir: ProjectOption = None,
) -> int:
    """Run the windows of a range in this process.

    A progress bar on a terminal (run logs then go to a file, named before the bar
    starts), JSON progress lines on stdout otherwise. Ctrl-C stops between batches;
    running it again resumes with the missing windows, and says "nothing to do" once
    every window succeeded. Exits 0, 1 if a window failed, or 130 when interrupted.
    """
    from runner.services.backfill import plan, run_local

    wanted = _wanted(start, end, step, only_missing, reverse)
    current = settings(project_dir)
    pipelines = registry(current)
    result = plan(current, pipelines, name, wanted)
    for note in _notes(result):
        typer.echo(note, err=True)
    if not result.todo:
        typer.echo(_nothing_to_do(name, result), err=True)
        return 0
    _check_size(current, len(result.todo), confirmed=yes)
    log_stream = _configure_logs(current, name)
    report = Progress(name, len(result.todo))
    try:
        outcome = run_local(
            current, pipelines, name, result.todo, parallelism=parallelism, on_window=report
        )
    finally:
        report.close()
        if log_stream is not None:
            log_stream.close()
    typer.echo(
        f"{len(outcome.succeeded)} windows succeeded, {len(outcome.failed)} failed"
        + (", interrupted" if outcome.interrupted else ""),
        err=True,
    )
    if outcome.interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.FAILED) if outcome.failed else 0


def _nothing_to_do(name: str, result: BackfillPlan) -> str:
    if not result.windows:
        return f"nothing to do: no window of {name!r} in {span(result.requested)} has ended yet"
    return (
        f"nothing to do: all {len(result.windows)} windows of {name!r} in "
        f"{span(result.requested)} already succeeded (--all redoes them)"
    )


def _configure_logs(current: Settings, name: str) -> IO[str] | None:
    """Run logs on stdout, or into a file while a progress bar holds the terminal.

    Returns the file to close at the end, if one was opened.
    """
    from runner.log import configure_logging

    if not (sys.stderr.isatty() and sys.stdout.isatty()):
        configure_logging(current)
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = current.resolve(current.log_dir or Path("logs")) / "backfill" / f"{name}-{stamp}.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the backfill's log file {path}: {exc.strerror}") from None
    configure_logging(current, stream=stream)
    typer.echo(f"run logs: {path}", err=True)
    return stream


@backfill_app.command("job")
@guarded
def backfill_job(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    parallelism: Annotated[int, typer.Option(min=1, max=1000, help="Pods at once.")] = 2,
    retries_per_window: Annotated[
        int, typer.Option(min=0, max=20, help="Retries of one window (backoffLimitPerIndex).")
    ] = 2,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the CronJob.")
    ] = None,
    from_manifest: Annotated[
        Path | None,
        typer.Option(help="Copy the CronJob from a rendered manifest (helm template) instead."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create the Job (default: only print its YAML).")
    ] = False,
    yes: YesOption = False,
    project_dir: ProjectOption = None,
) -> None:
    """Build an Indexed Job with one completion per window, from the pipeline's CronJob.

    Prints the Job's YAML (for `kubectl create -f -`) unless --apply creates it. Windows
    that already succeeded are left out (--all to redo them); with none left there is no
    Job to print, which exits 3.
    """
    from runner.deploy.backfill_job import create_job, to_yaml
    from runner.services.backfill import job_for_range, plan

    wanted = _wanted(start, end, step, only_missing, reverse)
    current = settings(project_dir)
    pipelines = registry(current)
    # From a manifest we are offline: no run history to leave succeeded windows out.
    result = plan(current, pipelines, name, wanted, offline=from_manifest is not None)
    for note in _notes(result):
        typer.echo(note, err=True)
    _check_size(current, len(result.todo), confirmed=yes)
    job = job_for_range(
        current,
        pipelines,
        name,
        result.todo,
        namespace=namespace,
        manifest=current.resolve(from_manifest) if from_manifest else None,
        parallelism=parallelism,
        retries_per_window=retries_per_window,
    )
    if not apply:
        typer.echo(to_yaml(job), nl=False)
        return
    created = create_job(job, namespace=namespace)
    meta = created["metadata"]
    typer.echo(
        f"created Job {meta.get('namespace')}/{meta['name']}: {len(result.todo)} windows, "
        f"{parallelism} at a time; follow with `runner backfill status {name} "
        f"--start {start} --end {end}`"
    )


@backfill_app.command("index")
@guarded
def backfill_index(name: NameArgument, project_dir: ProjectOption = None) -> None:
    """Run the window of this pod's JOB_COMPLETION_INDEX (inside a backfill Job)."""
    from runner.deploy.backfill_job import INDEX_ENV, WINDOWS_ENV, window_for_index
    from runner.log import configure_logging
    from runner.services.run import run_pipeline

    current = settings(project_dir)
    pair = window_for_index(os.environ)
    window = window_from_pair(pair, f"{WINDOWS_ENV}[{os.environ.get(INDEX_ENV)}]")
    log_file = configure_logging(current)
    run_pipeline(
        current.model_copy(update={"trigger": "backfill"}),
        registry(current),
        name,
        window=window,
        log_file=log_file,
    )


@backfill_app.command("status")
@guarded
def backfill_status(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    output: OutputOption = Output.TEXT,
    project_dir: ProjectOption = None,
) -> None:
    """Each window of a range: pending, running, succeeded, failed, cancelled or lost.

    A window whose end is still in the future shows as "not ended".
    """
    from runner.services.backfill import window_status

    wanted = _wanted(start, end, step, True, False)
    current = settings(project_dir)
    rows = window_status(current, registry(current), name, wanted)
    if output is Output.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    counts = Counter(r["status"] for r in rows)
    typer.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    print_table(
        [
            {
                "window_start": r["window_start"],
                "status": r["status"],
                "rows": r.get("rows_loaded", ""),
                "error": (r.get("error") or "")[:80],
            }
            for r in rows
        ],
        ("window_start", "status", "rows", "error"),
    )
